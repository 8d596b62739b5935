package firewall

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"syscall"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// ctnetlink (linux/netfilter/nfnetlink_conntrack.h): a GET of one
// conntrack entry by its original tuple.
const (
	ipctnlMsgCtGet  = 1
	ctaTupleOrig    = 1
	ctaTupleReply   = 2
	ctaTupleIP      = 1
	ctaTupleProto   = 2
	ctaIPv4Src      = 1
	ctaIPv4Dst      = 2
	ctaProtoNum     = 1
	ctaProtoSrcPort = 2
	ctaProtoDstPort = 3
)

// flowTimeout bounds one conntrack lookup.
const flowTimeout = 2 * time.Second

// FlowSource returns the source address and port an existing IPv4 flow of
// proto from the LAN host from to the remote to leaves the CPE with:
// conntrack's reply direction of the flow, NAT included (what the main
// firewall's masquerade or an Outbound gave it). ErrNotFound when conntrack
// holds no such flow. A PEER for a flow that exists must tell this
// source: a new NAT rule does not change the NAT of a flow that has one.
func (f *NFT) FlowSource(ctx context.Context, proto uint8, from, to netip.AddrPort) (netip.AddrPort, error) {
	fa, ta := from.Addr().Unmap(), to.Addr().Unmap()
	if !supported(proto) || !fa.Is4() || !ta.Is4() {
		return netip.AddrPort{}, fmt.Errorf("%w: flow %v -> %v", ErrInvalid, from, to)
	}
	f.mu.Lock()
	closed, ns := f.closed, f.nsFD
	f.mu.Unlock()
	if closed {
		return netip.AddrPort{}, ErrClosed
	}
	cfg := &netlink.Config{}
	if ns >= 0 {
		cfg.NetNS = ns
	}
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, cfg)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("firewall: conntrack: %w", err)
	}
	defer c.Close()
	deadline := time.Now().Add(flowTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := c.SetDeadline(deadline); err != nil {
		return netip.AddrPort{}, fmt.Errorf("firewall: conntrack: %w", err)
	}
	req, err := flowRequest(proto, netip.AddrPortFrom(fa, from.Port()), netip.AddrPortFrom(ta, to.Port()))
	if err != nil {
		return netip.AddrPort{}, err
	}
	// The kernel flags its answer NLM_F_MULTI without a DONE after it:
	// the acknowledgement asked for ends the exchange.
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_CTNETLINK<<8 | ipctnlMsgCtGet), Flags: netlink.Request | netlink.Acknowledge},
		Data:   req,
	})
	if errors.Is(err, syscall.ENOENT) {
		return netip.AddrPort{}, fmt.Errorf("%w: flow %v -> %v", ErrNotFound, from, to)
	}
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("firewall: conntrack: %w", err)
	}
	for _, m := range msgs {
		if src, ok := replyDest(m.Data); ok {
			return src, nil
		}
	}
	return netip.AddrPort{}, fmt.Errorf("%w: flow %v -> %v (no reply tuple)", ErrNotFound, from, to)
}

// flowRequest is the nfgenmsg and CTA_TUPLE_ORIG of a GET.
func flowRequest(proto uint8, from, to netip.AddrPort) ([]byte, error) {
	ae := netlink.NewAttributeEncoder()
	ae.Nested(ctaTupleOrig, func(t *netlink.AttributeEncoder) error {
		t.Nested(ctaTupleIP, func(ip *netlink.AttributeEncoder) error {
			ip.Bytes(ctaIPv4Src, from.Addr().AsSlice())
			ip.Bytes(ctaIPv4Dst, to.Addr().AsSlice())
			return nil
		})
		t.Nested(ctaTupleProto, func(p *netlink.AttributeEncoder) error {
			p.Uint8(ctaProtoNum, proto)
			p.Bytes(ctaProtoSrcPort, binary.BigEndian.AppendUint16(nil, from.Port()))
			p.Bytes(ctaProtoDstPort, binary.BigEndian.AppendUint16(nil, to.Port()))
			return nil
		})
		return nil
	})
	attrs, err := ae.Encode()
	if err != nil {
		return nil, fmt.Errorf("firewall: conntrack request: %w", err)
	}
	// nfgenmsg: family, version NFNETLINK_V0, resource id 0 (big-endian).
	return append([]byte{unix.AF_INET, 0, 0, 0}, attrs...), nil
}

// replyDest reads the reply tuple's destination from a conntrack message
// (nfgenmsg, then attributes).
func replyDest(b []byte) (netip.AddrPort, bool) {
	if len(b) < 4 {
		return netip.AddrPort{}, false
	}
	ad, err := netlink.NewAttributeDecoder(b[4:])
	if err != nil {
		return netip.AddrPort{}, false
	}
	var addr netip.Addr
	var port uint16
	var okPort bool
	for ad.Next() {
		if ad.Type() != ctaTupleReply {
			continue
		}
		ad.Nested(func(t *netlink.AttributeDecoder) error {
			for t.Next() {
				switch t.Type() {
				case ctaTupleIP:
					t.Nested(func(ip *netlink.AttributeDecoder) error {
						for ip.Next() {
							if ip.Type() == ctaIPv4Dst {
								if a, ok := netip.AddrFromSlice(ip.Bytes()); ok && a.Is4() {
									addr = a
								}
							}
						}
						return nil
					})
				case ctaTupleProto:
					t.Nested(func(p *netlink.AttributeDecoder) error {
						for p.Next() {
							if p.Type() == ctaProtoDstPort && len(p.Bytes()) == 2 {
								port, okPort = binary.BigEndian.Uint16(p.Bytes()), true
							}
						}
						return nil
					})
				}
			}
			return nil
		})
	}
	if ad.Err() != nil || !addr.IsValid() || !okPort {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(addr, port), true
}
