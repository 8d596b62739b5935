package firewall

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var cmpElem = cmp.AllowUnexported(elem{})

// Keys and values follow nft's concatenation layout: each field padded to
// 4 bytes, integers in network byte order (worked out from nft(8)'s
// `nft --debug=netlink add element` output for the same types).
func TestForwardElems(t *testing.T) {
	to := netip.MustParseAddrPort("192.0.2.100:8080") // 8080 = 0x1f90
	tests := []struct {
		name string
		f    Forward
		want []elem
	}{
		{"dnat", Forward{Proto: 6, Port: 18080, To: to, Timeout: 1500 * time.Microsecond}, []elem{
			{set: setFwd4, key: []byte{6, 0, 0, 0, 0x46, 0xa0, 0, 0}, val: []byte{192, 0, 2, 100, 0x1f, 0x90, 0, 0}, timeout: 2 * time.Millisecond},
			{set: setAcc4, key: []byte{192, 0, 2, 100, 6, 0, 0, 0, 0x1f, 0x90, 0, 0, 0x46, 0xa0, 0, 0}, timeout: 2 * time.Millisecond},
		}},
		// 18081 = 0x46a1
		{"upstream port", Forward{Proto: 6, Port: 18080, To: to, UpstreamPort: 18081, Timeout: time.Second}, []elem{
			{set: setFwd4, key: []byte{6, 0, 0, 0, 0x46, 0xa0, 0, 0}, val: []byte{192, 0, 2, 100, 0x1f, 0x90, 0, 0}, timeout: time.Second},
			{set: setAcc4, key: []byte{192, 0, 2, 100, 6, 0, 0, 0, 0x1f, 0x90, 0, 0, 0x46, 0xa0, 0, 0}, timeout: time.Second},
			{set: setFwd4X, key: []byte{6, 0, 0, 0, 0x46, 0xa1, 0, 0}, val: []byte{192, 0, 2, 100, 0x1f, 0x90, 0, 0}, timeout: time.Second},
			{set: setAcc4X, key: []byte{192, 0, 2, 100, 6, 0, 0, 0, 0x1f, 0x90, 0, 0, 0x46, 0xa1, 0, 0}, timeout: time.Second},
		}},
		{"accept only (DS-Lite)", Forward{Proto: 17, To: to}, []elem{
			{set: setAcc4, key: []byte{192, 0, 2, 100, 17, 0, 0, 0, 0x1f, 0x90, 0, 0, 0x1f, 0x90, 0, 0}},
		}},
		{"remote", Forward{Proto: 6, Port: 18080, To: to, Remote: netip.MustParseAddr("203.0.113.50")}, []elem{
			{set: setFwd4H, key: []byte{203, 0, 113, 50, 6, 0, 0, 0, 0x46, 0xa0, 0, 0}, val: []byte{192, 0, 2, 100, 0x1f, 0x90, 0, 0}},
			{set: setAcc4H, key: []byte{203, 0, 113, 50, 192, 0, 2, 100, 6, 0, 0, 0, 0x1f, 0x90, 0, 0, 0x46, 0xa0, 0, 0}},
		}},
		{"remote 0.0.0.0 is any", Forward{Proto: 17, To: to, Remote: netip.IPv4Unspecified()}, []elem{
			{set: setAcc4, key: []byte{192, 0, 2, 100, 17, 0, 0, 0, 0x1f, 0x90, 0, 0, 0x1f, 0x90, 0, 0}},
		}},
		{"4in6 target", Forward{Proto: 6, Port: 18080, To: netip.MustParseAddrPort("[::ffff:192.0.2.100]:8080"), Timeout: 30 * 24 * time.Hour}, []elem{
			{set: setFwd4, key: []byte{6, 0, 0, 0, 0x46, 0xa0, 0, 0}, val: []byte{192, 0, 2, 100, 0x1f, 0x90, 0, 0}},
			{set: setAcc4, key: []byte{192, 0, 2, 100, 6, 0, 0, 0, 0x1f, 0x90, 0, 0, 0x46, 0xa0, 0, 0}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := forwardElems(tt.f)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmpElem); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			for _, e := range got {
				if len(e.key) != fieldsLen(setDefs[e.set].key) || len(e.val) != fieldsLen(setDefs[e.set].val) {
					t.Errorf("%v: sizes do not match set %s", e, setDefs[e.set].name)
				}
			}
		})
	}
}

