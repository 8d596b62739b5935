package firewall

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"syscall"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/pcpgw/pcpgw/portset"
	"golang.org/x/sys/unix"
)

// SNAT is the CPE's own outbound NAT in portset mode: flows leaving on the
// WAN interface take the shared address and a port of Ports only, so that
// the rest of the provider's port set stays free for mappings.
type SNAT struct {
	// Addr is the shared IPv4 address.
	Addr netip.Addr
	// Ports are the ports outbound flows may take. Empty: pcpgw does no
	// outbound NAT (the main firewall's applies).
	Ports portset.Set
}

// Names and priority of the outbound NAT of portset mode.
const (
	chainSNAT      = "portset_snat"
	chainSNATRange = "portset_snat_" // + the range's index
	setSNAT        = "portset_snat"
	// maxSNATRanges bounds the ranges (one chain each) of the outbound
	// NAT; a PSID's set has at most 63 with MAP's default offset.
	maxSNATRanges = 1024
	// prioPortSetSNAT runs the chain before every other source NAT of
	// postrouting: fw4's srcnat (100), where OpenWrt's map.sh has fw4 put
	// one SNAT rule per range of the set (the first always matches, so
	// outbound flows only ever get the first range), and the chains at
	// priority 0 that MAP-E users add to spread flows over the set. The
	// first NAT chain that binds a flow is the only one that does.
	prioPortSetSNAT = -10
)

// snatObjects are the base chain and the verdict map of the outbound NAT.
func (f *NFT) snatObjects() (*nftables.Chain, *nftables.Set) {
	accept := nftables.ChainPolicyAccept
	ch := &nftables.Chain{Name: chainSNAT, Table: f.table, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityRef(prioPortSetSNAT), Policy: &accept}
	m := &nftables.Set{Table: f.table, Name: setSNAT, IsMap: true,
		KeyType: nftables.TypeInteger, KeyByteOrder: binaryutil.NativeEndian, DataType: nftables.TypeVerdict}
	return ch, m
}

func (f *NFT) snatRangeChain(i int) *nftables.Chain {
	return &nftables.Chain{Name: chainSNATRange + strconv.Itoa(i), Table: f.table}
}

// installSNAT adds to the batch of install the base chain and the map,
// empty, and the removal of the range chains a previous run left: a table
// adopted from it never keeps an outbound NAT to an old address.
func (f *NFT) installSNAT() error {
	chains, err := f.conn.ListChainsOfTableFamily(f.table.Family)
	if err != nil && !errors.Is(err, syscall.ENOENT) {
		return err
	}
	ch, m := f.snatObjects()
	f.conn.FlushChain(f.conn.AddChain(ch))
	if err := f.conn.AddSet(m, nil); err != nil {
		return err
	}
	f.conn.FlushSet(m)
	for _, c := range chains {
		if c.Table.Name == f.table.Name && strings.HasPrefix(c.Name, chainSNATRange) {
			f.conn.FlushChain(c)
			f.conn.DelChain(c)
		}
	}
	f.snatRanges = 0
	return nil
}

// SetSNAT replaces the outbound NAT of portset mode, in one batch:
//
//	chain portset_snat { type nat hook postrouting priority -10; policy accept;
//	  meta nfproto ipv4 oifname WAN meta l4proto tcp  numgen inc mod N vmap @portset_snat
//	  meta nfproto ipv4 oifname WAN meta l4proto udp  numgen inc mod N vmap @portset_snat
//	  meta nfproto ipv4 oifname WAN meta l4proto icmp numgen inc mod N vmap @portset_snat
//	}
//	map portset_snat { type integer : verdict; elements = { 0 : jump portset_snat_0, ... } }
//	chain portset_snat_0 { snat ip to ADDR:4112-4127 }   # one chain per range of s.Ports
//	...
//
// Each new flow takes the next range of s.Ports in turn and the kernel
// picks a free port inside it (as for any SNAT range), so a port whose
// tuple is taken is replaced by another of the same range. A flow whose
// range has no port left toward its destination is dropped; its
// retransmission is a new flow and takes the next range. ICMP echo
// identifiers take the same ranges (a MAP border relay checks them as
// ports). A zero s removes the rules.
//
// (One map from the counter to address . port range would do it in one
// rule, but nft(8) cannot show such a map unless it carries nft's own
// description of its values, which this library cannot write: `nft list
// ruleset` crashed on it.)
func (f *NFT) SetSNAT(ctx context.Context, s SNAT) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	addr := s.Addr.Unmap()
	ranges := s.Ports.Ranges()
	switch {
	case len(ranges) > 0 && !addr.Is4():
		return fmt.Errorf("%w: SNAT address %v is not IPv4", ErrInvalid, s.Addr)
	case len(ranges) > maxSNATRanges:
		return fmt.Errorf("%w: %d port ranges for the outbound NAT (at most %d)", ErrInvalid, len(ranges), maxSNATRanges)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return ErrClosed
	}
	ch, m := f.snatObjects()
	c := f.conn
	c.FlushChain(ch)
	c.FlushSet(m)
	els := make([]nftables.SetElement, len(ranges))
	for i, r := range ranges {
		rc := c.AddChain(f.snatRangeChain(i))
		c.FlushChain(rc)
		c.AddRule(&nftables.Rule{Table: f.table, Chain: rc, Exprs: []expr.Any{
			&expr.Immediate{Register: reg0, Data: addr.AsSlice()},
			&expr.Immediate{Register: reg0 + 1, Data: binaryutil.BigEndian.PutUint16(r.Lo)},
			&expr.Immediate{Register: reg0 + 2, Data: binaryutil.BigEndian.PutUint16(r.Hi)},
			&expr.NAT{Type: expr.NATTypeSourceNAT, Family: unix.NFPROTO_IPV4,
				RegAddrMin: reg0, RegProtoMin: reg0 + 1, RegProtoMax: reg0 + 2},
		}})
		els[i] = nftables.SetElement{Key: binaryutil.NativeEndian.PutUint32(uint32(i)),
			VerdictData: &expr.Verdict{Kind: expr.VerdictJump, Chain: rc.Name}}
	}
	for i := len(ranges); i < f.snatRanges; i++ {
		rc := f.snatRangeChain(i)
		c.FlushChain(rc)
		c.DelChain(rc)
	}
	if len(ranges) > 0 {
		if err := f.chunked(c.SetAddElements, m, els); err != nil {
			return fmt.Errorf("firewall: snat: %w", err)
		}
		for _, proto := range []byte{unix.IPPROTO_TCP, unix.IPPROTO_UDP, unix.IPPROTO_ICMP} {
			c.AddRule(&nftables.Rule{Table: f.table, Chain: ch, Exprs: cat(nfproto(unix.NFPROTO_IPV4),
				[]expr.Any{
					&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: reg0},
					&expr.Cmp{Op: expr.CmpOpEq, Register: reg0, Data: ifname(f.cfg.WAN)},
				},
				l4proto(proto),
				[]expr.Any{
					&expr.Numgen{Register: reg0, Modulus: uint32(len(ranges)), Type: unix.NFT_NG_INCREMENTAL},
					&expr.Lookup{SourceRegister: reg0, DestRegister: 0, IsDestRegSet: true, SetName: m.Name, SetID: m.ID},
				})})
		}
	}
	if err := f.flush(); err != nil {
		return fmt.Errorf("firewall: snat: %w", err)
	}
	f.snatRanges = len(ranges)
	return nil
}
