package mapping

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/firewall/firewalltest"
	"github.com/pcpgw/pcpgw/pcp"
	"github.com/pcpgw/pcpgw/portset"
)

var shared = netip.MustParseAddr("203.0.113.9")

// v6plus: PSID 1, offset 4, length 8 (15 ranges of 16 ports).
func v6plus(t *testing.T) portset.Set {
	t.Helper()
	s, err := portset.PSID{Offset: 4, Len: 8, ID: 1}.Set()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPortSetMode(t *testing.T) {
	set := v6plus(t)
	pool := set.Upper(64) // 49168-49183, 53264-53279, 57360-57375, 61456-61471
	c, fw := newCore(t, Config{Mode: ModePortSet, WANAddr: shared, PortSet: PortSet{Set: set, Pool: pool}})
	ctx := context.Background()
	if c.Mode() != ModePortSet {
		t.Fatalf("mode %v", c.Mode())
	}
	if ext, err := c.ExternalAddr(ctx); err != nil || ext != shared {
		t.Fatalf("external %v %v, want the shared address", ext, err)
	}
	for _, tc := range []struct {
		name string
		r    Request
		port uint16
		code Code
	}{
		// AddPortMapping of a port of the pool: that port.
		{"exact in pool", req(OriginUPnP, host, TCP, 8080, 49170, time.Hour), 49170, CodeOK},
		// AddPortMapping outside the set: refused, whatever is free.
		{"exact outside", req(OriginUPnP, host, TCP, 8081, 8080, time.Hour), 0, CodeOutsidePortSet},
		// In the set but kept for outbound flows.
		{"exact in snat part", req(OriginUPnP, host, TCP, 8082, 4112, time.Hour), 0, CodeOutsidePortSet},
		// Taken by the first: a conflict as anywhere.
		{"exact taken", req(OriginUPnP, other, TCP, 8083, 49170, time.Hour), 0, CodeConflict},
		// NAT-PMP asking for 8080: the nearest port of the pool.
		{"natpmp", req(OriginNATPMP, host, TCP, 8084, 8080, time.Hour), 49168, CodeOK},
		{"natpmp next", req(OriginNATPMP, host, TCP, 8085, 8080, time.Hour), 49169, CodeOK},
		// No suggestion: the internal port's nearest.
		{"natpmp any", req(OriginNATPMP, host, UDP, 60000, 0, time.Hour), 61456, CodeOK},
		// A pool port asked: that one.
		{"pcp in pool", req(OriginPCP, host, UDP, 9000, 57370, time.Hour), 57370, CodeOK},
		// A static forward's port must be in the pool too.
		{"static outside", Request{Origin: OriginStatic, Client: host, Proto: TCP, Internal: netip.AddrPortFrom(host, 443),
			ExternalPort: 8443, ExactPort: true}, 0, CodeOutsidePortSet},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := c.Map(ctx, tc.r)
			if got := CodeOf(err); got != tc.code {
				t.Fatalf("code %v (%v), want %v", got, err, tc.code)
			}
			if err != nil {
				return
			}
			if m.External != netip.AddrPortFrom(shared, tc.port) || m.WANPort != tc.port || m.Upstream != UpstreamNone {
				t.Errorf("external %v WAN port %d upstream %v, want %v:%d on the CPE only", m.External, m.WANPort, m.Upstream, shared, tc.port)
			}
		})
	}
	for _, f := range fw.Forwards() {
		if !pool.Contains(f.Port) {
			t.Errorf("kernel forward on port %d outside the pool", f.Port)
		}
	}
	// The pool runs out: NO_RESOURCES, never a port outside it.
	n := 0
	for i := range 100 {
		_, err := c.Map(ctx, Request{Origin: OriginNATPMP, Client: other, Proto: UDP,
			Internal: netip.AddrPortFrom(other, uint16(20000+i)), Lifetime: time.Hour})
		if err != nil {
			wantCode(t, err, CodeNoResources)
			break
		}
		n++
	}
	if free := pool.Len() - 2; n != free { // two UDP mappings above hold a port
		t.Errorf("%d UDP mappings before the pool ran out, want %d", n, free)
	}
	for _, m := range c.Find(Selector{}) {
		if !pool.Contains(m.External.Port()) {
			t.Errorf("mapping %v outside the pool", m.External)
		}
	}
}

