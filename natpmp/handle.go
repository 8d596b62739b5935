package natpmp

import (
	"context"
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/pcpgw/pcpgw/pcp"
)

// Handle answers one datagram b that arrived from src on the LAN address
// dst at now. It returns the reply, or nil for silence (every silence is
// counted in Stats). The requester is always src, never what the payload
// says. Handle is safe for concurrent use; the core calls it makes are
// bounded by Config.CoreTimeout, after the upstream's detection for
// requests that may go upstream (see coreContext).
//
// The first octet picks the protocol (RFC 6887 Appendix A): 0 NAT-PMP,
// 2 PCP. A version not served gets the "unsupported version" answer of the
// protocols that are enabled (see Config.NATPMP).
func (s *Server) Handle(src netip.AddrPort, dst netip.Addr, b []byte, now time.Time) []byte {
	return s.handle(*s.baseCtx.Load(), src, dst, b, now)
}

func (s *Server) handle(ctx context.Context, src netip.AddrPort, dst netip.Addr, b []byte, now time.Time) []byte {
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	if !s.admit(src, dst, now) {
		return nil
	}
	return s.serve(ctx, src, dst, b, now)
}

// admit takes the checks that need nothing of the payload: the
// destination is a LAN address, the source a possible one, and the source
// has a token left. It counts what it refuses. The read loop calls it
// before it takes a worker slot, so that a flooding host's datagrams are
// dropped by its own token bucket and never crowd out other hosts'
// requests (Stats.Overload). src is unmapped.
func (s *Server) admit(src netip.AddrPort, dst netip.Addr, now time.Time) bool {
	if !s.lan.Load().isLocal(dst) {
		// Not addressed to a LAN address of ours (RFC 6886 §3.3,
		// RFC 6887 §8.2): never answered.
		s.stats.notLAN.Add(1)
		return false
	}
	a := src.Addr()
	if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() || src.Port() == 0 {
		s.stats.malformed.Add(1)
		return false
	}
	if !s.limit.allow(a, now) {
		s.stats.rateLimited.Add(1)
		s.debug("rate limited", "client", a)
		return false
	}
	return true
}

// serve answers an admitted datagram (src unmapped).
func (s *Server) serve(ctx context.Context, src netip.AddrPort, dst netip.Addr, b []byte, now time.Time) []byte {
	if len(b) < 2 || b[1]&0x80 != 0 {
		// Too short to say anything, or a response (PCP R bit, NAT-PMP
		// opcode >= 128): dropped (RFC 6887 §8.2, RFC 6886 §3.5).
		s.stats.malformed.Add(1)
		return nil
	}
	var reply []byte
	switch {
	case b[0] == pcp.VersionNATPMP && s.cfg.NATPMP:
		reply = s.handleNATPMP(ctx, src, b, now)
	case b[0] == pcp.Version && s.cfg.PCP:
		reply = s.handlePCP(ctx, src, dst, b, now)
	case !s.cfg.PCP:
		// A NAT-PMP-only server (RFC 6886 §3.5).
		s.stats.unsuppVersion.Add(1)
		reply = natpmpUnsuppVersion(b[1], s.cfg.Core.Epoch(now))
	default:
		// A PCP server: versions 1, 3 and up (and 0 with NAT-PMP off)
		// get UNSUPP_VERSION naming version 2 (RFC 6887 §9, Appendix A).
		s.stats.unsuppVersion.Add(1)
		reply = pcp.AppendErrorResponse(nil, b, pcp.Version, pcp.UnsuppVersion, errLifetime(pcp.UnsuppVersion), s.cfg.Core.Epoch(now))
	}
	if reply == nil {
		return nil
	}
	s.stats.replies.Add(1)
	if replyFailed(reply) {
		s.stats.errorReplies.Add(1)
	}
	return reply
}

// coreContext bounds a request's calls into the core by
// Config.CoreTimeout. A request that may go upstream (an IPv4 or NAT64
// mapping, a PEER, the external address) first waits while the upstream
// is being detected (Core.AwaitUpstream, bounded by the core), and the
// timeout starts after: it is answered as the upstream found says, not
// NETWORK_FAILURE (see the package doc, "Requests while the upstream is
// being detected"). *now moves on by the time waited: the answer's epoch
// and lifetimes are those of when it is sent, so that an answer held
// during detection never carries an older epoch than one sent before it
// (RFC 6887 §8.5, RFC 6886 §3.6: clients would take that for a restart).
func (s *Server) coreContext(ctx context.Context, upstream bool, now *time.Time) (context.Context, context.CancelFunc) {
	if upstream {
		start := time.Now()
		s.cfg.Core.AwaitUpstream(ctx)
		*now = now.Add(time.Since(start))
	}
	return context.WithTimeout(ctx, s.cfg.CoreTimeout)
}

// replyFailed reports whether a reply carries a non-zero result code.
func replyFailed(r []byte) bool {
	if r[0] == pcp.VersionNATPMP {
		return binary.BigEndian.Uint16(r[2:4]) != 0
	}
	return r[3] != 0
}

// errLifetime is the error lifetime of a locally made PCP error
// (RFC 6887 §7.4): 30 s for the short errors, 30 min for the long ones.
func errLifetime(c pcp.ResultCode) uint32 {
	switch c {
	case pcp.NetworkFailure, pcp.NoResources, pcp.UserExQuota, pcp.CannotProvideExternal:
		return 30
	}
	return 1800
}

// pcpAnnounceResponse is the unsolicited ANNOUNCE response (RFC 6887 §14.1.3).
func pcpAnnounceResponse(epoch uint32) []byte {
	r := pcp.Response{Version: pcp.Version, Opcode: pcp.OpAnnounce, Result: pcp.Success, Epoch: epoch}
	return r.AppendMarshal(make([]byte, 0, pcp.HeaderSize))
}

// natpmpExternalAddrResponse is the NAT-PMP opcode-0 response (RFC 6886 §3.2).
func natpmpExternalAddrResponse(res pcp.NATPMPResult, epoch uint32, ext netip.Addr) []byte {
	return natpmpResponse(&pcp.NATPMPResponse{Opcode: pcp.NATPMPOpExternalAddr, Result: res, Epoch: epoch, ExternalAddr: ext})
}
