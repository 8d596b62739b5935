package mapping

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pcpgw/pcpgw/firewall"
	"github.com/pcpgw/pcpgw/firewall/firewalltest"
)

var pfx64 = netip.MustParsePrefix("2001:db8:64::/96")

func nat64Req(port uint16, life time.Duration) Request {
	return Request{Origin: OriginPCP, Client: host6, Proto: TCP, Internal: netip.AddrPortFrom(host6, port),
		ExternalAddr: netip.IPv4Unspecified(), Lifetime: life, Nonce: Nonce{6, 4}}
}

// TestNAT64Mapping: an IPv6 host asking for an IPv4 port (suggested
// external 0.0.0.0) gets the NAT64's IPv4 address and port: the request
// goes upstream for the host's own address with THIRD_PARTY and PREFIX64,
// the CPE's pinhole admits only the NAT64's prefix the answer names, and
// the CPE's own external address does not change.
func TestNAT64Mapping(t *testing.T) {
	up := newFakeUp()
	up.ext64 = netip.MustParseAddr("198.51.100.64")
	up.prefix64 = []netip.Prefix{pfx64}
	c, fw := newCore(t, Config{Mode: ModeNAT444, WANAddr: wanCGN, Upstream: up, Pinholes: true, SecureMode: true})
	ctx := context.Background()
	if _, err := c.Map(ctx, req(OriginNATPMP, host, TCP, 8080, 8080, time.Hour)); err != nil {
		t.Fatal(err)
	}
	m, err := c.Map(ctx, nat64Req(9000, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !m.NAT64 || m.IsPinhole() || m.External != netip.MustParseAddrPort("198.51.100.64:9000") || m.Upstream != UpstreamOK ||
		m.WANPort != 0 {
		t.Fatalf("mapping %+v", m)
	}
	got := up.lastMap()
	if got.Internal != netip.AddrPortFrom(host6, 9000) || !got.ThirdParty || !got.Prefix64 ||
		got.SuggestedExternal != netip.MustParseAddrPort("0.0.0.0:9000") {
		t.Errorf("upstream request %+v", got)
	}
	want := []firewall.Pinhole{{Proto: 6, To: netip.AddrPortFrom(host6, 9000), RemotePrefix: pfx64, Timeout: time.Hour + firewallGrace}}
	if d := cmp.Diff(want, fw.Pinholes(), netipCmp, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
		cmp.Comparer(func(a, b time.Duration) bool { return a-b < time.Second && b-a < time.Second })); d != "" {
		t.Errorf("kernel pinholes (-want +got):\n%s", d)
	}
	st := c.Status()
	if st.External != up.ext || st.Mappings != 2 || st.Pinholes != 0 {
		t.Errorf("status %+v: the CPE's external address %v, two mappings, no pinhole", st, up.ext)
	}
	// A pinhole for the same host and port is another thing.
	if p, err := c.Map(ctx, Request{Origin: OriginPCP, Client: host6, Proto: TCP, Internal: netip.AddrPortFrom(host6, 9000),
		Lifetime: time.Hour, Nonce: Nonce{6, 4}}); err != nil || !p.IsPinhole() {
		t.Errorf("pinhole beside the NAT64 mapping: %+v %v", p, err)
	}
	// Renewal: the same mapping, the assigned port suggested.
	if m2, err := c.Map(ctx, nat64Req(9000, time.Hour)); err != nil || m2.ID != m.ID {
		t.Errorf("renewal %+v %v", m2, err)
	}
	n, err := c.Delete(ctx, Selector{Client: host6, Proto: TCP, Internal: netip.AddrPortFrom(host6, 9000), ID: m.ID})
	if err != nil || n != 1 {
		t.Fatalf("delete %d %v", n, err)
	}
	deleted := func() bool {
		up.mu.Lock()
		defer up.mu.Unlock()
		return len(up.deletes) == 1 && up.deletes[0].ThirdParty && up.deletes[0].Internal == netip.AddrPortFrom(host6, 9000)
	}
	deadline := time.Now().Add(3 * time.Second)
	for !deleted() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !deleted() {
		t.Errorf("upstream deletes %+v", up.deletes)
	}
	for _, p := range fw.Pinholes() {
		if p.RemotePrefix.IsValid() {
			t.Errorf("NAT64 pinhole left: %+v", p)
		}
	}
}

// TestNAT64Prefixes: without PREFIX64 in the answer the mapping admits the
// configured prefixes (SetPrefix64), else the well-known 64:ff9b::/96; a
// restart keeps the mapping and its prefixes.
func TestNAT64Prefixes(t *testing.T) {
	up := newFakeUp()
	dir := t.TempDir()
	fw := firewalltest.New()
	ctx := context.Background()
	cfg := Config{Mode: ModeNAT444, WANAddr: wanCGN, Upstream: up, Pinholes: true, Firewall: fw, StateDir: dir}
	c, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.Map(ctx, nat64Req(9000, 0))
	if err != nil || len(m.Prefix64) != 1 || m.Prefix64[0] != DefaultPrefix64 {
		t.Fatalf("%+v %v", m, err)
	}
	c.SetPrefix64(ctx, []netip.Prefix{pfx64})
	if pins := fw.Pinholes(); len(pins) != 1 || pins[0].RemotePrefix != pfx64 {
		t.Errorf("pinholes after SetPrefix64: %+v", pins)
	}
	c.Close()
	c2, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	got := c2.Find(Selector{})
	if len(got) != 1 || !got[0].NAT64 || len(got[0].Prefix64) != 1 || got[0].Prefix64[0] != pfx64 {
		t.Errorf("restored %+v", got)
	}
	if pins := fw.Pinholes(); len(pins) != 1 || pins[0].RemotePrefix != pfx64 {
		t.Errorf("pinholes after the restart: %+v", pins)
	}
}

// TestNAT64NoUpstream: with nothing upstream to ask, a NAT64 request
// fails (the CPE alone cannot give an IPv4 port to an IPv6 host).
func TestNAT64NoUpstream(t *testing.T) {
	c, fw := newCore(t, Config{Mode: ModeLocal, WANAddr: wanPub, Pinholes: true})
	_, err := c.Map(context.Background(), nat64Req(9000, time.Hour))
	wantCode(t, err, CodeNetworkFailure)
	if len(fw.Pinholes()) != 0 {
		t.Errorf("pinholes %+v", fw.Pinholes())
	}
}
