package upnpigd

import (
	"cmp"
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pcpgw/pcpgw/internal/httpd"
	"github.com/pcpgw/pcpgw/mapping"

	"github.com/pcpgw/pcpgw/internal/crand"
	"github.com/pcpgw/pcpgw/internal/dnsq"
)

// Core is the part of *mapping.Core the IGD front-end uses.
type Core interface {
	Map(ctx context.Context, r mapping.Request) (mapping.Mapping, error)
	Delete(ctx context.Context, s mapping.Selector) (int, error)
	Find(s mapping.Selector) []mapping.Mapping
	Get(id uint32) (mapping.Mapping, bool)
	Renew(ctx context.Context, client netip.Addr, id uint32, lifetime time.Duration) (mapping.Mapping, error)
	Packets(ctx context.Context, id uint32) (uint64, error)
	ExternalAddr(ctx context.Context) (netip.Addr, error)
	Subscribe() (<-chan mapping.Event, func())
	Count() int
	PinholesEnabled() bool
	// Mode is how the CPE reaches the internet (dslite: it does no NAT).
	Mode() mapping.Mode
}

// Defaults of Config.
const (
	DefaultHTTPPort         = 5000
	DefaultSSDPPort         = 1900
	DefaultMaxConns         = 32
	DefaultMaxSubscriptions = 64
	// EphemeralPort in HTTPPort or SSDPPort lets the kernel pick the port
	// (tests).
	EphemeralPort = -1
)

// Config configures a Server.
type Config struct {
	// Core is the mapping core. Required.
	Core Core
	// Extra serves the paths the IGD does not own (the subscriber's page,
	// webui), after the same Host check. nil: 404.
	Extra httpd.Handler
	// Interfaces are the LAN interfaces. SSDP and HTTP listen on their
	// addresses only (never the wildcard). Required by Run; Handler works
	// without.
	Interfaces []string
	// WAN is the WAN interface whose counters and link state
	// WANCommonInterfaceConfig reports. "" reports zero counters.
	WAN string
	// HTTPPort is the TCP port of descriptions, control and events on every
	// LAN address: 0 means DefaultHTTPPort, EphemeralPort a kernel-chosen
	// port per address.
	HTTPPort int
	// SSDPPort is the SSDP port: 0 means DefaultSSDPPort, EphemeralPort a
	// kernel-chosen one (tests; multicast discovery then does not work).
	SSDPPort int
	// IGDv1 and IGDv2 offer the InternetGatewayDevice:1 and :2 root
	// devices. At least one must be set.
	IGDv1, IGDv2 bool
	// Pinholes enables WANIPv6FirewallControl pinholes (IGD:2), as far as
	// the core allows them too.
	Pinholes bool
	// UUID is the stable base from which the device UUIDs are derived;
	// "" picks a random one per Server.
	UUID string
	// Friendly is the friendly name; "" means "pcpgw".
	Friendly string
	// MaxConns caps concurrent HTTP connections per listener (0:
	// DefaultMaxConns); MaxSubscriptions caps GENA subscriptions (0:
	// DefaultMaxSubscriptions), MaxSubscriptionsPerHost those of one host
	// (an IPv4 address or an IPv6 /64; 0: a quarter of MaxSubscriptions,
	// at least 2), so that one host cannot take every other host's events.
	MaxConns                int
	MaxSubscriptions        int
	MaxSubscriptionsPerHost int
	// Logger gets the logs (nil: discarded).
	Logger *slog.Logger
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// BootID is BOOTID.UPNP.ORG; cmd increments it on every start.
	BootID uint32
	// SysDir is the sysfs root for WAN statistics ("" means /sys); tests
	// point it at a fake tree.
	SysDir string
	// Resolve looks up a host name that an IGD:2 action gives as
	// RemoteHost or InternalClient (nil: dnsq.Resolver's LookupHost,
	// /etc/hosts then the servers of /etc/resolv.conf, on a router its
	// own DNS forwarder, which knows the LAN's names); each lookup is
	// bounded by ResolveTimeout (0: DefaultResolveTimeout). An error for
	// which dnsq.NotFound is true says the name does not exist or has no
	// address; any other is a failed lookup.
	Resolve        func(ctx context.Context, host string) ([]netip.Addr, error)
	ResolveTimeout time.Duration
	// Rescan is how often the LAN addresses are checked for changes (0:
	// DefaultRescan).
	Rescan time.Duration
}