func TestPinholeElem(t *testing.T) {
	to := netip.MustParseAddrPort("[2001:db8:1::100]:8080")
	lan := to.Addr().AsSlice()
	rem := netip.MustParseAddr("2001:db8:ff::1")
	tail := append(append([]byte{}, lan...), 6, 0, 0, 0, 0x1f, 0x90, 0, 0)
	cat := func(bs ...[]byte) []byte {
		var out []byte
		for _, b := range bs {
			out = append(out, b...)
		}
		return out
	}
	tests := []struct {
		name string
		p    Pinhole
		want elem
	}{
		{"any", Pinhole{Proto: 6, To: to, Timeout: time.Minute}, elem{set: setPin6, key: tail, timeout: time.Minute}},
		{"any (::)", Pinhole{Proto: 6, To: to, Remote: netip.IPv6Unspecified()}, elem{set: setPin6, key: tail}},
		{"any (0.0.0.0)", Pinhole{Proto: 6, To: to, Remote: netip.IPv4Unspecified()}, elem{set: setPin6, key: tail}},
		{"host", Pinhole{Proto: 6, To: to, Remote: rem}, elem{set: setPin6H, key: cat(rem.AsSlice(), tail)}},
		{"port", Pinhole{Proto: 6, To: to, RemotePort: 443}, elem{set: setPin6P, key: cat([]byte{1, 0xbb, 0, 0}, tail)}},
		{"host and port", Pinhole{Proto: 6, To: to, Remote: rem, RemotePort: 443}, elem{set: setPin6HP, key: cat(rem.AsSlice(), []byte{1, 0xbb, 0, 0}, tail)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := pinholeElem(tt.p)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmpElem); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if len(got.key) != fieldsLen(setDefs[got.set].key) {
				t.Errorf("key size %d does not match set %s", len(got.key), setDefs[got.set].name)
			}
		})
	}
}

func TestInvalid(t *testing.T) {
	v4 := netip.MustParseAddrPort("192.0.2.100:80")
	v6 := netip.MustParseAddrPort("[2001:db8:1::100]:80")
	fwds := map[string]Forward{
		"icmp":                             {Proto: 1, Port: 80, To: v4},
		"no proto":                         {Port: 80, To: v4},
		"ipv6 target":                      {Proto: 6, Port: 80, To: v6},
		"no target":                        {Proto: 6, Port: 80},
		"target port 0":                    {Proto: 6, Port: 80, To: netip.AddrPortFrom(v4.Addr(), 0)},
		"ipv6 remote":                      {Proto: 6, Port: 80, To: v4, Remote: v6.Addr()},
		"negative":                         {Proto: 6, Port: 80, To: v4, Timeout: -time.Second},
		"upstream port without a WAN port": {Proto: 6, To: v4, UpstreamPort: 80},
		"upstream port with a remote":      {Proto: 6, Port: 80, To: v4, Remote: netip.MustParseAddr("203.0.113.50"), UpstreamPort: 80},
	}
	for name, f := range fwds {
		if _, err := forwardElems(f); !errors.Is(err, ErrInvalid) {
			t.Errorf("forward %s: err %v, want ErrInvalid", name, err)
		}
		if _, _, err := changeElems(Change{DelForwards: []Forward{f}}); !errors.Is(err, ErrInvalid) {
			t.Errorf("change deleting forward %s: err %v, want ErrInvalid", name, err)
		}
	}
	pins := map[string]Pinhole{
		"ipv4 target": {Proto: 6, To: v4},
		"4in6 target": {Proto: 6, To: netip.MustParseAddrPort("[::ffff:192.0.2.1]:80")},
		"zone":        {Proto: 6, To: netip.MustParseAddrPort("[fe80::1%eth0]:80")},
		"port 0":      {Proto: 6, To: netip.AddrPortFrom(v6.Addr(), 0)},
		"ipv4 remote": {Proto: 6, To: v6, Remote: v4.Addr()},
		"icmp":        {Proto: 1, To: v6},
	}
	for name, p := range pins {
		if _, err := pinholeElem(p); !errors.Is(err, ErrInvalid) {
			t.Errorf("pinhole %s: err %v, want ErrInvalid", name, err)
		}
	}
}

func TestWantedElemsConflict(t *testing.T) {
	a := Forward{Proto: 6, Port: 80, To: netip.MustParseAddrPort("192.0.2.100:80")}
	b := Forward{Proto: 6, Port: 80, To: netip.MustParseAddrPort("192.0.2.101:80")}
	if _, err := wantedElems([]Forward{a, b}, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("two targets for one WAN port: err %v, want ErrInvalid", err)
	}
	if _, err := wantedElems([]Forward{a, a}, nil); err != nil {
		t.Errorf("the same forward twice: %v", err)
	}
	// Two forwards with one upstream port: the hairpin map holds one.
	x := Forward{Proto: 6, Port: 81, To: netip.MustParseAddrPort("192.0.2.100:81"), UpstreamPort: 90}
	y := Forward{Proto: 6, Port: 82, To: netip.MustParseAddrPort("192.0.2.101:82"), UpstreamPort: 90}
	if _, err := wantedElems([]Forward{x, y}, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("two targets for one upstream port: err %v, want ErrInvalid", err)
	}
}

