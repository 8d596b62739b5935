package mapping

import (
	"context"
	"errors"
	"math"
	"net/netip"
	"slices"
	"time"

	"github.com/pcpgw/pcpgw/firewall"
	"github.com/pcpgw/pcpgw/pcp"
	"github.com/pcpgw/pcpgw/upstream"
)

// PeerRequest is a LAN client's PCP PEER (RFC 6887 §12): an outbound
// mapping for the flow of Proto from Internal to Remote, made (or
// extended) before or after the flow starts.
type PeerRequest struct {
	// Client is the requester, from the socket.
	Client netip.Addr
	Proto  Proto
	// Internal is the LAN host and port of the flow (the requester's own,
	// or another host's with THIRD_PARTY).
	Internal netip.AddrPort
	// Remote is the remote peer.
	Remote netip.AddrPort
	// SuggestedExternal is the client's suggestion (the outermost
	// endpoint an earlier PEER gave, to re-create it, §12.1); zero parts
	// mean any.
	SuggestedExternal netip.AddrPort
	// Lifetime is asked for; PEER cannot delete (§12.1): it must be more
	// than zero.
	Lifetime time.Duration
	// Nonce is the client's mapping nonce (§12.3).
	Nonce Nonce
}

// PeerResult is the flow's outermost external endpoint and how long the
// PEER mapping lasts.
type PeerResult struct {
	External netip.AddrPort
	Lifetime time.Duration
}

// flowSourcer is a Firewall that reads an existing flow's source
// (firewall.NFT, firewalltest.Fake): a PEER for a flow that exists is
// answered with the port the flow really has.
type flowSourcer interface {
	FlowSource(ctx context.Context, proto uint8, from, to netip.AddrPort) (netip.AddrPort, error)
}

// peerer is an Upstream that relays PEER (upstream.Auto: the provider's
// PCP server; the other kinds answer UNSUPP_OPCODE).
type peerer interface {
	Peer(ctx context.Context, r upstream.PeerRequest) (upstream.MapResult, error)
}

// maxPeers bounds the PEER mappings the core keeps at once.
const maxPeers = 4096

type peerKey struct {
	proto            Proto
	internal, remote netip.AddrPort
}

// peerEntry is one PEER mapping: the CPE's source for the flow, the
// outermost endpoint and the lifetimes.
type peerEntry struct {
	client   netip.Addr
	nonce    Nonce
	via      netip.AddrPort // the CPE's WAN source of the flow (zero: no NAT on the CPE)
	external netip.AddrPort // the outermost endpoint told
	expires  time.Time      // the PEER mapping's end as told
	upEnd    time.Time      // the upstream's lifetime end (zero: nothing upstream)
	// upGen and lost are c.upGen and c.peerLost when it was made: another
	// upstream, or one that lost its state, does not hold it.
	upGen uint64
	lost  uint32
}

// peerPlan says how a PEER is served in the mode and upstream in force.
type peerPlan struct {
	snat  bool // the CPE translates the flow (local, nat444)
	relay bool // a PEER goes to the upstream (its PCP server)
}

