package main

import (
	"net/netip"
	"strings"
	"testing"
)

// Route tables as /proc/net/route prints them on a little-endian host
// (the first one seen in the lab's lan namespace).
func TestDefaultRoute(t *testing.T) {
	const header = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
	for _, c := range []struct {
		name, table string
		ifname      string
		gw          string
		err         string
	}{
		{
			name: "lab lan host",
			table: header +
				"pk3x9l0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n" +
				"pk3x9l0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n",
			ifname: "pk3x9l0", gw: "192.0.2.1",
		},
		{
			name: "default route after a link route",
			table: header +
				"eth0\t0000000A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n" +
				"eth0\t00000000\t0100000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n",
			ifname: "eth0", gw: "10.0.0.1",
		},
		{
			name: "default route that is down is skipped",
			table: header +
				"eth1\t00000000\t0100000A\t0002\t0\t0\t0\t00000000\t0\t0\t0\n" +
				"eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n",
			ifname: "eth0", gw: "192.0.2.1",
		},
		{
			name:  "no default route",
			table: header + "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n",
			err:   "no IPv4 default route",
		},
		{name: "empty", table: "", err: "no IPv4 default route"},
		{name: "not a route table", table: "hello world\n", err: "unexpected header"},
		{
			name:  "bad number",
			table: header + "eth0\t00000000\tzz0200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n",
			err:   "line 2",
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			ifname, gw, err := defaultRoute(strings.NewReader(c.table))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("defaultRoute = %q, %v, %v; want an error containing %q", ifname, gw, err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ifname != c.ifname || gw != netip.MustParseAddr(c.gw) {
				t.Errorf("defaultRoute = %q, %v; want %q, %v", ifname, gw, c.ifname, c.gw)
			}
		})
	}
}
