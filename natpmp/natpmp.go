package natpmp

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/pcpgw/pcpgw/mapping"
	"github.com/pcpgw/pcpgw/pcp"
)

// handleNATPMP answers a version-0 request (RFC 6886 §3).
func (s *Server) handleNATPMP(ctx context.Context, src netip.AddrPort, b []byte, now time.Time) []byte {
	req, err := pcp.ParseNATPMPRequest(b)
	var perr *pcp.NATPMPParseError
	switch {
	case errors.As(err, &perr):
		// Unsupported opcode (RFC 6886 §3.5): the 8-octet header with
		// opcode+128, result 5 and the epoch.
		s.stats.natpmpOther.Add(1)
		return natpmpResponse(&pcp.NATPMPResponse{Opcode: perr.Opcode, Result: perr.Result, Epoch: s.cfg.Core.Epoch(now)})
	case err != nil:
		// Too short, or a response: silence (RFC 6886 defines no answer).
		if b[1] == pcp.NATPMPOpMapUDP || b[1] == pcp.NATPMPOpMapTCP {
			s.countNATPMP(b[1])
		}
		s.stats.malformed.Add(1)
		s.debug("malformed NAT-PMP request", "client", src, "len", len(b), "err", err)
		return nil
	}
	s.countNATPMP(req.Opcode)
	if req.Opcode == pcp.NATPMPOpExternalAddr {
		cctx, cancel := s.coreContext(ctx, true, &now)
		defer cancel()
		ext, err := s.cfg.Core.ExternalAddr(cctx)
		resp := pcp.NATPMPResponse{Opcode: req.Opcode, Result: mapping.NATPMPResult(err), ExternalAddr: netip.IPv4Unspecified()}
		switch {
		case err == nil && ext.Unmap().Is4():
			resp.ExternalAddr = ext.Unmap()
		case err == nil, resp.Result == pcp.NATPMPSuccess:
			resp.Result = pcp.NATPMPNetworkFailure // no IPv4 address from the provider
		}
		resp.Epoch = s.cfg.Core.Epoch(now)
		return natpmpResponse(&resp)
	}
	return s.natpmpMap(ctx, src.Addr(), req, now)
}

func (s *Server) countNATPMP(op uint8) {
	switch op {
	case pcp.NATPMPOpExternalAddr:
		s.stats.natpmpExt.Add(1)
	case pcp.NATPMPOpMapUDP:
		s.stats.natpmpUDP.Add(1)
	case pcp.NATPMPOpMapTCP:
		s.stats.natpmpTCP.Add(1)
	}
}

func natpmpResponse(r *pcp.NATPMPResponse) []byte {
	return r.AppendMarshal(make([]byte, 0, pcp.NATPMPMapResponseSize))
}

// natpmpMap creates, renews or deletes a mapping for the packet's source
// address (RFC 6886 §3.3, §3.4).
func (s *Server) natpmpMap(ctx context.Context, client netip.Addr, req pcp.NATPMPRequest, now time.Time) []byte {
	proto := mapping.UDP
	if req.Opcode == pcp.NATPMPOpMapTCP {
		proto = mapping.TCP
	}
	answer := func(res pcp.NATPMPResult, external uint16, lifetime uint32) []byte {
		return natpmpResponse(&pcp.NATPMPResponse{
			Opcode: req.Opcode, Result: res, Epoch: s.cfg.Core.Epoch(now),
			InternalPort: req.InternalPort, ExternalPort: external, Lifetime: lifetime,
		})
	}
	if !client.Is4() {
		// NAT-PMP maps IPv4 only (RFC 6886 §1); PCP serves IPv6 hosts.
		return answer(pcp.NATPMPNotAuthorized, 0, 0)
	}
	if req.Lifetime == 0 {
		// Delete; internal port 0 deletes all of the client's mappings of
		// this protocol, and the suggested external port is ignored
		// (RFC 6886 §3.4). Nothing to delete is a success. Only NAT-PMP
		// mappings are deleted, as in miniupnpd: a host's UPnP or PCP
		// mappings of the same port are not NAT-PMP's to remove.
		cctx, cancel := s.coreContext(ctx, false, &now)
		defer cancel()
		_, err := s.cfg.Core.Delete(cctx, mapping.Selector{
			Client:   client,
			Origin:   mapping.OriginNATPMP,
			Proto:    proto,
			Internal: netip.AddrPortFrom(client, req.InternalPort),
		})
		return answer(mapping.NATPMPResult(err), 0, 0)
	}
	if req.InternalPort == 0 {
		// A mapping needs an internal port: refused, as the core refuses
		// invalid requests (mapping.NATPMPResult of CodeInvalid).
		return answer(pcp.NATPMPNotAuthorized, 0, 0)
	}
	want := s.clampLifetime(req.Lifetime)
	cctx, cancel := s.coreContext(ctx, true, &now)
	defer cancel()
	m, err := s.cfg.Core.Map(cctx, mapping.Request{
		Origin:       mapping.OriginNATPMP,
		Client:       client,
		Proto:        proto,
		Internal:     netip.AddrPortFrom(client, req.InternalPort),
		ExternalPort: req.SuggestedExternalPort,
		Lifetime:     want,
	})
	if err != nil {
		res := mapping.NATPMPResult(err)
		if res == pcp.NATPMPSuccess {
			res = pcp.NATPMPNetworkFailure
		}
		return answer(res, 0, 0)
	}
	return answer(pcp.NATPMPSuccess, m.External.Port(), leaseSeconds(m, want, now))
}

// clampLifetime clamps a requested lifetime in seconds to the configured range.
func (s *Server) clampLifetime(secs uint32) time.Duration {
	d := time.Duration(secs) * time.Second
	return min(max(d, s.cfg.MinLifetime), s.cfg.MaxLifetime)
}

// leaseSeconds is the lifetime answered for m: the lease left, rounded up
// but never more than the lifetime asked for (the core's clock runs a
// little after the handler's now), or the asked lifetime when the mapping
// has no end.
func leaseSeconds(m mapping.Mapping, asked time.Duration, now time.Time) uint32 {
	d := min(m.Lease(now), asked)
	if m.Expires.IsZero() {
		d = asked
	}
	secs := (d + time.Second - 1) / time.Second
	return uint32(min(secs, 1<<32-1))
}

// natpmpUnsuppVersion is the "Unsupported Version" response of a NAT-PMP
// server (RFC 6886 §3.5) to a request of version v != 0 and opcode op. The
// RFC's figure shows opcode 0; pcpgw sets the response bit on the request's
// opcode, so that PCP clients, which drop responses without the R bit
// (RFC 6887 §8.3), see UNSUPP_VERSION with version 0 and fall back.
func natpmpUnsuppVersion(op uint8, epoch uint32) []byte {
	return natpmpResponse(&pcp.NATPMPResponse{Opcode: op & 0x7f, Result: pcp.NATPMPUnsuppVersion, Epoch: epoch})
}