// Peer serves a LAN client's PEER for an IPv4 flow (RFC 6887 §12, relayed
// as RFC 7648 §3 says). Where the CPE translates (local, nat444) it fixes
// the flow's WAN source before the flow exists (firewall.Outbound: the
// internal port when free, else another), or reads the source a flow that
// exists already has (its NAT cannot change); behind the provider's PCP
// server it relays a PEER for that WAN source (dslite: for the LAN host,
// with THIRD_PARTY) with the client's remote peer, suggestion and nonce,
// and answers the outermost endpoint and the provider's lifetime. In
// local mode the CPE's own NAT is the outermost one. An upstream that has
// no PEER (a NAT-PMP gateway, an ISP box's IGD, or nothing that forwards
// ports) cannot tell the outermost port of a flow: CodeUnsupported
// (UNSUPP_OPCODE). A PEER with at least 3/4 of the asked lifetime left
// upstream is answered from the table (RFC 7648 §3).
func (c *Core) Peer(ctx context.Context, r PeerRequest) (PeerResult, error) {
	if err := c.validatePeer(&r); err != nil {
		return PeerResult{}, err
	}
	c.awaitKind(ctx, Request{Internal: r.Internal})
	key := peerKey{proto: r.Proto, internal: r.Internal, remote: r.Remote}

	now := time.Now()
	c.mu.Lock()
	plan, err := c.peerPlanLocked()
	if err != nil {
		c.mu.Unlock()
		return PeerResult{}, err
	}
	e := c.peers[key]
	if e != nil && !now.Before(e.expires) {
		e = nil // ended
	}
	if e != nil && e.nonce != r.Nonce {
		// §12.3 (simple threat model): another nonce is NOT_AUTHORIZED,
		// but from the flow's own host (clients that pick a fresh nonce),
		// as for MAP.
		if r.Internal.Addr() != r.Client {
			left := e.expires.Sub(now)
			c.mu.Unlock()
			return PeerResult{}, &Error{Code: CodeNonceMismatch, Lifetime: left, Msg: "the PEER mapping belongs to another nonce"}
		}
	}
	if e != nil && e.upGen == c.upGen && e.lost == c.peerLost && (plan.snat == e.via.IsValid()) && (!e.via.IsValid() || e.via.Addr() == c.wan) {
		if !plan.relay {
			// The CPE's own NAT is the outermost: extend it.
			e.nonce, e.expires = r.Nonce, now.Add(r.Lifetime)
			change := firewall.Change{AddOutbound: []firewall.Outbound{outbound(r, e.via, r.Lifetime)}}
			res := PeerResult{External: e.external, Lifetime: r.Lifetime}
			c.mu.Unlock()
			if err := c.apply(ctx, change); err != nil {
				return PeerResult{}, &Error{Code: CodeNoResources, Msg: "firewall", Err: err}
			}
			return res, nil
		}
		if left := e.upEnd.Sub(now); left >= r.Lifetime/4*3 {
			e.nonce = r.Nonce
			res := PeerResult{External: e.external, Lifetime: min(e.expires.Sub(now), r.Lifetime)}
			c.mu.Unlock()
			return res, nil
		}
	}
	var via netip.AddrPort
	if e != nil && plan.snat && e.via.IsValid() && e.via.Addr() == c.wan {
		via = e.via
	}
	wan := c.wan
	c.mu.Unlock()

	if plan.snat && !via.IsValid() {
		// A flow that exists keeps the source it has.
		if fs, ok := c.fw.(flowSourcer); ok {
			if src, err := fs.FlowSource(ctx, uint8(r.Proto), r.Internal, r.Remote); err == nil && src.Addr() == wan {
				via = src
			}
		}
	}

	c.mu.Lock()
	if plan.snat && !via.IsValid() {
		p, err := c.pickPeerPortLocked(r, key)
		if err != nil {
			c.mu.Unlock()
			return PeerResult{}, err
		}
		via = netip.AddrPortFrom(c.wan, p)
	}
	if c.peers == nil {
		c.peers = make(map[peerKey]*peerEntry)
	}
	if c.peers[key] == nil {
		if err := c.peerRoomLocked(r.Client, now); err != nil {
			c.mu.Unlock()
			return PeerResult{}, err
		}
	}
	e = &peerEntry{client: r.Client, nonce: r.Nonce, via: via, upGen: c.upGen, lost: c.peerLost}
	c.peers[key] = e
	var change firewall.Change
	if via.IsValid() {
		change.AddOutbound = []firewall.Outbound{outbound(r, via, r.Lifetime)}
	}
	var upReq upstream.PeerRequest
	if plan.relay {
		upReq = c.peerRequestLocked(r, via)
	} else {
		e.external, e.expires = via, now.Add(r.Lifetime)
	}
	up := c.up
	c.mu.Unlock()

	if err := c.apply(ctx, change); err != nil {
		c.forgetPeer(key, e)
		return PeerResult{}, &Error{Code: CodeNoResources, Msg: "firewall", Err: err}
	}
	if !plan.relay {
		c.log.Debug("PEER", "proto", r.Proto, "internal", r.Internal, "remote", r.Remote, "external", via)
		return PeerResult{External: via, Lifetime: r.Lifetime}, nil
	}
	pu, ok := up.(peerer)
	if !ok {
		c.forgetPeer(key, e)
		return PeerResult{}, &Error{Code: CodeUnsupported, Msg: "the upstream cannot relay PEER"}
	}
	uctx, cancel := context.WithTimeout(ctx, c.cfg.UpstreamTimeout)
	res, err := pu.Peer(uctx, upReq)
	cancel()
	if err != nil {
		c.forgetPeer(key, e)
		if len(change.AddOutbound) > 0 {
			c.apply(context.WithoutCancel(ctx), firewall.Change{DelOutbound: change.AddOutbound})
		}
		return PeerResult{}, peerError(err)
	}
	now = time.Now()
	life := min(time.Duration(res.Lifetime)*time.Second, r.Lifetime)
	c.mu.Lock()
	e.external = res.External
	e.upEnd = now.Add(time.Duration(res.Lifetime) * time.Second)
	e.expires = now.Add(life)
	c.mu.Unlock()
	c.log.Debug("PEER relayed", "proto", r.Proto, "internal", r.Internal, "remote", r.Remote, "via", via,
		"external", res.External, "lifetime", life)
	return PeerResult{External: res.External, Lifetime: life}, nil
}

