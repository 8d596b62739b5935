package upnpigd

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/internal/dnsq"
)

// fakeResolver answers from a table; "slow.lan" waits for the context.
func fakeResolver(ctx context.Context, host string) ([]netip.Addr, error) {
	switch strings.TrimSuffix(host, ".") {
	case "me.lan":
		return []netip.Addr{mustAddr("2001:db8:1::100"), mustAddr("127.0.0.1")}, nil
	case "peer.example":
		return []netip.Addr{mustAddr("198.51.100.7"), mustAddr("2001:db8:2::7")}, nil
	case "v6only.lan":
		return []netip.Addr{mustAddr("2001:db8:1::100")}, nil
	case "slow.lan":
		<-ctx.Done()
		return nil, ctx.Err()
	case "nodata.lan":
		return nil, dnsq.ErrNoData
	case "servfail.lan":
		return nil, &dnsq.RcodeError{Rcode: dnsq.RcodeServFail}
	}
	return nil, &dnsq.RcodeError{Rcode: dnsq.RcodeNXDomain}
}

// TestHostNames: IGD:2 takes host names in RemoteHost and InternalClient
// (REQUIREMENTS 33), and IGD:1 too (as miniupnpd), looked up within
// ResolveTimeout: the mapping holds the address of the family wanted; a
// name that does not exist or has no such address is 402, a lookup that
// times out is 501 within the bound; malformed names are 402 without a
// lookup.
func TestHostNames(t *testing.T) {
	lookups := 0
	ti := newTestIGD(t, func(c *Config) {
		c.ResolveTimeout = 200 * time.Millisecond
		c.Resolve = func(ctx context.Context, host string) ([]netip.Addr, error) {
			lookups++
			return fakeResolver(ctx, host)
		}
	})
	for _, tt := range []struct {
		name     string
		path, ns string
		action   string
		args     []string
		code     int // 0: success
		lookups  int
		client   string // the mapping's internal address on success
		remote   string
	}{
		{"IGD:2 internal client name", ctlIP2, nsIP2, "AddPortMapping", addArgs("NewInternalClient", "me.lan", "NewExternalPort", "18081"), 0, 1, "127.0.0.1", ""},
		{"IGD:2 trailing dot, remote host name", ctlIP2, nsIP2, "AddPortMapping", addArgs("NewInternalClient", "me.lan.", "NewRemoteHost", "peer.example", "NewExternalPort", "18082"), 0, 2, "127.0.0.1", "198.51.100.7"},
		{"IGD:2 unknown name", ctlIP2, nsIP2, "AddPortMapping", addArgs("NewInternalClient", "nobody.lan", "NewExternalPort", "18083"), 402, 1, "", ""},
		{"IGD:2 name without IPv4", ctlIP2, nsIP2, "AddPortMapping", addArgs("NewInternalClient", "v6only.lan", "NewExternalPort", "18084"), 402, 1, "", ""},
		{"IGD:2 lookup timeout", ctlIP2, nsIP2, "AddPortMapping", addArgs("NewInternalClient", "slow.lan", "NewExternalPort", "18085"), 501, 1, "", ""},
		{"IGD:2 name without address (NODATA)", ctlIP2, nsIP2, "AddPortMapping", addArgs("NewInternalClient", "nodata.lan", "NewExternalPort", "18089"), 402, 1, "", ""},
		{"IGD:2 server failure", ctlIP2, nsIP2, "AddPortMapping", addArgs("NewInternalClient", "servfail.lan", "NewExternalPort", "18090"), 501, 1, "", ""},
		{"IGD:2 not a name", ctlIP2, nsIP2, "AddPortMapping", addArgs("NewInternalClient", "me_lan;rm", "NewExternalPort", "18086"), 402, 0, "", ""},
		{"IGD:2 label too long", ctlIP2, nsIP2, "AddPortMapping", addArgs("NewInternalClient", strings.Repeat("a", 64)+".lan", "NewExternalPort", "18087"), 402, 0, "", ""},
		{"IGD:1 name", ctlIP1, nsIP1, "AddPortMapping", addArgs("NewInternalClient", "me.lan", "NewExternalPort", "18088"), 0, 1, "127.0.0.1", ""},
		{"pinhole internal client name", ctlFW, nsFW, "AddPinhole", pinArgs("InternalClient", "me.lan", "RemoteHost", "peer.example"), 0, 2, "2001:db8:1::100", "2001:db8:2::7"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ti.core.mu.Lock()
			ti.core.secure = false // the test client is 127.0.0.1, not the names' hosts
			ti.core.mu.Unlock()
			before, reqs := lookups, len(ti.core.reqs)
			start := time.Now()
			st, body := ti.post(t, tt.path, quoted(tt.ns, tt.action), soapBody(tt.ns, tt.action, tt.args...))
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("answered after %v (lookup bound 200 ms)", took)
			}
			if got := lookups - before; got != tt.lookups {
				t.Errorf("%d lookups, want %d", got, tt.lookups)
			}
			if tt.code != 0 {
				if got := faultCode(t, st, body); got != tt.code {
					t.Errorf("code %d, want %d: %s", got, tt.code, body)
				}
				if len(ti.core.reqs) != reqs {
					t.Errorf("the core was asked: %+v", ti.core.reqs[reqs:])
				}
				return
			}
			if st != 200 || len(ti.core.reqs) != reqs+1 {
				t.Fatalf("HTTP %d, %d core requests: %s", st, len(ti.core.reqs)-reqs, body[strings.Index(body, "<s:Body"):])
			}
			r := ti.core.reqs[reqs]
			if r.Internal.Addr() != mustAddr(tt.client) {
				t.Errorf("internal %v, want %s", r.Internal, tt.client)
			}
			if (tt.remote == "") != !r.RemoteHost.IsValid() || tt.remote != "" && r.RemoteHost != mustAddr(tt.remote) {
				t.Errorf("remote host %v, want %q", r.RemoteHost, tt.remote)
			}
		})
	}
}

func TestIsHostName(t *testing.T) {
	for _, tt := range []struct {
		v  string
		ok bool
	}{
		{"host", true}, {"host.lan", true}, {"host.lan.", true}, {"a-b.c0", true},
		{"", false}, {".", false}, {"-a.lan", false}, {"a-.lan", false}, {"a..lan", false},
		{"a_b.lan", false}, {"a b", false}, {"é.lan", false}, {strings.Repeat("a.", 127) + "a", false},
	} {
		if got := isHostName(tt.v); got != tt.ok {
			t.Errorf("isHostName(%q) = %v, want %v", tt.v, got, tt.ok)
		}
	}
}
