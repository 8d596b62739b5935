package firewall

import (
	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Registers: nftables has 16 32-bit registers starting at NFT_REG32_00 (8);
// concatenated keys are loaded into consecutive ones, each field padded to
// a multiple of 4 bytes, as nft(8) does.
const reg0 = unix.NFT_REG32_00

// Names of the chains and the static sets of the table.
const (
	chainPrerouting  = "prerouting"
	chainPostrouting = "postrouting"
	chainForward     = "forward"
	chainWAN6In      = "wan6_in"
	setLANIf         = "lan_ifs"
	setWAN4          = "wan4"
	setExt4          = "ext4"
	setProbe         = "probe"
)

// Chain priorities: DNAT just after fw4's dstnat (-100) so that the user's
// own redirects win; the forward chain before fw4's filter chain (0) so the
// ct mark is set when fw4 looks at it.
const (
	prioDNAT    = -95
	prioSNAT    = 95
	prioForward = -5
)

// Packet field sources used to build keys.
type src int

const (
	srcL4Proto     src = iota // meta l4proto
	srcTHDport                // th dport
	srcTHSport                // th sport
	srcIPSaddr                // ip saddr
	srcIPDaddr                // ip daddr
	srcIP6Saddr               // ip6 saddr
	srcIP6Daddr               // ip6 daddr
	srcCtOrigDport            // ct original proto-dst
)

// load returns the expressions that load the concatenation of srcs into
// consecutive registers starting at reg0.
func load(srcs ...src) []expr.Any {
	var out []expr.Any
	r := uint32(reg0)
	for _, s := range srcs {
		var n uint32 = 4
		switch s {
		case srcL4Proto:
			out = append(out, &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: r})
		case srcTHDport:
			out = append(out, &expr.Payload{DestRegister: r, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2})
		case srcTHSport:
			out = append(out, &expr.Payload{DestRegister: r, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2})
		case srcIPSaddr:
			out = append(out, &expr.Payload{DestRegister: r, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4})
		case srcIPDaddr:
			out = append(out, &expr.Payload{DestRegister: r, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4})
		case srcIP6Saddr:
			out = append(out, &expr.Payload{DestRegister: r, Base: expr.PayloadBaseNetworkHeader, Offset: 8, Len: 16})
			n = 16
		case srcIP6Daddr:
			out = append(out, &expr.Payload{DestRegister: r, Base: expr.PayloadBaseNetworkHeader, Offset: 24, Len: 16})
			n = 16
		case srcCtOrigDport:
			out = append(out, &expr.Ct{Register: r, Key: expr.CtKeyPROTODST, Direction: 0})
		}
		r += n / 4
	}
	return out
}

func nfproto(p byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: reg0},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg0, Data: []byte{p}},
	}
}

func ifname(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}

func iifname(name string) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: reg0},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg0, Data: ifname(name)},
	}
}

func ifIn(key expr.MetaKey, set *nftables.Set) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: key, Register: reg0},
		&expr.Lookup{SourceRegister: reg0, SetName: set.Name, SetID: set.ID},
	}
}

func lookup(set *nftables.Set, srcs ...src) []expr.Any {
	return append(load(srcs...), &expr.Lookup{SourceRegister: reg0, SetName: set.Name, SetID: set.ID})
}

// ctBits matches (ct key & bits) != 0.
func ctBits(key expr.CtKey, bits uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: reg0, Key: key},
		&expr.Bitwise{SourceRegister: reg0, DestRegister: reg0, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(bits), Xor: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg0, Data: binaryutil.NativeEndian.PutUint32(0)},
	}
}

// setMark is `ct mark set ct mark | mark`.
func setMark(mark uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: reg0, Key: expr.CtKeyMARK},
		&expr.Bitwise{SourceRegister: reg0, DestRegister: reg0, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(^mark), Xor: binaryutil.NativeEndian.PutUint32(mark)},
		&expr.Ct{Register: reg0, Key: expr.CtKeyMARK, SourceRegister: true},
	}
}