// validatePeer checks and normalizes a PEER.
func (c *Core) validatePeer(r *PeerRequest) error {
	if r.Proto != TCP && r.Proto != UDP {
		return &Error{Code: CodeUnsupportedProtocol, Msg: "protocol " + r.Proto.String()}
	}
	r.Client = r.Client.Unmap()
	r.Internal = netip.AddrPortFrom(r.Internal.Addr().Unmap(), r.Internal.Port())
	r.Remote = netip.AddrPortFrom(r.Remote.Addr().Unmap(), r.Remote.Port())
	ia, ra := r.Internal.Addr(), r.Remote.Addr()
	switch {
	case !r.Client.IsValid():
		return &Error{Code: CodeInvalid, Msg: "no requester address"}
	case !ia.Is4() || ia.IsUnspecified() || ia.IsMulticast() || ia.IsLoopback() || r.Internal.Port() == 0:
		return &Error{Code: CodeInvalid, Msg: "internal endpoint " + r.Internal.String()}
	case !ra.Is4() || ra.IsUnspecified() || ra.IsMulticast() || ra.IsLoopback() || ra == netip.AddrFrom4([4]byte{255, 255, 255, 255}) || r.Remote.Port() == 0:
		// §12.3: an invalid remote peer is MALFORMED_REQUEST.
		return &Error{Code: CodeInvalid, Msg: "remote peer " + r.Remote.String()}
	case r.Lifetime <= 0:
		return &Error{Code: CodeInvalid, Msg: "a PEER lifetime must be more than 0"}
	}
	if c.policy().SecureMode && ia != r.Client {
		return &Error{Code: CodeNotAuthorized, Msg: "secure mode: a host may map ports only to itself"}
	}
	r.Lifetime = c.clampLease(OriginPCP, r.Lifetime)
	return nil
}

// peerPlanLocked says how a PEER is served now, or why it cannot be.
func (c *Core) peerPlanLocked() (peerPlan, error) {
	pcpUp := c.upKind == upstream.KindPCP && c.up != nil
	switch {
	case c.mode == ModeLocal:
		return peerPlan{snat: true}, nil
	case c.upKind == upstream.KindDetecting:
		return peerPlan{}, &Error{Code: CodeNetworkFailure, Msg: "the upstream NAT is still being detected"}
	case !pcpUp:
		return peerPlan{}, &Error{Code: CodeUnsupported, Lifetime: longErrorLifetime,
			Msg: "PEER needs the provider's PCP server: " + c.upKind.Noun() + " cannot tell a flow's outermost port"}
	case c.mode == ModeDSLite:
		return peerPlan{relay: true}, nil
	case !c.wan.IsValid():
		return peerPlan{}, &Error{Code: CodeNetworkFailure, Msg: "no WAN address"}
	}
	return peerPlan{snat: true, relay: true}, nil
}

