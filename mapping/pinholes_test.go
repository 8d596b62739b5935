package mapping

import (
	"context"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/firewall/firewalltest"
)

// TestSetPinholes (issue 17.9): turning pinholes off (ipv6_pinholes on a
// reload) closes the live ones, in the kernel too, refuses new ones and
// tells subscribers (EventFirewall, which GENA turns into
// InboundPinholeAllowed); port mappings stay. Turning them on again
// allows pinholes and tells subscribers again; setting what is in force
// changes nothing and says nothing.
func TestSetPinholes(t *testing.T) {
	c, fw := newCore(t, Config{Mode: ModeLocal, WANAddr: wanPub, SecureMode: true, Pinholes: true})
	ctx := context.Background()
	events, stop := c.Subscribe()
	defer stop()
	if _, err := c.Map(ctx, req(OriginPCP, host6, UDP, 5000, 0, time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Map(ctx, req(OriginNATPMP, host, UDP, 5000, 0, time.Hour)); err != nil {
		t.Fatal(err)
	}
	drain := func() (firewallEvents int) {
		for {
			select {
			case ev := <-events:
				if ev.Kind == EventFirewall {
					firewallEvents++
				}
			default:
				return firewallEvents
			}
		}
	}
	drain()
	if n := c.SetPinholes(ctx, false); n != 1 {
		t.Errorf("closed %d pinholes, want 1", n)
	}
	if c.PinholesEnabled() || len(fw.Pinholes()) != 0 || len(fw.Forwards()) != 1 || c.Status().Pinholes != 0 {
		t.Errorf("after turning pinholes off: enabled %v, kernel %v %v, status %+v", c.PinholesEnabled(), fw.Pinholes(), fw.Forwards(), c.Status())
	}
	if n := drain(); n != 1 {
		t.Errorf("%d firewall events, want 1", n)
	}
	_, err := c.Map(ctx, req(OriginPCP, host6, UDP, 5000, 0, time.Hour))
	wantCode(t, err, CodeDisabled)
	if c.SetPinholes(ctx, false); drain() != 0 {
		t.Error("an event for no change")
	}
	c.SetPinholes(ctx, true)
	if n := drain(); n != 1 || !c.PinholesEnabled() {
		t.Errorf("turned on: %d events, enabled %v", n, c.PinholesEnabled())
	}
	if _, err := c.Map(ctx, req(OriginPCP, host6, UDP, 5000, 0, time.Hour)); err != nil {
		t.Error(err)
	}
}

// TestPinholesOffAtStart: pcpgw restarted with pinholes off does not
// reopen the pinholes of its state file (nor keep them in the kernel).
func TestPinholesOffAtStart(t *testing.T) {
	dir := t.TempDir()
	fw := firewalltest.New()
	ctx := context.Background()
	cfg := Config{Mode: ModeLocal, WANAddr: wanPub, Firewall: fw, StateDir: dir, Pinholes: true}
	c, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Map(ctx, req(OriginPCP, host6, UDP, 5000, 0, time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Map(ctx, req(OriginNATPMP, host, UDP, 5000, 0, time.Hour)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	cfg.Pinholes = false
	c2, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if ms := c2.Find(Selector{}); len(ms) != 1 || ms[0].IsPinhole() || len(fw.Pinholes()) != 0 {
		t.Errorf("restored %+v, kernel pinholes %v", ms, fw.Pinholes())
	}
}