// DefaultRescan is how often Run checks the LAN addresses.
const DefaultRescan = 5 * time.Second

// DefaultResolveTimeout bounds a name lookup of an IGD:2 action.
const DefaultResolveTimeout = 2 * time.Second

// Stats are counters of the front-end.
type Stats struct {
	SSDPSearches     uint64 // M-SEARCH requests answered
	SSDPMalformed    uint64 // packets that were not a valid M-SEARCH (ignored)
	SSDPForeign      uint64 // M-SEARCH from outside the LAN (ignored)
	SSDPRateLimited  uint64 // answers suppressed by the per-source limit
	SSDPReplies      uint64 // answer datagrams sent
	SSDPNotifies     uint64 // NOTIFY datagrams sent
	HTTPRequests     uint64
	HTTPBadHost      uint64 // 403 for a foreign Host header
	HTTPConnsRefused uint64 // connections closed at the cap
	SOAPActions      uint64 // actions that succeeded
	SOAPFaults       uint64 // actions answered with a UPnPError
	SOAPMalformed    uint64 // bodies or SOAPActions that did not parse
	Subscriptions    uint64 // live GENA subscriptions
	SubscribeRefused uint64 // 412 for a foreign callback, 5xx at the cap
	EventsSent       uint64
	EventsFailed     uint64
}

type stats struct {
	ssdpSearches, ssdpMalformed, ssdpForeign, ssdpRateLimited, ssdpReplies, ssdpNotifies atomic.Uint64
	httpRequests, httpBadHost, httpConnsRefused                                          atomic.Uint64
	soapActions, soapFaults, soapMalformed                                               atomic.Uint64
	subscribeRefused, eventsSent, eventsFailed                                           atomic.Uint64
}

// Server is the UPnP IGD front-end: SSDP, descriptions, SOAP control and
// GENA events. A Server runs once.
type Server struct {
	cfg     Config
	core    Core
	log     *slog.Logger
	now     func() time.Time
	start   time.Time
	devices []*rootDevice
	st      stats
	gena    *gena

	// ctx ends when the Server closes; goroutines started by handlers
	// (event deliveries) are counted in wg.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	addrs    []netip.AddrPort // HTTP listeners
	ssdp     []netip.AddrPort // SSDP unicast sockets
	lanNets  []lanNet
	ran      bool
	ready    chan struct{} // closed once Run listens
	updateID atomic.Uint32 // SystemUpdateID (IGD:2)
	extAddr  atomic.Value  // string: last ExternalIPAddress evented
	// fwState is the firewall service's evented values last sent
	// (FirewallEnabled, InboundPinholeAllowed); under fwMu.
	fwMu    sync.Mutex
	fwState [2]string

	warnedBind bool // under mu: logged that sockets cannot be bound to the LAN interface
}

// lanNet is one LAN address of pcpgw with its prefix and interface.
type lanNet struct {
	ifindex int
	ifname  string
	prefix  netip.Prefix
}

