package natpmp

import (
	"bufio"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"github.com/pcpgw/pcpgw/mapping"
	"github.com/pcpgw/pcpgw/pcp"
)

// TestNATPMPCCaptured replays the requests captured from the real natpmpc
// client (testdata/natpmpc-requests.txt) through one server, in order, and
// checks the exact replies.
func TestNATPMPCCaptured(t *testing.T) {
	f, err := os.Open("testdata/natpmpc-requests.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	captured := map[string][][]byte{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		args, pkts, ok := strings.Cut(line, " | ")
		if !ok {
			t.Fatalf("bad line %q", line)
		}
		for _, p := range strings.Fields(pkts) {
			b, err := hex.DecodeString(p)
			if err != nil {
				t.Fatal(err)
			}
			captured[args] = append(captured[args], b)
		}
	}
	s, core, clock := newTestServer(t, nil)
	steps := []struct {
		args  string
		want  []string // replies, in order
		after int      // mappings the core holds afterwards
	}{
		{"-g 192.0.2.1", []string{"0080 0000" + epochHex + "cb007101"}, 0},
		{"-g 192.0.2.1 -a 18080 8080 tcp 3600", []string{"0080 0000" + epochHex + "cb007101", "0082 0000" + epochHex + "1f90 46a0 00000e10"}, 1},
		{"-g 192.0.2.1 -a 18080 8080 udp 3600", []string{"0080 0000" + epochHex + "cb007101", "0081 0000" + epochHex + "1f90 46a0 00000e10"}, 2},
		{"-g 192.0.2.1 -a 0 8080 tcp 0", []string{"0080 0000" + epochHex + "cb007101", "0082 0000" + epochHex + "1f90 0000 00000000"}, 1},
		{"-g 192.0.2.1 -a 0 0 udp 0", []string{"0080 0000" + epochHex + "cb007101", "0081 0000" + epochHex + "0000 0000 00000000"}, 0},
	}
	for _, st := range steps {
		reqs := captured[st.args]
		if len(reqs) != len(st.want) {
			t.Fatalf("%s: %d captured requests, want %d", st.args, len(reqs), len(st.want))
		}
		for i, req := range reqs {
			got := s.Handle(lanHost, cpeLAN, req, clock.now())
			if w := hex.EncodeToString(hx(t, st.want[i])); hex.EncodeToString(got) != w {
				t.Errorf("natpmpc %s, request %x: reply %x, want %s", st.args, req, got, w)
			}
			if _, err := pcp.ParseNATPMPResponse(got); err != nil {
				t.Errorf("reply %x does not parse: %v", got, err)
			}
		}
		if n := len(core.snapshot()); n != st.after {
			t.Errorf("after natpmpc %s: %d mappings, want %d", st.args, n, st.after)
		}
	}
	for _, r := range core.requests {
		if r.Origin != mapping.OriginNATPMP || r.Client != lanHost.Addr() || r.Internal.Addr() != lanHost.Addr() {
			t.Errorf("core request %+v not for the packet's source", r)
		}
	}
}
