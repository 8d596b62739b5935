package main

import (
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pcpgw/pcpgw/config"
	"github.com/pcpgw/pcpgw/mapping"
	"github.com/pcpgw/pcpgw/portset"
)

// rules is /tmp/map-wan.rules as map.sh writes it for a v6plus-like rule
// (portset/testdata/map-wan.rules, shortened).
const rules = `rule=type=map-e,ipv6prefix=2001:db8::,prefix6len=32,ipv4prefix=203.0.113.0,prefix4len=24,offset=4,ealen=16,br=2001:db8::ffff
RULE_1_FMR=0
RULE_1_EALEN=16
RULE_1_PSIDLEN=8
RULE_1_OFFSET=4
RULE_BMR=1
RULE_1_IPV4ADDR=203.0.113.9
RULE_1_PORTSETS='4112-4127 8208-8223 12304-12319 16400-16415 20496-20511 24592-24607 28688-28703 32784-32799 36880-36895 40976-40991 45072-45087 49168-49183 53264-53279 57360-57375 61456-61471 '
RULE_COUNT=1
`

func TestResolvePortSet(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "map-wan.rules")
	if err := os.WriteFile(file, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	full := filepath.Join(dir, "full.rules")
	os.WriteFile(full, []byte("RULE_BMR=1\nRULE_1_IPV4ADDR=203.0.113.9\nRULE_1_PSIDLEN=0\n"), 0o644)
	wan := netip.MustParseAddr("203.0.113.77")
	log := slog.New(slog.DiscardHandler)
	base := func() *config.Config {
		c := config.Default()
		c.LAN, c.WAN = []string{"br-lan"}, "map-wan"
		return &c
	}
	for _, tc := range []struct {
		name    string
		mode    mapping.Mode
		cfg     func(*config.Config)
		want    mapping.Mode
		source  string
		addr    string
		pool    int
		snat    int
		errText string
	}{
		{"auto with map rules", mapping.ModeAuto, func(c *config.Config) { c.MapRules = file },
			mapping.ModePortSet, "map rules " + file, "203.0.113.9", 64, 176, ""},
		{"options win", mapping.ModeAuto, func(c *config.Config) {
			c.MapRules = file
			c.PortSetRanges = portset.New(portset.Range{Lo: 5000, Hi: 5099})
		}, mapping.ModePortSet, "options", "203.0.113.9", 25, 75, ""},
		{"options with their address", mapping.ModePortSet, func(c *config.Config) {
			c.WAN = "eth1"
			c.PortSetPSID, c.PortSetPSIDLen, c.PortSetOffset = 1, 8, 4
			c.PortSetAddr = netip.MustParseAddr("192.0.2.77")
			c.PortSetShare = portset.Share{}
		}, mapping.ModePortSet, "options", "192.0.2.77", 240, 0, ""},
		{"the WAN's address", mapping.ModeAuto, func(c *config.Config) {
			c.WAN = "eth1"
			c.PortSetRanges = portset.New(portset.Range{Lo: 5000, Hi: 5099})
			c.PortSetShare = portset.Share{Ports: 10}
		}, mapping.ModePortSet, "options", "203.0.113.77", 10, 90, ""},
		// A static forward's port is always the mappings'.
		{"forward kept", mapping.ModeAuto, func(c *config.Config) {
			c.MapRules = file
			c.Forwards = []config.Forward{{Name: "nas", Proto: config.ProtoTCP, ExtPort: 4112, IntAddr: netip.MustParseAddr("192.0.2.10"), IntPort: 443, Enabled: true}}
		}, mapping.ModePortSet, "map rules " + file, "203.0.113.9", 65, 175, ""},
		{"whole address: auto stays auto", mapping.ModeAuto, func(c *config.Config) { c.MapRules = full }, mapping.ModeAuto, "", "", 0, 0, ""},
		{"no map interface", mapping.ModeAuto, func(c *config.Config) { c.WAN = "eth1" }, mapping.ModeAuto, "", "", 0, 0, ""},
		{"map interface down", mapping.ModeAuto, func(*config.Config) {}, mapping.ModeAuto, "", "", 0, 0, ""},
		{"portset without a set", mapping.ModePortSet, func(c *config.Config) { c.WAN = "eth1" }, mapping.ModePortSet, "", "", 0, 0, "no port set"},
		{"nat444 ignores the set", mapping.ModeNAT444, func(c *config.Config) { c.MapRules = file }, mapping.ModeNAT444, "", "", 0, 0, ""},
		{"no port left outbound", mapping.ModePortSet, func(c *config.Config) {
			c.MapRules = file
			c.PortSetShare = portset.Share{Ports: 240}
		}, mapping.ModePortSet, "", "", 0, 0, "leaves no port"},
		{"broken rules", mapping.ModePortSet, func(c *config.Config) { c.MapRules = filepath.Join(dir, "missing") }, mapping.ModePortSet, "", "", 0, 0, "map rules"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base()
			tc.cfg(cfg)
			mode, s, err := resolvePortSet(cfg, tc.mode, wan, log)
			if tc.errText != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errText) {
					t.Fatalf("err %v, want %q", err, tc.errText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if mode != tc.want {
				t.Fatalf("mode %v, want %v", mode, tc.want)
			}
			if mode != mapping.ModePortSet {
				return
			}
			if s.source != tc.source || s.addr.String() != tc.addr || s.pool.Len() != tc.pool || s.snat.Len() != tc.snat {
				t.Errorf("source %q addr %v pool %d snat %d; want %q %s %d %d", s.source, s.addr, s.pool.Len(), s.snat.Len(),
					tc.source, tc.addr, tc.pool, tc.snat)
			}
		})
	}
}

func TestPortSetStatusText(t *testing.T) {
	set, _ := portset.PSID{Offset: 4, Len: 8, ID: 1}.Set()
	d := &daemon{}
	if d.portsetStatus(0) != nil {
		t.Fatal("a port set status outside portset mode")
	}
	pool, snat := set.Split(portset.Share{Percent: 25}, portset.Set{})
	d.ports = &portsetSplit{portsetInfo: portsetInfo{set: set, source: "options"}, pool: pool, snat: snat}
	st := d.portsetStatus(12)
	want := "ports 4112-4127, 8208-8223, 12304-12319, ...: 240 usable, 64 for mappings (49168-49183, 53264-53279, 57360-57375, ...), 176 for outbound connections, 12 mapped"
	if st.Text != want || st.Usable != 240 || st.ForMappings != 64 || st.Mapped != 12 || len(st.Ranges) != 15 || len(st.OutboundRanges) != 11 {
		t.Errorf("status %+v\nwant text %q", st, want)
	}
	d.ports = &portsetSplit{portsetInfo: portsetInfo{set: set}, pool: set}
	if st := d.portsetStatus(3); st.Text != "ports 4112-4127, 8208-8223, 12304-12319, ...: 240 usable, 3 mapped" {
		t.Errorf("without outbound NAT: %q", st.Text)
	}
}