// hasMark is `ct mark & mark == mark`.
func hasMark(mark uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: reg0, Key: expr.CtKeyMARK},
		&expr.Bitwise{SourceRegister: reg0, DestRegister: reg0, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(mark), Xor: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg0, Data: binaryutil.NativeEndian.PutUint32(mark)},
	}
}

func l4proto(p byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg0},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg0, Data: []byte{p}},
	}
}

func thDport(port uint16) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: reg0, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg0, Data: binaryutil.BigEndian.PutUint16(port)},
	}
}

func icmp6Type(t byte) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: reg0, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg0, Data: []byte{t}},
	}
}

func verdict(k expr.VerdictKind) *expr.Verdict { return &expr.Verdict{Kind: k} }

func cat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// dnatVia is `dnat ip to <key> map @m`: the map's value (address . port)
// lands in reg0 and reg0+1.
func dnatVia(m *nftables.Set, srcs ...src) []expr.Any {
	return append(load(srcs...),
		&expr.Lookup{SourceRegister: reg0, DestRegister: reg0, IsDestRegSet: true, SetName: m.Name, SetID: m.ID},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: reg0, RegProtoMin: reg0 + 1},
	)
}

// snatVia is `snat ip to <key> map @m`: the map's value (address . port)
// lands in reg0 and reg0+1.
func snatVia(m *nftables.Set, srcs ...src) []expr.Any {
	return append(load(srcs...),
		&expr.Lookup{SourceRegister: reg0, DestRegister: reg0, IsDestRegSet: true, SetName: m.Name, SetID: m.ID},
		&expr.NAT{Type: expr.NATTypeSourceNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: reg0, RegProtoMin: reg0 + 1},
	)
}

func oifname(name string) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: reg0},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg0, Data: ifname(name)},
	}
}

// wan6 is the interface inbound IPv6 arrives on.
func (f *NFT) wan6() string {
	if f.cfg.WAN6 != "" {
		return f.cfg.WAN6
	}
	return f.cfg.WAN
}

