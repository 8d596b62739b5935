package pcpclient

import (
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/internal/lab"
)

// TestInteropRestartAnnounced: miniupnpd restarted (empty table) soon after the
// client's last exchange. Its startup ANNOUNCE makes the client ask; the
// answer's epoch, checked strictly after an announcement, shows the
// restart: EventStateLost.
func TestInteropRestartAnnounced(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.New(t, lab.Options{})
	m := l.StartMiniupnpd(t, lab.MiniupnpdOptions{Debug: os.Getenv("DBG") == "1"})
	c := newLabClient(t, l, true)
	if _, err := c.Map(labCtx(t), MapRequest{Protocol: 6, Internal: netip.AddrPortFrom(cpeWAN, 18090), Lifetime: 3600}); err != nil {
		t.Fatal(err)
	}
	drainEvents(c)
	before := c.Status()
	m.Restart(t, true)
	start := time.Now()
	deadline := time.After(5 * time.Second)
wait:
	for {
		select {
		case ev := <-c.Events():
			if ev.Kind == EventStateLost {
				break wait
			}
		case <-deadline:
			t.Fatalf("no state loss within 5 s of the restart; status before %+v, after %+v", before, c.Status())
		}
	}
	t.Logf("state loss seen %v after the restart; status %+v", time.Since(start), c.Status())
}
