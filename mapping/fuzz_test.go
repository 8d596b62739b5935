package mapping

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/pcpgw/pcpgw/firewall/firewalltest"
)

// FuzzLoadState: whatever the state file holds, New does not panic, never
// loads an invalid mapping, and the kernel is made to hold exactly what
// was loaded.
func FuzzLoadState(f *testing.F) {
	f.Add([]byte(`{"version":1,"epoch_start":"2026-01-01T00:00:00Z","mappings":[
	{"id":4,"origin":"upnp","client":"192.0.2.100","proto":"tcp","internal":"192.0.2.100:8080","wan_port":18080,"created":"2026-01-01T00:00:00Z","lifetime_s":0},
	{"id":5,"origin":"pcp","client":"2001:db8:1::100","proto":"udp","internal":"[2001:db8:1::100]:9000","created":"2026-01-01T00:00:00Z","expires":"2999-01-01T00:00:00Z","lifetime_s":3600,"nonce":"000102030405060708090a0b"}]}`))
	f.Add([]byte(`{"version":1,"mappings":[{"id":70000,"origin":"x"}]}`))
	f.Add([]byte(`{"version":1,"mappings":[{"id":1,"origin":"natpmp","client":"192.0.2.1","proto":"tcp","internal":"192.0.2.1:1","wan_port":1},{"id":1,"origin":"natpmp","client":"192.0.2.1","proto":"tcp","internal":"192.0.2.1:1","wan_port":1}]}`))
	f.Add([]byte("{not json"))
	// Found by FuzzJournal: a mapping the kernel cannot hold (to 0.0.0.0:0)
	// failed the start's reconciliation, so the start.
	f.Add([]byte(`{"version":1,"mappings":[{"id":1,"origin":"natpmp","client":"0.0.0.0","proto":"udp","internal":"0.0.0.0:0","wan_port":1}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := shmDir(t)
		if err := os.WriteFile(filepath.Join(dir, StateFile), b, 0o600); err != nil {
			t.Fatal(err)
		}
		fw := firewalltest.New()
		c, err := New(context.Background(), Config{Mode: ModeLocal, WANAddr: wanPub, Firewall: fw, StateDir: dir, Pinholes: true})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ms := c.Find(Selector{})
		seen := map[uint32]bool{}
		for _, m := range ms {
			if m.ID == 0 || m.ID > maxEntries || seen[m.ID] || !m.Internal.IsValid() || !m.Client.IsValid() ||
				(m.Proto != TCP && m.Proto != UDP) || m.Description != SanitizeDescription(m.Description) {
				t.Fatalf("invalid mapping loaded: %+v", m)
			}
			seen[m.ID] = true
		}
		if got := len(fw.Forwards()) + len(fw.Pinholes()); got != len(ms) {
			t.Fatalf("kernel holds %d entries for %d mappings", got, len(ms))
		}
	})
}
