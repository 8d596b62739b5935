package lab

import (
	"testing"
	"time"
)

func TestPingEveryHop(t *testing.T) {
	t.Parallel()
	l := New(t, Options{})
	for _, c := range []struct {
		from *NS
		to   string
	}{
		{l.LAN, CPELAN4},
		{l.LAN, CPELAN6},
		{l.CPE, CGN4},
		{l.CPE, CGN6},
		{l.ISP, NetHost4},
		{l.LAN, CGN6}, // through cpe
		{l.ISP, LANHost6},
	} {
		if err := c.from.Ping(c.to, 5*time.Second); err != nil {
			t.Error(err)
		}
	}
}

func TestMiniupnpdNATPMP(t *testing.T) {
	t.Parallel()
	l := New(t, Options{})
	m := l.StartMiniupnpd(t, MiniupnpdOptions{})
	out := l.CPE.Run(t, "natpmpc", "-g", CGN4, "-a", "18080", "18080", "tcp", "3600")
	t.Logf("natpmpc: %s", out)
	Eventually(t, 5*time.Second, func() bool { return m.DNATCount(t) == 1 }, "no dnat in cgn:\n%s", m.Ruleset(t))
	t.Log(m.Ruleset(t))
}