func TestPortSetErrorsTranslate(t *testing.T) {
	err := &Error{Code: CodeOutsidePortSet}
	if code, desc := UPnPError(err, 2); code != UPnPConflictWithOther || desc != "ConflictWithOtherMechanisms" {
		t.Errorf("IGD:2: %d %s", code, desc)
	}
	if code, _ := UPnPError(err, 1); code != UPnPConflict {
		t.Errorf("IGD:1: %d", code)
	}
	if code, life := PCPResult(err); code != pcp.CannotProvideExternal || life != uint32(longErrorLifetime/time.Second) {
		t.Errorf("PCP: %v %d", code, life)
	}
	if r := NATPMPResult(err); r != pcp.NATPMPNotAuthorized {
		t.Errorf("NAT-PMP: %v", r)
	}
}

// TestPortSetWholeSet: with no pool every port of the set may be mapped.
func TestPortSetWholeSet(t *testing.T) {
	set := v6plus(t)
	c, _ := newCore(t, Config{Mode: ModePortSet, WANAddr: shared, PortSet: PortSet{Set: set}})
	m, err := c.Map(context.Background(), req(OriginUPnP, host, TCP, 8080, 4112, time.Hour))
	if err != nil || m.External.Port() != 4112 {
		t.Fatalf("%v %v", m.External, err)
	}
	if _, err := New(context.Background(), Config{Mode: ModePortSet, WANAddr: shared, Firewall: firewalltest.New()}); err == nil {
		t.Error("portset mode without a set: no error")
	}
}

// TestSetPortSet: a new set removes the mappings it leaves out; a restart
// with another set drops the stored ones outside it.
func TestSetPortSet(t *testing.T) {
	set := v6plus(t)
	dir := t.TempDir()
	fw := firewalltest.New()
	ctx := context.Background()
	cfg := Config{Mode: ModePortSet, WANAddr: shared, PortSet: PortSet{Set: set}, Firewall: fw, StateDir: dir}
	c, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []uint16{4112, 8208, 61471} {
		if _, err := c.Map(ctx, req(OriginUPnP, host, TCP, p, p, 0)); err != nil {
			t.Fatal(err)
		}
	}
	next := portset.New(portset.Range{Lo: 8200, Hi: 8300}, portset.Range{Lo: 61400, Hi: 61500})
	if n := c.SetPortSet(ctx, PortSet{Set: next}); n != 1 {
		t.Errorf("SetPortSet removed %d mappings, want 1 (4112)", n)
	}
	if got := len(fw.Forwards()); got != 2 {
		t.Errorf("%d kernel forwards, want 2", got)
	}
	if n := c.SetPortSet(ctx, PortSet{Set: next}); n != 0 {
		t.Errorf("the same set again removed %d", n)
	}
	c.Close()
	cfg.PortSet = PortSet{Set: portset.New(portset.Range{Lo: 61400, Hi: 61500})}
	c2, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	got := c2.Find(Selector{})
	if len(got) != 1 || got[0].External.Port() != 61471 {
		t.Errorf("restored %+v, want only 61471", got)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, StateFile)); len(b) == 0 {
		t.Error("no state file")
	}
}

// TestResolveMode: what auto picks from the WAN address.
func TestResolveMode(t *testing.T) {
	for _, tc := range []struct {
		wan  string
		up   bool
		want Mode
	}{
		{"203.0.113.2", true, ModeLocal},
		{"100.64.0.2", true, ModeNAT444},
		{"192.168.1.2", true, ModeNAT444},
		{"", true, ModeDSLite},
		// OpenWrt's DS-Lite softwire holds the B4 address 192.0.0.2
		// (RFC 6333 §5.7): DS-Lite, never a public address.
		{"192.0.0.2", true, ModeDSLite},
		{"192.0.0.2", false, ModeDSLite},
		{"203.0.113.2", false, ModeLocal},
		{"100.64.0.2", false, ModeLocal},
	} {
		var wan netip.Addr
		if tc.wan != "" {
			wan = netip.MustParseAddr(tc.wan)
		}
		if got := ResolveMode(ModeAuto, wan, tc.up); got != tc.want {
			t.Errorf("ResolveMode(auto, %q, upstream %v) = %v, want %v", tc.wan, tc.up, got, tc.want)
		}
	}
	if got := ResolveMode(ModePortSet, netip.MustParseAddr("192.0.0.2"), true); got != ModePortSet {
		t.Errorf("a configured mode is kept: %v", got)
	}
}
