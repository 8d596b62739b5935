package natpmp

import (
	"testing"

	"github.com/pcpgw/pcpgw/pcp"
)

// FuzzHandle feeds whole datagrams to the handler with the core faked. The
// property: no panic; silence, or a reply of at most 1100 octets that
// parses as a NAT-PMP or PCP response (a PCP one a multiple of 4 and at
// least 24 octets); a SUCCESS PCP reply answers the request's opcode.
func FuzzHandle(f *testing.F) {
	for _, seed := range []string{
		"0000", "0002 0000 1f90 1f90 00000e10", "0001 0000 0000 0000 00000000", "0003",
		mapReq("00000e10", hostV4, "06", "1f90", "1f90", anyV4),
		mapReq("00000e10", hostV4, "06", "1f90", "1f90", anyV4, optPreferFailure, optFilterPeer, optDescription),
		mapReq("00000e10", hostV4, "06", "1f90", "1f90", anyV4, optThirdParty, optUnknownOpt),
		mapReq("00000000", hostV4, "11", "0000", "0000", anyV4),
		mapReq("00000e10", hostV6, "06", "1f90", "0000", anyV6),
		peerReq("00000e10", hostV4, "1f90"),
		"0200 0000 00000000" + hostV4,
		"0101 0000", "0205 0000 00000000" + hostV4,
	} {
		f.Add(uint8(0), hx(f, seed))
		f.Add(uint8(1), hx(f, seed))
	}
	servers := [2]*Server{}
	cores := [2]*fakeCore{}
	clocks := [2]*testClock{}
	for i := range servers {
		servers[i], cores[i], clocks[i] = newTestServer(f, func(c *Config) {
			c.RatePerHost, c.Burst = 1e9, 1<<30
			c.ThirdParty = i == 1
		})
	}
	f.Fuzz(func(t *testing.T, which uint8, b []byte) {
		i := int(which & 1)
		src, dst := lanHost, cpeLAN
		if which&2 != 0 {
			src, dst = lanHost6, cpeLAN6
		}
		reply := servers[i].Handle(src, dst, b, clocks[i].now())
		if reply == nil {
			return
		}
		if len(reply) > pcp.MaxSize {
			t.Fatalf("reply of %d octets", len(reply))
		}
		switch reply[0] {
		case pcp.VersionNATPMP:
			if _, err := pcp.ParseNATPMPResponse(reply); err != nil {
				t.Fatalf("NAT-PMP reply %x to %x does not parse: %v", reply, b, err)
			}
		case pcp.Version:
			if len(reply)%4 != 0 || len(reply) < pcp.HeaderSize || reply[1]&0x80 == 0 {
				t.Fatalf("PCP reply %x to %x: bad length or R bit", reply, b)
			}
			code := pcp.ResultCode(reply[3])
			r, err := pcp.ParseResponse(reply)
			if err != nil {
				// An error reply echoes the request as it came (§8.2): it
				// may fail to parse only if the request did.
				if _, rerr := pcp.ParseRequest(b); code == pcp.Success || rerr == nil {
					t.Fatalf("PCP reply %x to %x does not parse: %v", reply, b, err)
				}
			}
			if code == pcp.Success && len(b) > 1 && r.Opcode != pcp.Opcode(b[1]&0x7f) {
				t.Fatalf("SUCCESS for opcode %v to a request of opcode %d", r.Opcode, b[1])
			}
		default:
			t.Fatalf("reply %x of version %d", reply, reply[0])
		}
	})
}