// New checks cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Core == nil {
		return nil, errors.New("upnpigd: Config.Core is nil")
	}
	if !cfg.IGDv1 && !cfg.IGDv2 {
		return nil, errors.New("upnpigd: neither IGDv1 nor IGDv2 is enabled")
	}
	if cfg.HTTPPort == 0 {
		cfg.HTTPPort = DefaultHTTPPort
	}
	if cfg.SSDPPort == 0 {
		cfg.SSDPPort = DefaultSSDPPort
	}
	if cfg.HTTPPort != EphemeralPort && (cfg.HTTPPort < 1 || cfg.HTTPPort > 65535) {
		return nil, fmt.Errorf("upnpigd: HTTPPort %d out of range", cfg.HTTPPort)
	}
	if cfg.SSDPPort != EphemeralPort && (cfg.SSDPPort < 1 || cfg.SSDPPort > 65535) {
		return nil, fmt.Errorf("upnpigd: SSDPPort %d out of range", cfg.SSDPPort)
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.MaxSubscriptions <= 0 {
		cfg.MaxSubscriptions = DefaultMaxSubscriptions
	}
	if cfg.MaxSubscriptionsPerHost <= 0 {
		cfg.MaxSubscriptionsPerHost = max(2, cfg.MaxSubscriptions/4)
	}
	cfg.MaxSubscriptionsPerHost = min(cfg.MaxSubscriptionsPerHost, cfg.MaxSubscriptions)
	if cfg.Friendly == "" {
		cfg.Friendly = "pcpgw"
	}
	if cfg.Resolve == nil {
		cfg.Resolve = dnsq.Resolver{}.LookupHost
	}
	if cfg.ResolveTimeout <= 0 {
		cfg.ResolveTimeout = DefaultResolveTimeout
	}
	if cfg.Rescan <= 0 {
		cfg.Rescan = DefaultRescan
	}
	if cfg.SysDir == "" {
		cfg.SysDir = "/sys"
	}
	if cfg.UUID == "" {
		var b [16]byte
		if err := crand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("upnpigd: random UUID: %w", err)
		}
		cfg.UUID = fmt.Sprintf("%x", b)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	s := &Server{cfg: cfg, core: cfg.Core, log: log.With("component", "upnpigd"), now: now, ready: make(chan struct{})}
	s.start = now()
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.updateID.Store(1)
	s.extAddr.Store("")
	if cfg.IGDv1 {
		s.devices = append(s.devices, newRootDevice(1, cfg))
	}
	if cfg.IGDv2 {
		s.devices = append(s.devices, newRootDevice(2, cfg))
	}
	s.gena = newGena(s)
	s.fwState = [2]string{s.value(s.ctx, varFirewallEnabled), s.value(s.ctx, varInboundPinholeAllowed)}
	return s, nil
}

// deviceUUID derives a UUID (RFC 4122 name-based, SHA-1) from the base and
// a name, so that the UUIDs stay the same across restarts.
func deviceUUID(base, name string) string {
	h := sha1.Sum([]byte("pcpgw-upnpigd\x00" + base + "\x00" + name))
	h[6] = h[6]&0x0f | 0x50
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// Addrs returns the addresses the HTTP server listens on (after Run has
// started them).
func (s *Server) Addrs() []netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]netip.AddrPort(nil), s.addrs...)
}

// SSDPAddrs returns the unicast SSDP sockets' addresses (after Run has
// started them).
func (s *Server) SSDPAddrs() []netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]netip.AddrPort(nil), s.ssdp...)
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	return Stats{
		SSDPSearches:     s.st.ssdpSearches.Load(),
		SSDPMalformed:    s.st.ssdpMalformed.Load(),
		SSDPForeign:      s.st.ssdpForeign.Load(),
		SSDPRateLimited:  s.st.ssdpRateLimited.Load(),
		SSDPReplies:      s.st.ssdpReplies.Load(),
		SSDPNotifies:     s.st.ssdpNotifies.Load(),
		HTTPRequests:     s.st.httpRequests.Load(),
		HTTPBadHost:      s.st.httpBadHost.Load(),
		HTTPConnsRefused: s.st.httpConnsRefused.Load(),
		SOAPActions:      s.st.soapActions.Load(),
		SOAPFaults:       s.st.soapFaults.Load(),
		SOAPMalformed:    s.st.soapMalformed.Load(),
		Subscriptions:    uint64(s.gena.count()),
		SubscribeRefused: s.st.subscribeRefused.Load(),
		EventsSent:       s.st.eventsSent.Load(),
		EventsFailed:     s.st.eventsFailed.Load(),
	}
}