func e(set setID, key, val string, timeout time.Duration) elem {
	var v []byte
	if val != "" {
		v = []byte(val)
	}
	return elem{set: set, key: []byte(key), val: v, timeout: timeout}
}

func TestPlanSync(t *testing.T) {
	h := time.Hour
	kernel := []elem{
		e(setFwd4, "keep", "A", 0),          // wanted as is, permanent
		e(setFwd4, "stale", "A", h),         // not wanted
		e(setFwd4, "moved", "A", h),         // wanted with value B
		e(setAcc4, "refresh", "", 10),       // wanted, timeout to refresh
		e(setAcc4, "now-permanent", "", h),  // wanted without timeout
		e(setPin6, "now-timeout", "", 0),    // wanted with a timeout
		e(setPin6H, "stale-pinhole", "", h), // not wanted
	}
	want := []elem{
		e(setFwd4, "keep", "A", 0),
		e(setFwd4, "moved", "B", h),
		e(setFwd4, "new", "C", h),
		e(setAcc4, "refresh", "", h),
		e(setAcc4, "now-permanent", "", 0),
		e(setPin6, "now-timeout", "", h),
	}
	t.Run("in place", func(t *testing.T) {
		got := planSync(kernel, want, true)
		wantPlan := plan{
			dels: []elem{
				e(setFwd4, "moved", "A", h), e(setFwd4, "stale", "A", h),
				e(setAcc4, "now-permanent", "", h),
				e(setPin6, "now-timeout", "", 0),
				e(setPin6H, "stale-pinhole", "", h),
			},
			adds: []elem{
				e(setFwd4, "moved", "B", h), e(setFwd4, "new", "C", h),
				e(setAcc4, "now-permanent", "", 0), e(setAcc4, "refresh", "", h),
				e(setPin6, "now-timeout", "", h),
			},
		}
		if diff := cmp.Diff(wantPlan, got, cmpElem, cmp.AllowUnexported(plan{})); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
	t.Run("delete and add", func(t *testing.T) {
		got := planSync(kernel, want, false)
		// the refreshed element is deleted and added again
		found := false
		for _, d := range got.dels {
			if string(d.key) == "refresh" {
				found = true
			}
		}
		if !found {
			t.Errorf("refresh without in-place update does not delete first: %v", got.dels)
		}
	})
	t.Run("nothing to do", func(t *testing.T) {
		got := planSync([]elem{e(setFwd4, "k", "v", 0)}, []elem{e(setFwd4, "k", "v", 0)}, true)
		if len(got.dels)+len(got.adds) != 0 {
			t.Errorf("plan for an equal state: %+v", got)
		}
	})
}

func TestPlanChange(t *testing.T) {
	h := time.Hour
	dels := []elem{e(setFwd4, "k1", "A", 0)}
	adds := []elem{e(setFwd4, "k1", "B", h), e(setAcc4, "k2", "", h)}
	if got := planChange(dels, adds, true); len(got.dels) != 1 || len(got.adds) != 2 {
		t.Errorf("in place: %+v", got)
	}
	got := planChange(dels, adds, false)
	want := plan{dels: []elem{e(setFwd4, "k1", "A", 0), e(setAcc4, "k2", "", h)}, adds: adds}
	if diff := cmp.Diff(want, got, cmpElem, cmp.AllowUnexported(plan{})); diff != "" {
		t.Errorf("delete and add (-want +got):\n%s", diff)
	}
}

func TestPlanRepair(t *testing.T) {
	h := time.Hour
	kernel := []elem{e(setFwd4, "k1", "OTHER", h), e(setFwd4, "k3", "X", h)}
	dels := []elem{e(setFwd4, "k1", "A", 0), e(setFwd4, "missing", "A", 0)}
	adds := []elem{e(setFwd4, "k3", "Y", h)}
	got := planRepair(kernel, dels, adds, true)
	want := plan{
		dels: []elem{e(setFwd4, "k1", "OTHER", h), e(setFwd4, "k3", "X", h)}, // kernel's values
		adds: adds,
	}
	if diff := cmp.Diff(want, got, cmpElem, cmp.AllowUnexported(plan{})); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestKernelTimeout(t *testing.T) {
	for in, want := range map[time.Duration]time.Duration{
		0:                      0,
		time.Nanosecond:        time.Millisecond,
		2 * time.Second:        2 * time.Second,
		MaxTimeout:             MaxTimeout,
		MaxTimeout + time.Hour: 0,
	} {
		if got, err := kernelTimeout(in); err != nil || got != want {
			t.Errorf("kernelTimeout(%v) = %v, %v; want %v", in, got, err, want)
		}
	}
}