// pickPeerPortLocked chooses the CPE's WAN port of a new flow: the
// internal port, as the main firewall's masquerade would, when no
// mapping's WAN port, reserved port or other PEER holds it; else the next
// free one from 1024 up.
func (c *Core) pickPeerPortLocked(r PeerRequest, key peerKey) (uint16, error) {
	used := make(map[uint16]bool)
	for k, e := range c.peers {
		if k != key && k.proto == r.Proto && e.via.IsValid() {
			used[e.via.Port()] = true
		}
	}
	free := func(p uint16) bool {
		return p != 0 && !used[p] && c.byExt[keyOf(r.Proto, p)] == nil && !slices.Contains(c.cfg.ReservedPorts, p)
	}
	if p := r.Internal.Port(); free(p) {
		return p, nil
	}
	const lo = 1024
	p := max(r.Internal.Port(), lo)
	for range math.MaxUint16 - lo + 1 {
		if p == math.MaxUint16 {
			p = lo
		} else {
			p++
		}
		if free(p) {
			return p, nil
		}
	}
	return 0, &Error{Code: CodeNoResources, Msg: "no free WAN port for the flow"}
}

// peerRoomLocked makes room for a new PEER mapping of client: ended ones
// go; then the host's quota and the table's bound apply.
func (c *Core) peerRoomLocked(client netip.Addr, now time.Time) error {
	mine := 0
	for k, e := range c.peers {
		if !now.Before(e.expires) && !e.expires.IsZero() {
			delete(c.peers, k)
			continue
		}
		if e.client == client {
			mine++
		}
	}
	switch {
	case mine >= c.policy().Quota:
		return &Error{Code: CodeQuota, Msg: "the host's PEER quota is used up"}
	case len(c.peers) >= maxPeers:
		return &Error{Code: CodeNoResources, Msg: "too many PEER mappings"}
	}
	return nil
}

// peerRequestLocked is the PEER relayed upstream (RFC 7648 §3): for the
// CPE's WAN source of the flow (nat444), or the LAN host with THIRD_PARTY
// (dslite), with the client's remote peer, suggestion and nonce.
func (c *Core) peerRequestLocked(r PeerRequest, via netip.AddrPort) upstream.PeerRequest {
	q := upstream.PeerRequest{Remote: r.Remote, MapRequest: upstream.MapRequest{
		Protocol:          uint8(r.Proto),
		Internal:          via,
		SuggestedExternal: r.SuggestedExternal,
		Lifetime:          uint32(min(r.Lifetime/time.Second, math.MaxUint32)),
		Nonce:             pcp.Nonce(r.Nonce),
	}}
	if !via.IsValid() {
		q.Internal, q.ThirdParty = r.Internal, true
	}
	return q
}

// forgetPeer drops e, unless another request replaced it meanwhile.
func (c *Core) forgetPeer(key peerKey, e *peerEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.peers[key] == e {
		delete(c.peers, key)
	}
}

// peerError is the core error for an upstream's answer to a PEER: its
// refusal with its code (UNSUPP_OPCODE as CodeUnsupported), else no
// answer.
func peerError(err error) error {
	var ue *upstream.Error
	if errors.As(err, &ue) && ue.Code == pcp.UnsuppOpcode {
		return &Error{Code: CodeUnsupported, Lifetime: time.Duration(ue.Lifetime) * time.Second,
			Msg: ue.Kind.Noun() + " cannot make a PEER mapping", Err: err}
	}
	return upstreamError(err)
}

// outbound is the CPE's source NAT of r's flow through via, for lifetime
// (the kernel keeps it a little longer, as forwards).
func outbound(r PeerRequest, via netip.AddrPort, lifetime time.Duration) firewall.Outbound {
	return firewall.Outbound{Proto: uint8(r.Proto), From: r.Internal, To: r.Remote, Via: via,
		Timeout: min(lifetime+firewallGrace, firewall.MaxTimeout)}
}