// Close stops what handlers started (event deliveries) and waits for it.
// Run calls it when it returns; tests that use only Handler call it.
// Close is idempotent.
func (s *Server) Close() error {
	s.mu.Lock() // goOwned adds to wg under mu only while ctx is live
	s.cancel()
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// goOwned runs f in a goroutine owned by the Server, unless it is closed.
func (s *Server) goOwned(f func(ctx context.Context)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx.Err() != nil {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f(s.ctx)
	}()
	return true
}

// Run serves SSDP, HTTP and GENA on the LAN interfaces until ctx ends, then
// sends ssdp:byebye and returns after every goroutine has ended. The LAN
// addresses are checked every Config.Rescan: when they change (a new IPv6
// prefix from the provider, an address added or removed) the HTTP and
// SSDP listeners are opened again on the new set (byebye, then alive with
// the new LOCATIONs); GENA subscriptions stay.
func (s *Server) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.ran {
		s.mu.Unlock()
		return errors.New("upnpigd: Run called twice")
	}
	s.ran = true
	s.mu.Unlock()
	defer s.Close()
	if len(s.cfg.Interfaces) == 0 {
		return errors.New("upnpigd: no LAN interface")
	}
	lans, err := lanAddrs(s.cfg.Interfaces)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.watchCore(ctx)
	}()
	for first := true; ; first = false {
		next, err := s.serveLANs(ctx, lans, first)
		if err != nil && first {
			return err // the daemon does not start without its LAN side
		}
		if err != nil {
			s.log.Error("LAN listeners", "err", err)
		}
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			// Try again after Rescan, on the addresses then: a port held
			// for a moment, an interface that was going away.
			next = s.waitLANRetry(ctx, lans)
			if ctx.Err() != nil {
				return nil
			}
			s.log.Info("LAN listeners: trying again", "lan", lanStrings(next))
		} else {
			s.log.Info("LAN addresses changed: listening again", "before", lanStrings(lans), "now", lanStrings(next))
		}
		lans = next
	}
}

// serveLANs listens for HTTP and SSDP on lans and serves until ctx ends
// (nil) or the LAN addresses change (the new ones), or a listener fails.
func (s *Server) serveLANs(ctx context.Context, lans []lanNet, first bool) ([]lanNet, error) {
	s.mu.Lock()
	s.lanNets, s.addrs, s.ssdp = lans, nil, nil
	s.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	servers, err := s.listenHTTP(lans, first)
	if err != nil {
		s.mu.Lock()
		s.addrs = nil // closed again
		s.mu.Unlock()
		return nil, err
	}
	closeHTTP := func() {
		for _, hs := range servers {
			hs.srv.Close()
		}
	}
	for _, hs := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := hs.srv.Serve(hs.ln); err != nil && !errors.Is(err, httpd.ErrServerClosed) {
				select {
				case errc <- err:
				default:
				}
				cancel()
			}
		}()
	}
	sd, err := s.listenSSDP(lans)
	if err != nil {
		closeHTTP()
		wg.Wait()
		s.mu.Lock()
		s.addrs, s.ssdp = nil, nil
		s.mu.Unlock()
		return nil, err
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		sd.run(ctx)
	}()
	if first {
		close(s.ready)
	}
	s.log.Info("serving", "http", s.Addrs(), "ssdp", s.SSDPAddrs(), "igdv1", s.cfg.IGDv1, "igdv2", s.cfg.IGDv2)
	next := s.waitLANChange(ctx, lans)
	cancel()
	closeHTTP()
	wg.Wait()
	select {
	case err := <-errc:
		return nil, err
	default:
	}
	return next, nil
}

// waitLANChange returns the LAN addresses once they differ from lans
// (checked every Config.Rescan), or nil when ctx ends.
func (s *Server) waitLANChange(ctx context.Context, lans []lanNet) []lanNet {
	t := time.NewTicker(s.cfg.Rescan)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		now, err := lanAddrs(s.cfg.Interfaces)
		if err != nil {
			continue // the interface may come back
		}
		if !slices.Equal(now, lans) {
			return now
		}
	}
}

