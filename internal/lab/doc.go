// Package lab builds, in network namespaces, the home network behind a
// carrier-grade NAT of ../shared/LAB.md, for pcpgw's privileged tests:
//
//	 lan              cpe (pcpgw)                 isp (CGN, miniupnpd)          net
//	[l0]----------[c0]       [c1]-------------[i0]          [i1]-------------[n0]
//	192.0.2.100   192.0.2.1   100.64.0.2       100.64.0.1    203.0.113.1     203.0.113.50
//	2001:db8:1::100  2001:db8:1::1  2001:db8:ff::2  2001:db8:ff::1
//
// lan routes by default via cpe, cpe via isp; isp routes 2001:db8:1::/64
// via cpe; cpe and isp forward IPv4 and IPv6. With Options.Local there is
// no isp: cpe's c1 (203.0.113.2/24, 2001:db8:ff::2/64) links directly to
// net's n0 (203.0.113.50/24, 2001:db8:ff::1/64). Options.ExtraLANHosts
// adds LAN hosts (192.0.2.101 and up) behind a bridge in cpe that then
// holds cpe's LAN addresses. Options.PortSet builds an A+P (MAP-E, MAP-T,
// lw4o6) home without the softwire: cpe's c1 holds the shared address
// 203.0.113.9/32 (MAPShared4), which isp routes to it and net via isp, and
// isp plays the stateless border relay: it does no NAT and passes to and
// from 203.0.113.9 only the set's ports (Lab.BRDrops counts the rest).
// Options.DSLite builds a DS-Lite home without the softwire: the softwire
// is a veth of its own carrying IPv4 only, cpe's CPEWANIf (192.0.0.2/29,
// the B4 address) to isp's ISPSoftwireIf (192.0.0.1/29); c1 (CPEWAN6If)
// is the IPv6 uplink with no IPv4, the AFTR's 2001:db8:ff::1 across it;
// StartMiniupnpd then also listens on the softwire and permits the B4's
// own address. Lab.StartNAT64 adds the provider's stateful NAT64 in isp:
// tayga on a tun device translating NAT64Prefix (2001:db8:64::/96) to its
// pool 100.64.1.0/24, masqueraded to 203.0.113.1, with a DNAT map that
// NAT64.Forward fills (what the provider's PCP server does).
//
// Every namespace and interface name starts with a random per-lab prefix
// ("p" and four letters or digits, e.g. namespace "pk3x9cpe", interface
// "pk3x9c1"), so parallel tests in several test binaries do not collide;
// the Lab's fields hold the real names. IPv6 duplicate address detection
// is off so addresses are usable at once, and New returns when every link
// is up. A t.Cleanup kills every process left in the namespaces (`ip netns
// pids`) and deletes them, which removes their veths and nftables tables,
// also when the test fails or panics. Labs are registered in
// /run/pcpgw-lab with their owning process, and New first removes the labs
// of test binaries that died without cleaning up (killed, or stopped by
// "panic: test timed out", which runs no cleanups).
//
// NS.Run, NS.Start and NS.Cmd run programs inside a namespace (through `ip
// netns exec`); NS.Do runs Go code with the goroutine's thread inside it,
// so sockets made there stay there. Eventually polls a condition with a
// bound instead of sleeping.
//
// Lab.StartMiniupnpd runs miniupnpd 2.3.9 (extracted by
// scripts/deps-test.sh under $PCPGW_PEERS or /var/cache/pcpgw-peers) in isp
// as the provider's CGN and PCP server, with LAB.md's table inet cgn and
// configuration. Lab.StartPcpgw runs the module's cmd/pcpgw in cpe, built
// once per test binary (or $PCPGW_BIN when set).
//
// Building a lab takes 0.1 to 0.4 s of commands plus up to about 1 s of
// waiting for the kernel's link watcher to bring the veths up (it runs at
// most once a second); tearing one down takes 20 to 70 ms.
//
// Tests using the lab call New (or RequireRoot) first: they skip with a
// reason when not root, and fail instead when PCPGW_E2E=1.
package lab
