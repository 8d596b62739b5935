package natpmp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Config.
const (
	DefaultMinLifetime = 120 * time.Second
	DefaultMaxLifetime = 86400 * time.Second
	DefaultRatePerHost = 50
	DefaultBurst       = 100
	DefaultCoreTimeout = 2 * time.Second
	DefaultRescan      = 5 * time.Second

	maxBuckets  = 4096 // rate-limiter entries kept (one per LAN source address)
	maxInFlight = 64   // requests handled at once; more are dropped (RFC 6887 §8.2 overload)
)

// Config configures a Server. Each field documents its zero value.
type Config struct {
	// Core is the mapping core. Required.
	Core Core
	// Interfaces are the LAN interface names. The server listens on every
	// IPv4 and IPv6 (global and link-local) address of them, each socket
	// bound to one address (never the wildcard), and follows address
	// changes by re-scanning every Rescan. Required.
	Interfaces []string
	// Port is the listening port; 0 means 5351. A negative Port binds an
	// ephemeral port on each address (tests).
	Port int
	// AnnouncePort is the destination port of the multicast announcements;
	// 0 means 5350.
	AnnouncePort int
	// NATPMP and PCP enable the protocols. Both false is an error. A
	// disabled protocol is answered as a server without it would: with
	// PCP off, any version other than 0 gets the NAT-PMP "Unsupported
	// Version" response (RFC 6886 §3.5); with NAT-PMP off, version 0 gets
	// the PCP UNSUPP_VERSION response (RFC 6887 Appendix A, §9).
	NATPMP, PCP bool
	// ThirdParty accepts the PCP THIRD_PARTY option from LAN clients, for
	// internal addresses on a LAN prefix other than the sender's, whatever
	// secure mode says (the core still refuses a mapping for another host
	// in secure mode). False follows the policy: THIRD_PARTY is accepted
	// while secure mode is off (Core.SecureMode), and answered
	// UNSUPP_OPTION while it is on (RFC 6887 §13.1: prohibited by default
	// on a CPE, allowed by the user's out-of-band choice).
	ThirdParty bool
	// MinLifetime and MaxLifetime clamp the lifetimes LAN clients ask for;
	// 0 means 120 s and 86400 s (RFC 6887 §15).
	MinLifetime, MaxLifetime time.Duration
	// RatePerHost and Burst are the token bucket per source address;
	// 0 means 50 requests/s with a burst of 100.
	RatePerHost float64
	Burst       int
	// CoreTimeout bounds each call into the core so that no LAN request
	// waits longer (the answer is then NETWORK_FAILURE); 0 means 2 s. A
	// request that may go upstream and arrives while the upstream is
	// being detected waits for that first (Core.AwaitUpstream, at most
	// mapping.DetectWait), then CoreTimeout.
	CoreTimeout time.Duration
	// Rescan is how often the LAN interfaces' addresses are re-read;
	// 0 means 5 s.
	Rescan time.Duration
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Stats are the server's counters since New.
type Stats struct {
	NATPMPExternalAddr uint64 // NAT-PMP opcode 0 requests
	NATPMPMapUDP       uint64 // NAT-PMP opcode 1 requests
	NATPMPMapTCP       uint64 // NAT-PMP opcode 2 requests
	NATPMPOther        uint64 // NAT-PMP requests with another opcode
	PCPAnnounce        uint64 // PCP ANNOUNCE requests
	PCPMap             uint64 // PCP MAP requests
	PCPPeer            uint64 // PCP PEER requests
	PCPOther           uint64 // PCP requests with an unknown opcode
	UnsuppVersion      uint64 // requests of a version not served
	Replies            uint64 // replies produced
	ErrorReplies       uint64 // of which with a non-zero result code
	Malformed          uint64 // packets dropped without reply as unanswerable
	RateLimited        uint64 // packets dropped by the per-host rate limit
	Overload           uint64 // packets dropped because too many were in flight (in all, or of their host)
	Duplicates         uint64 // retransmissions dropped while the same request was being served
	NotLAN             uint64 // packets to an address that is not a LAN address
	Announcements      uint64 // multicast announcement datagrams sent
	MappingUpdates     uint64 // unsolicited PCP MAP responses sent (RFC 6887 §14.2)
	SendErrors         uint64 // replies or announcements the kernel refused
}

type counters struct {
	natpmpExt, natpmpUDP, natpmpTCP, natpmpOther             atomic.Uint64
	pcpAnnounce, pcpMap, pcpPeer, pcpOther                   atomic.Uint64
	unsuppVersion, replies, errorReplies, malformed          atomic.Uint64
	rateLimited, overload, notLAN, announcements, sendErrors atomic.Uint64
	mappingUpdates, duplicates                               atomic.Uint64
}

// Server answers NAT-PMP and PCP on UDP 5351 of the LAN addresses.
type Server struct {
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	limit   *limiter
	stats   counters
	started time.Time

	// lan is the current view of the LAN interfaces (addresses, prefixes).
	lan atomic.Pointer[lanView]
	// baseCtx is the context core calls derive from (Run's, else Background).
	baseCtx atomic.Pointer[context.Context]

	running atomic.Bool
	// ready is closed once Run has opened its first sockets.
	ready     chan struct{}
	readyOnce sync.Once
	mu        sync.Mutex
	conns     map[netip.AddrPort]*lanConn // open sockets by wanted local address
	// warnedBind: the SO_BINDTODEVICE warning was logged (under mu).
	warnedBind bool
	// debugLimit rate-limits per-packet debug logs.
	debugLimit *limiter
	// updates remembers PCP clients for Mapping Updates.
	updates updates
	// inflight is what the read loops' workers serve.
	inflight inflight
}

// New checks cfg, fills in defaults and returns a Server; Run starts it.
func New(cfg Config) (*Server, error) {
	if cfg.Core == nil {
		return nil, errors.New("natpmp: Config.Core is nil")
	}
	if len(cfg.Interfaces) == 0 {
		return nil, errors.New("natpmp: no LAN interface")
	}
	if !cfg.NATPMP && !cfg.PCP {
		return nil, errors.New("natpmp: neither NAT-PMP nor PCP enabled")
	}
	if cfg.Port == 0 {
		cfg.Port = 5351
	}
	if cfg.Port > 65535 {
		return nil, fmt.Errorf("natpmp: port %d out of range", cfg.Port)
	}
	if cfg.AnnouncePort == 0 {
		cfg.AnnouncePort = 5350
	}
	if cfg.AnnouncePort < 0 || cfg.AnnouncePort > 65535 {
		return nil, fmt.Errorf("natpmp: announce port %d out of range", cfg.AnnouncePort)
	}
	if cfg.MinLifetime == 0 {
		cfg.MinLifetime = DefaultMinLifetime
	}
	if cfg.MaxLifetime == 0 {
		cfg.MaxLifetime = DefaultMaxLifetime
	}
	if cfg.MinLifetime < 0 || cfg.MaxLifetime < cfg.MinLifetime {
		return nil, fmt.Errorf("natpmp: lifetimes [%v, %v] invalid", cfg.MinLifetime, cfg.MaxLifetime)
	}
	if cfg.RatePerHost == 0 {
		cfg.RatePerHost = DefaultRatePerHost
	}
	if cfg.Burst == 0 {
		cfg.Burst = DefaultBurst
	}
	if cfg.RatePerHost < 0 || cfg.Burst < 0 {
		return nil, errors.New("natpmp: negative rate limit")
	}
	if cfg.CoreTimeout == 0 {
		cfg.CoreTimeout = DefaultCoreTimeout
	}
	if cfg.Rescan == 0 {
		cfg.Rescan = DefaultRescan
	}
	s := &Server{
		cfg:        cfg,
		log:        cfg.Logger,
		now:        cfg.Now,
		limit:      newLimiter(cfg.RatePerHost, cfg.Burst, maxBuckets),
		conns:      make(map[netip.AddrPort]*lanConn),
		debugLimit: newLimiter(1, 10, 1),
		ready:      make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "natpmp")
	if s.now == nil {
		s.now = time.Now
	}
	s.started = s.now()
	bg := context.Background()
	s.baseCtx.Store(&bg)
	s.lan.Store(scanLAN(cfg.Interfaces))
	return s, nil
}

// Ready is closed once Run listens on the LAN addresses found at its
// start (a daemon opens its control socket after that, so whoever sees
// the daemon up can reach it). It stays open if Run fails first.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	c := &s.stats
	return Stats{
		NATPMPExternalAddr: c.natpmpExt.Load(), NATPMPMapUDP: c.natpmpUDP.Load(),
		NATPMPMapTCP: c.natpmpTCP.Load(), NATPMPOther: c.natpmpOther.Load(),
		PCPAnnounce: c.pcpAnnounce.Load(), PCPMap: c.pcpMap.Load(), PCPPeer: c.pcpPeer.Load(),
		PCPOther: c.pcpOther.Load(), UnsuppVersion: c.unsuppVersion.Load(),
		Replies: c.replies.Load(), ErrorReplies: c.errorReplies.Load(), Malformed: c.malformed.Load(),
		RateLimited: c.rateLimited.Load(), Overload: c.overload.Load(), NotLAN: c.notLAN.Load(),
		Announcements: c.announcements.Load(), SendErrors: c.sendErrors.Load(), MappingUpdates: c.mappingUpdates.Load(),
		Duplicates: c.duplicates.Load(),
	}
}

// debug logs a per-packet event at Debug level, at most about once a second.
func (s *Server) debug(msg string, args ...any) {
	if !s.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	if !s.debugLimit.allow(netip.Addr{}, s.now()) {
		return
	}
	s.log.Debug(msg, args...)
}