// waitLANRetry waits Rescan and returns the LAN addresses then (lans if
// they cannot be read), or nil when ctx ends.
func (s *Server) waitLANRetry(ctx context.Context, lans []lanNet) []lanNet {
	select {
	case <-ctx.Done():
		return nil
	case <-time.After(s.cfg.Rescan):
	}
	if now, err := lanAddrs(s.cfg.Interfaces); err == nil {
		return now
	}
	return lans
}

func lanStrings(lans []lanNet) []string {
	out := make([]string, 0, len(lans))
	for _, n := range lans {
		out = append(out, n.prefix.String()+"%"+n.ifname)
	}
	return out
}

// Ready is closed once Run listens for HTTP and SSDP (a daemon opens its
// control socket after that). It stays open if Run fails first.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// lanAddrs lists the usable addresses of the LAN interfaces: IPv4 and
// non-link-local IPv6.
func lanAddrs(names []string) ([]lanNet, error) {
	var out []lanNet
	for _, name := range names {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return nil, fmt.Errorf("upnpigd: LAN interface %q: %w", name, err)
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			return nil, fmt.Errorf("upnpigd: addresses of %q: %w", name, err)
		}
		n := 0
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			addr, ok := netip.AddrFromSlice(ipn.IP)
			if !ok {
				continue
			}
			addr = addr.Unmap()
			if addr.IsLinkLocalUnicast() || addr.IsMulticast() || addr.IsUnspecified() {
				continue
			}
			ones, _ := ipn.Mask.Size()
			out = append(out, lanNet{ifindex: ifi.Index, ifname: name, prefix: netip.PrefixFrom(addr, ones)})
			n++
		}
		if n == 0 {
			return nil, fmt.Errorf("upnpigd: LAN interface %q has no usable address", name)
		}
	}
	// In a stable order, so that the same addresses compare equal however
	// the kernel lists them.
	slices.SortFunc(out, func(a, b lanNet) int {
		if c := cmp.Compare(a.ifindex, b.ifindex); c != 0 {
			return c
		}
		return a.prefix.Addr().Compare(b.prefix.Addr())
	})
	return out, nil
}

// watchCore turns core events into GENA events.
func (s *Server) watchCore(ctx context.Context) {
	ch, stop := s.core.Subscribe()
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-ch:
			if !ok {
				return
			}
			s.coreEvent(ev)
		}
	}
}

func (s *Server) coreEvent(ev mapping.Event) {
	switch ev.Kind {
	case mapping.EventMappings:
		s.updateID.Add(1)
		s.gena.changed(varPortMappingNumberOfEntries, varSystemUpdateID)
	case mapping.EventExternalAddr:
		s.updateID.Add(1)
		s.gena.changed(varExternalIPAddress, varConnectionStatus, varSystemUpdateID)
	case mapping.EventStateLost:
		s.updateID.Add(1)
		s.gena.changed(varPortMappingNumberOfEntries, varSystemUpdateID)
	case mapping.EventFirewall:
		s.firewallChanged()
	case mapping.EventMappingMoved:
		// A mapping's external port changed: the table GetGeneric and
		// GetListOfPortMappings read changed (IGD:2's SystemUpdateID
		// counts every change of a mapping; IGD:1 has only
		// PortMappingNumberOfEntries, evented with its value, unchanged,
		// as the hint to read the table again).
		s.updateID.Add(1)
		s.gena.changed(varPortMappingNumberOfEntries, varSystemUpdateID)
	}
}

// firewallChanged events the firewall service's variables that changed
// since they were last evented (pinholes turned on or off).
func (s *Server) firewallChanged() {
	now := [2]string{s.value(s.ctx, varFirewallEnabled), s.value(s.ctx, varInboundPinholeAllowed)}
	s.fwMu.Lock()
	was := s.fwState
	s.fwState = now
	s.fwMu.Unlock()
	var vars []string
	for i, name := range []string{varFirewallEnabled, varInboundPinholeAllowed} {
		if now[i] != was[i] {
			vars = append(vars, name)
		}
	}
	if len(vars) > 0 {
		s.log.Info("IPv6 firewall state", "firewall_enabled", now[0], "inbound_pinhole_allowed", now[1])
		s.gena.changed(vars...)
	}
}
