package natpmp

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"time"

	"github.com/pcpgw/pcpgw/mapping"
	"github.com/pcpgw/pcpgw/pcp"
)

// handlePCP answers a version-2 request (RFC 6887 §8.2, in its order).
// dst is the LAN address it arrived on.
func (s *Server) handlePCP(ctx context.Context, src netip.AddrPort, dst netip.Addr, b []byte, now time.Time) []byte {
	client := src.Addr().WithZone("")
	req, err := pcp.ParseRequest(b)
	var perr *pcp.ParseError
	if err != nil && !errors.As(err, &perr) {
		// Shorter than the 24-octet header: dropped (§8.2).
		s.stats.malformed.Add(1)
		s.debug("malformed PCP request", "client", src, "len", len(b), "err", err)
		return nil
	}
	s.countPCP(req.Opcode)
	fail := func(code pcp.ResultCode, lifetime uint32) []byte {
		return pcp.AppendErrorResponse(nil, b, pcp.Version, code, lifetime, s.cfg.Core.Epoch(now))
	}
	// Length errors come first, then the client address check, then the
	// opcode and its options (§8.2).
	if perr != nil && (errors.Is(perr, pcp.ErrLong) || errors.Is(perr, pcp.ErrAlign)) {
		return fail(perr.Result, errLifetime(perr.Result))
	}
	if req.Client != client {
		return fail(pcp.AddressMismatch, errLifetime(pcp.AddressMismatch))
	}
	if perr != nil {
		return fail(perr.Result, errLifetime(perr.Result))
	}
	switch req.Opcode {
	case pcp.OpAnnounce:
		// Answered here, never relayed (RFC 7648 §3.5, RFC 6887 §14.1.2).
		return pcpAnnounceResponse(s.cfg.Core.Epoch(now))
	case pcp.OpMap:
		return s.pcpMap(ctx, src, dst, b, &req, now)
	case pcp.OpPeer:
		return s.pcpPeer(ctx, client, b, &req, now)
	}
	return fail(pcp.UnsuppOpcode, errLifetime(pcp.UnsuppOpcode)) // ParseRequest knows only those three
}

func (s *Server) countPCP(op pcp.Opcode) {
	switch op {
	case pcp.OpAnnounce:
		s.stats.pcpAnnounce.Add(1)
	case pcp.OpMap:
		s.stats.pcpMap.Add(1)
	case pcp.OpPeer:
		s.stats.pcpPeer.Add(1)
	default:
		s.stats.pcpOther.Add(1)
	}
}

// pcpOpts is what the options of a MAP or PEER request ask for.
type pcpOpts struct {
	thirdParty  netip.Addr // the internal host named by THIRD_PARTY
	exact       bool       // PREFER_FAILURE
	hasFilter   bool       // at least one FILTER
	remote      netip.Addr // the one remote host the FILTERs reduce to (zero: any)
	remotePort  uint16
	description string
	processed   []pcp.Option // echoed in a success response (§7.3)
}

// pcpOptions processes the options ParseRequest accepted; a non-zero code
// is the error to answer (nothing has been changed yet).
func (s *Server) pcpOptions(client netip.Addr, req *pcp.Request) (pcpOpts, pcp.ResultCode) {
	var o pcpOpts
	var filters []pcp.Filter
	for _, opt := range req.Options {
		switch opt.Code {
		case pcp.OptThirdParty:
			// §13.1: refused (UNSUPP_OPTION, as §7.3 says for a disabled
			// option or an unauthorized client) while secure mode is on
			// (the policy that a host maps only to itself; the RFC's
			// default for a CPE) unless enabled, and then only for
			// another host on a LAN prefix; naming the sender itself is
			// MALFORMED_REQUEST.
			if !s.cfg.ThirdParty && s.cfg.Core.SecureMode() {
				return o, pcp.UnsuppOption
			}
			tp := opt.ThirdParty.Unmap().WithZone("")
			if tp == client {
				return o, pcp.MalformedRequest
			}
			view := s.lan.Load()
			if !tp.IsValid() || !view.onLink(tp) || view.isLocal(tp) || tp.IsMulticast() {
				return o, pcp.UnsuppOption
			}
			o.thirdParty = tp
		case pcp.OptPreferFailure:
			o.exact = true
		case pcp.OptFilter:
			o.hasFilter = true
			if opt.Filter.Prefix.Bits() <= 0 {
				filters = filters[:0] // "no filter" removes the previous ones (§13.3)
			} else {
				filters = append(filters, opt.Filter)
			}
		case pcp.OptDescription:
			if opt.Raw != nil {
				continue // not valid UTF-8: ignored, not processed
			}
			o.description = opt.Description
		default:
			continue // optional options pcpgw does not process (§7.3)
		}
		o.processed = append(o.processed, opt)
	}
	// The core keeps one remote host and port per mapping: the FILTERs
	// must come down to one host (full-length prefix); anything wider but
	// not "all" cannot be enforced as asked and is refused without change
	// (§13.3: a FILTER not processed is an error).
	for i, f := range filters {
		if !f.Prefix.IsSingleIP() || (i > 0 && f != filters[0]) {
			return o, pcp.UnsuppOption
		}
	}
	if len(filters) > 0 {
		o.remote, o.remotePort = filters[0].Prefix.Addr().WithZone(""), filters[0].RemotePort
	}
	return o, pcp.Success
}