// rules returns the table's static rules per chain (see doc.go).
func (f *NFT) rules(sets *tableSets) map[string][][]expr.Any {
	ipv4, ipv6 := byte(unix.NFPROTO_IPV4), byte(unix.NFPROTO_IPV6)
	mark := setMark(f.mark)
	accept := []expr.Any{verdict(expr.VerdictAccept)}
	el := sets.elems
	r := map[string][][]expr.Any{
		chainPrerouting: {
			cat(nfproto(ipv4), iifname(f.cfg.WAN), dnatVia(el[setFwd4H], srcIPSaddr, srcL4Proto, srcTHDport)),
			cat(nfproto(ipv4), iifname(f.cfg.WAN), dnatVia(el[setFwd4], srcL4Proto, srcTHDport)),
			// hairpin: a LAN host connecting to the CPE's WAN address
			cat(nfproto(ipv4), ifIn(expr.MetaKeyIIFNAME, sets.lanIfs), lookup(sets.wan4, srcIPDaddr),
				dnatVia(el[setFwd4], srcL4Proto, srcTHDport)),
			// hairpin: a LAN host connecting to the upstream's external
			// address, by the port the upstream gave (not the WAN port)
			cat(nfproto(ipv4), ifIn(expr.MetaKeyIIFNAME, sets.lanIfs), lookup(sets.ext4, srcIPDaddr),
				dnatVia(el[setFwd4X], srcL4Proto, srcTHDport)),
		},
		chainPostrouting: {
			// hairpin: replies must come back through the CPE
			cat(nfproto(ipv4), ifIn(expr.MetaKeyIIFNAME, sets.lanIfs), ifIn(expr.MetaKeyOIFNAME, sets.lanIfs),
				ctBits(expr.CtKeySTATUS, ipsDstNAT), hasMark(f.mark), []expr.Any{&expr.Masq{}}),
			// PEER: an outbound flow leaves with the source chosen for it
			cat(nfproto(ipv4), oifname(f.cfg.WAN), snatVia(el[setPeer4], srcIPSaddr, srcL4Proto, srcTHSport, srcIPDaddr, srcTHDport)),
		},
		chainForward: {
			cat(nfproto(ipv4), iifname(f.cfg.WAN), lookup(el[setAcc4], srcIPDaddr, srcL4Proto, srcTHDport, srcCtOrigDport), mark, accept),
			cat(nfproto(ipv4), iifname(f.cfg.WAN), lookup(el[setAcc4H], srcIPSaddr, srcIPDaddr, srcL4Proto, srcTHDport, srcCtOrigDport), mark, accept),
			cat(nfproto(ipv4), ifIn(expr.MetaKeyIIFNAME, sets.lanIfs), ctBits(expr.CtKeySTATUS, ipsDstNAT),
				lookup(el[setAcc4], srcIPDaddr, srcL4Proto, srcTHDport, srcCtOrigDport), mark, accept),
			cat(nfproto(ipv4), ifIn(expr.MetaKeyIIFNAME, sets.lanIfs), ctBits(expr.CtKeySTATUS, ipsDstNAT),
				lookup(el[setAcc4X], srcIPDaddr, srcL4Proto, srcTHDport, srcCtOrigDport), mark, accept),
			cat(nfproto(ipv6), iifname(f.wan6()), lookup(el[setPin6], srcIP6Daddr, srcL4Proto, srcTHDport), mark, accept),
			cat(nfproto(ipv6), iifname(f.wan6()), lookup(el[setPin6H], srcIP6Saddr, srcIP6Daddr, srcL4Proto, srcTHDport), mark, accept),
			cat(nfproto(ipv6), iifname(f.wan6()), lookup(el[setPin6P], srcTHSport, srcIP6Daddr, srcL4Proto, srcTHDport), mark, accept),
			cat(nfproto(ipv6), iifname(f.wan6()), lookup(el[setPin6HP], srcIP6Saddr, srcTHSport, srcIP6Daddr, srcL4Proto, srcTHDport), mark, accept),
			cat(nfproto(ipv6), iifname(f.wan6()), lookup(el[setPin6S], srcIP6Saddr, srcIP6Daddr, srcL4Proto, srcTHDport), mark, accept),
		},
	}
	if f.cfg.IPv6Baseline {
		r[chainForward] = append(r[chainForward],
			cat(nfproto(ipv6), iifname(f.wan6()), []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: chainWAN6In}}))
		r[chainWAN6In] = [][]expr.Any{
			// RFC 6092 REC-10, REC-18, REC-23 and RFC 4890 §4.3.1: ICMPv6
			// errors about a flow we track are "related".
			cat(ctBits(expr.CtKeySTATE, expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED), accept),
			cat(ctBits(expr.CtKeySTATE, expr.CtStateBitINVALID), []expr.Any{verdict(expr.VerdictDrop)}),
			// RFC 4890 §4.3.1: echo request must not be dropped.
			cat(l4proto(unix.IPPROTO_ICMPV6), icmp6Type(128), accept),
			// RFC 6092 REC-21, REC-22, REC-26: AH, ESP, HIP.
			cat(l4proto(unix.IPPROTO_AH), accept),
			cat(l4proto(unix.IPPROTO_ESP), accept),
			cat(l4proto(139), accept),
			// RFC 6092 REC-24 (IKE) and UDP-encapsulated IPsec.
			cat(l4proto(unix.IPPROTO_UDP), thDport(500), accept),
			cat(l4proto(unix.IPPROTO_UDP), thDport(4500), accept),
			{verdict(expr.VerdictDrop)},
		}
	}
	return r
}

// ipsDstNAT is IPS_DST_NAT of linux/netfilter/nf_conntrack_common.h (ct
// status dnat).
const ipsDstNAT = 1 << 5
