package lab

import (
	"net"
	"strings"
	"testing"
	"time"
)

// TestPortSetTopology: the border relay passes to and from the shared
// address only the set's ports: a listener on cpe's shared address is
// reached on a port of the set and not on another, and flows from cpe
// leave only from a port of the set (each drop counted).
func TestPortSetTopology(t *testing.T) {
	t.Parallel()
	l := New(t, Options{PortSet: []string{"4112-4127", "8208-8223"}})
	if got := l.WANAddr4(); got != MAPShared4 {
		t.Errorf("WANAddr4 = %s, want %s", got, MAPShared4)
	}
	for _, c := range []struct {
		from *NS
		to   string
	}{
		{l.CPE, CGN4},
		{l.LAN, CPELAN4},
		{l.Net, CGNPublic4},
		{l.CPE, CGN6},
	} {
		if err := c.from.Ping(c.to, 3*time.Second); err != nil {
			t.Error(err)
		}
	}
	for _, port := range []string{"4115", "5000"} {
		var ln net.Listener
		var err error
		l.CPE.Do(t, func() { ln, err = net.Listen("tcp4", MAPShared4+":"+port) })
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		t.Cleanup(func() { ln.Close() })
	}
	dial := func(ns *NS, laddr, raddr string) error {
		var err error
		ns.Do(t, func() {
			d := net.Dialer{Timeout: 700 * time.Millisecond}
			if laddr != "" {
				d.LocalAddr, _ = net.ResolveTCPAddr("tcp4", laddr)
			}
			var c net.Conn
			if c, err = d.Dial("tcp4", raddr); err == nil {
				c.Close()
			}
		})
		return err
	}
	if err := dial(l.Net, "", MAPShared4+":4115"); err != nil {
		t.Errorf("net to a port of the set: %v", err)
	}
	if err := dial(l.Net, "", MAPShared4+":5000"); err == nil {
		t.Error("net reached a port outside the set")
	}
	var nl net.Listener
	var err error
	l.Net.Do(t, func() { nl, err = net.Listen("tcp4", NetHost4+":7000") })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nl.Close() })
	go func() {
		for {
			c, err := nl.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if err := dial(l.CPE, MAPShared4+":8210", NetHost4+":7000"); err != nil {
		t.Errorf("cpe from a port of the set: %v", err)
	}
	if err := dial(l.CPE, MAPShared4+":9000", NetHost4+":7000"); err == nil {
		t.Error("cpe reached net from a port outside the set")
	}
	in, out, other, err := l.BRDrops()
	if err != nil || in == 0 || out == 0 || other != 0 {
		t.Errorf("border relay drops: in %d out %d other %d (%v)", in, out, other, err)
	}
	if rs := l.ISP.Run(t, "nft", "list", "table", "inet", "br"); !strings.Contains(rs, "4112-4127, 8208-8223") {
		t.Errorf("border relay's set:\n%s", rs)
	}
}