// pcpMap creates, renews or deletes a mapping (RFC 6887 §11.3, §15.1;
// RFC 7648 §3: the core answers from its table or goes upstream).
func (s *Server) pcpMap(ctx context.Context, src netip.AddrPort, dst netip.Addr, b []byte, req *pcp.Request, now time.Time) []byte {
	client := src.Addr().WithZone("")
	fail := func(code pcp.ResultCode, lifetime uint32) []byte {
		return pcp.AppendErrorResponse(nil, b, pcp.Version, code, lifetime, s.cfg.Core.Epoch(now))
	}
	m := req.Map
	opts, code := s.pcpOptions(client, req)
	if code != pcp.Success {
		return fail(code, errLifetime(code))
	}
	host := client
	if opts.thirdParty.IsValid() {
		host = opts.thirdParty
	}
	internal := netip.AddrPortFrom(host, m.InternalPort)
	answerWith := func(external netip.AddrPort, lifetime uint32, extra ...pcp.Option) []byte {
		r := pcp.Response{
			Version: pcp.Version, Opcode: pcp.OpMap, Result: pcp.Success,
			Lifetime: lifetime, Epoch: s.cfg.Core.Epoch(now),
			Map: &pcp.Map{
				Nonce: m.Nonce, Protocol: m.Protocol, InternalPort: m.InternalPort,
				ExternalPort: external.Port(), ExternalAddr: external.Addr(),
			},
			Options: append(slices.Clip(opts.processed), extra...),
		}
		return r.AppendMarshal(make([]byte, 0, pcp.HeaderSize+pcp.MapSize+len(b)))
	}
	answer := func(external netip.AddrPort, lifetime uint32) []byte { return answerWith(external, lifetime) }
	proto := mapping.Proto(m.Protocol)
	if req.Lifetime == 0 {
		cctx, cancel := s.coreContext(ctx, false, &now)
		defer cancel()
		if m.Protocol == 0 && m.InternalPort != 0 {
			return fail(pcp.MalformedRequest, errLifetime(pcp.MalformedRequest)) // §15.1
		}
		// The suggested external address and port are copied back (§15.1).
		echo := netip.AddrPortFrom(m.ExternalAddr, m.ExternalPort)
		if proto != mapping.TCP && proto != mapping.UDP {
			// All-protocol or other-protocol mappings are never made
			// here: deleting one that does not exist succeeds.
			return answer(echo, 0)
		}
		nonce := mapping.Nonce(m.Nonce)
		if m.InternalPort == 0 {
			// §15.1: the all-ports mapping, which pcpgw never makes. As
			// miniupnpd, whose clients send it to delete their mappings,
			// this deletes the requester's PCP mappings of the protocol
			// made with this nonce; only mappings of other nonces there
			// is NOT_AUTHORIZED.
			return s.pcpDeleteAll(cctx, client, host, proto, nonce, echo, fail, answer)
		}
		_, err := s.cfg.Core.Delete(cctx, mapping.Selector{
			Client:   client,
			Proto:    proto,
			Internal: internal,
			Nonce:    &nonce,
		})
		if err != nil {
			code, lifetime := mapping.PCPResult(err)
			if code != pcp.Success {
				return fail(code, lifetime)
			}
		}
		s.updates.forget(client, proto, internal, nonce)
		return answer(echo, 0)
	}
	if m.Protocol == 0 || m.InternalPort == 0 || (proto != mapping.TCP && proto != mapping.UDP) {
		// All-protocol ("DMZ") and all-port mappings, and protocols other
		// than TCP and UDP, are not offered (§11.3).
		return fail(pcp.UnsuppProtocol, errLifetime(pcp.UnsuppProtocol))
	}
	if host.Is6() && (!s.cfg.Core.PinholesEnabled() || !host.IsGlobalUnicast() || host.IsLinkLocalUnicast()) {
		// Pinholes off, or an address no one outside can reach (a
		// link-local source asking for itself).
		return fail(pcp.NotAuthorized, errLifetime(pcp.NotAuthorized))
	}
	if opts.remote.IsValid() && opts.remote.Is4() != host.Is4() {
		return fail(pcp.MalformedOption, errLifetime(pcp.MalformedOption))
	}
	remote, remotePort := opts.remote, opts.remotePort
	if !opts.hasFilter {
		// A renewal without FILTER keeps the filter it had (§13.3: filters
		// are only added, or removed by a prefix length of 0).
		for _, old := range s.cfg.Core.Find(mapping.Selector{Client: client, Proto: proto, Internal: internal}) {
			remote, remotePort = old.RemoteHost, old.RemotePort
			break
		}
	}
	var suggested netip.Addr
	if a := m.ExternalAddr; a.IsValid() && !a.IsUnspecified() {
		suggested = a
	} else if host.Is6() && a.Is4() {
		// An IPv4 port for an IPv6 host (the all-zeros IPv4-mapped
		// address, RFC 6887 §11.1): the provider's NAT64's (RFC 7225).
		suggested = a
	}
	// An IPv4 port (for an IPv4 host, or at the NAT64 for an IPv6 one)
	// may go upstream; a pinhole is the CPE's alone.
	cctx, cancel := s.coreContext(ctx, host.Is4() || suggested.Unmap().Is4(), &now)
	defer cancel()
	if opts.exact && suggested.IsValid() {
		// PREFER_FAILURE (§13.2): the suggested external address or
		// nothing. The core gives the address it has.
		if ext, err := s.cfg.Core.ExternalAddr(cctx); err == nil && ext.IsValid() && ext.Unmap() != suggested.Unmap() {
			return fail(pcp.CannotProvideExternal, errLifetime(pcp.CannotProvideExternal))
		}
	}
	want := s.clampLifetime(req.Lifetime)
	got, err := s.cfg.Core.Map(cctx, mapping.Request{
		Origin:       mapping.OriginPCP,
		Client:       client,
		Proto:        proto,
		Internal:     internal,
		ExternalPort: m.ExternalPort,
		ExternalAddr: suggested,
		Lifetime:     want,
		ExactPort:    opts.exact,
		RemoteHost:   remote,
		RemotePort:   remotePort,
		Description:  opts.description,
		Nonce:        mapping.Nonce(m.Nonce),
	})
	if err != nil {
		code, lifetime := mapping.PCPResult(err)
		if code == pcp.Success {
			code, lifetime = pcp.NetworkFailure, errLifetime(pcp.NetworkFailure)
		}
		return fail(code, lifetime)
	}
	s.updates.remember(got, src, dst, now)
	var prefix64 []pcp.Option
	for _, p := range got.Prefix64 {
		// The NAT64's prefixes, as RFC 7225 §4.2 lets a server say them.
		prefix64 = append(prefix64, pcp.Option{Code: pcp.OptPrefix64, Prefix64: pcp.Prefix64{Prefix: p}})
	}
	return answerWith(got.External, leaseSeconds(got, want, now), prefix64...)
}

// pcpDeleteAll deletes client's PCP mappings of proto for host made with
// nonce (a MAP delete with internal port 0).
func (s *Server) pcpDeleteAll(ctx context.Context, client, host netip.Addr, proto mapping.Proto, nonce mapping.Nonce,
	echo netip.AddrPort, fail func(pcp.ResultCode, uint32) []byte, answer func(netip.AddrPort, uint32) []byte) []byte {
	others, deleted := false, false
	for _, x := range s.cfg.Core.Find(mapping.Selector{Client: client, Origin: mapping.OriginPCP, Proto: proto, Internal: netip.AddrPortFrom(host, 0)}) {
		if x.Nonce != nonce {
			others = true
			continue
		}
		if _, err := s.cfg.Core.Delete(ctx, mapping.Selector{Client: client, ID: x.ID, Proto: proto, Nonce: &nonce}); err != nil {
			if code, lifetime := mapping.PCPResult(err); code != pcp.Success {
				return fail(code, lifetime)
			}
		}
		s.updates.forget(client, proto, x.Internal, nonce)
		deleted = true
	}
	if others && !deleted {
		return fail(pcp.NotAuthorized, errLifetime(pcp.NotAuthorized))
	}
	return answer(echo, 0)
}

// pcpPeer answers PEER (RFC 6887 §12.3). An IPv6 internal address needs no
// mapping: the CPE is a pure firewall for it and lets outbound traffic
// out, so the answer is the stateless one (§11.3), external = internal,
// the requested lifetime clamped. An IPv4 flow goes to the core, which
// fixes the flow's WAN source on the CPE and relays the PEER to the
// provider's PCP server (RFC 7648 §3): the answer is the outermost
// external endpoint, or the core's refusal (UNSUPP_OPCODE when the
// upstream cannot make PEER mappings).
func (s *Server) pcpPeer(ctx context.Context, client netip.Addr, b []byte, req *pcp.Request, now time.Time) []byte {
	fail := func(code pcp.ResultCode, lifetime uint32) []byte {
		return pcp.AppendErrorResponse(nil, b, pcp.Version, code, lifetime, s.cfg.Core.Epoch(now))
	}
	p := req.Peer
	opts, code := s.pcpOptions(client, req)
	if code != pcp.Success {
		return fail(code, errLifetime(code))
	}
	host := client
	if opts.thirdParty.IsValid() {
		host = opts.thirdParty
	}
	proto := mapping.Proto(p.Protocol)
	if proto != mapping.TCP && proto != mapping.UDP {
		return fail(pcp.UnsuppProtocol, errLifetime(pcp.UnsuppProtocol))
	}
	peer := p.RemoteAddr.Unmap()
	if p.InternalPort == 0 || p.RemotePort == 0 || !peer.IsValid() || peer.IsUnspecified() ||
		peer.IsLoopback() || peer.IsMulticast() || peer.Is4() != host.Is4() {
		return fail(pcp.MalformedRequest, errLifetime(pcp.MalformedRequest)) // §12.3: an invalid remote peer
	}
	answer := func(external netip.AddrPort, lifetime uint32) []byte {
		r := pcp.Response{
			Version: pcp.Version, Opcode: pcp.OpPeer, Result: pcp.Success,
			Lifetime: lifetime, Epoch: s.cfg.Core.Epoch(now),
			Peer: &pcp.Peer{
				Map: pcp.Map{
					Nonce: p.Nonce, Protocol: p.Protocol, InternalPort: p.InternalPort,
					ExternalPort: external.Port(), ExternalAddr: external.Addr(),
				},
				RemotePort: p.RemotePort, RemoteAddr: p.RemoteAddr,
			},
			Options: opts.processed,
		}
		return r.AppendMarshal(make([]byte, 0, pcp.HeaderSize+pcp.PeerSize+len(b)))
	}
	// PEER cannot shorten or delete (§12.1): lifetime 0 asks for the
	// shortest.
	want := s.clampLifetime(req.Lifetime)
	if host.Is6() {
		if req.Lifetime == 0 {
			return answer(netip.AddrPortFrom(host, p.InternalPort), 0)
		}
		return answer(netip.AddrPortFrom(host, p.InternalPort), uint32(want/time.Second))
	}
	var suggested netip.AddrPort
	if a := p.ExternalAddr.Unmap(); a.Is4() && !a.IsUnspecified() {
		suggested = netip.AddrPortFrom(a, p.ExternalPort)
	} else if p.ExternalPort != 0 {
		suggested = netip.AddrPortFrom(netip.IPv4Unspecified(), p.ExternalPort)
	}
	cctx, cancel := s.coreContext(ctx, true, &now)
	defer cancel()
	got, err := s.cfg.Core.Peer(cctx, mapping.PeerRequest{
		Client:            client,
		Proto:             proto,
		Internal:          netip.AddrPortFrom(host, p.InternalPort),
		Remote:            netip.AddrPortFrom(peer, p.RemotePort),
		SuggestedExternal: suggested,
		Lifetime:          want,
		Nonce:             mapping.Nonce(p.Nonce),
	})
	if err != nil {
		code, lifetime := mapping.PCPResult(err)
		if code == pcp.Success {
			code, lifetime = pcp.NetworkFailure, errLifetime(pcp.NetworkFailure)
		}
		return fail(code, lifetime)
	}
	return answer(got.External, uint32(min((got.Lifetime+time.Second-1)/time.Second, 1<<32-1)))
}
