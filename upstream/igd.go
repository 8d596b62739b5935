package upstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/pcpgw/pcpgw/igdclient"
	"github.com/pcpgw/pcpgw/pcp"
)

// IGDConfig configures the backend of an ISP box's UPnP IGD. Zero values
// are documented per field.
type IGDConfig struct {
	// Client configures the IGD client: the WAN interface, the WAN
	// subnets (every address the box names must be inside), the dialer.
	// Its Logger defaults to Logger.
	Client igdclient.Config
	// Device is the IGD to drive, as igdclient's Discover found it. Nil:
	// NewIGD fails (DiscoverIGD finds it).
	Device *igdclient.Device
	// NotifyAddr is where the box's NOTIFYs are heard: "" joins
	// 239.255.255.250:1900 on the WAN interface (Client.Interface); "-"
	// listens for none; a unicast address:port (tests) is bound as it is.
	NotifyAddr string
	// CheckInterval is how often the box is asked whether it still holds
	// the mappings (its external address, and a few of the mappings made
	// through it). Zero: 30 s.
	CheckInterval time.Duration
	// CheckSample is how many mappings one check asks about, in turn.
	// Zero: 3.
	CheckSample int
	// PermanentRecheck is the lifetime given to the core for a mapping
	// with a permanent lease (IGD:1 boxes that take no other), so that
	// the core renews it and the renewal finds whether it still exists.
	// Zero: 25 minutes.
	PermanentRecheck time.Duration
	// PortTries bounds the other external ports tried when the box has no
	// AddAnyPortMapping and answers 718 to the wanted one. Zero: 8.
	PortTries int
	// EventBuffer is the capacity of Events (drop-oldest). Zero: 64.
	EventBuffer int
	// Logger receives the logs (component=upstream). Nil: discard.
	Logger *slog.Logger
	// Now is the clock of MapResult.At and error lifetimes. Nil:
	// time.Now. The check timer runs on the runtime's clock.
	Now func() time.Time
	// Rand returns a uniform int in [0, n): the other ports tried. Nil:
	// math/rand/v2.
	Rand func(n int) int
}

// IGD limits.
const (
	igdMaxLease       = 604800 // seconds: the largest IGD:2 lease (WANIPConnection:2 §2.3.17)
	igdNotifyMinGap   = 5 * time.Second
	igdShortErrorLife = 30  // seconds: the box may change its mind soon
	igdLongErrorLife  = 600 // seconds: it will not
	igdMaxDescription = 256 // bytes of NewPortMappingDescription
	igdDefaultDesc    = "pcpgw"
)

// IGD is the Backend of an ISP box's UPnP IGD (KindUPnP): pcpgw maps the
// CPE's WAN address and port at the box (NAT444, RFC 6970 §5.5) through
// its WANIPConnection (or WANPPPConnection) service.
type IGD struct {
	cfg    IGDConfig
	c      *igdclient.Client
	log    *slog.Logger
	now    func() time.Time
	rand   func(int) int
	notify *igdclient.NotifyListener

	mu            sync.Mutex
	dev           *igdclient.Device
	external      netip.Addr
	reachable     bool
	lastAnswer    time.Time
	lastErr       string
	permanentOnly bool // the box answered 725: leases are 0
	wildcardOnly  bool // the box answered 726: NewRemoteHost is ""
	noAddAny      bool // AddAnyPortMapping is not implemented
	noGetSpecific bool // GetSpecificPortMappingEntry is not implemented
	maps          map[igdKey]igdMapping
	checkFrom     int    // where the next check's sample starts
	bootID        uint32 // BOOTID.UPNP.ORG of the box's last answer to a search
	hasBootID     bool
	byeSeen       bool
	// notifyPending: an announcement (notifyBoot) asks for a check, not
	// done yet with the box answering.
	notifyPending bool
	notifyBoot    uint32
	notifyHasBoot bool
	lastKick      time.Time

	evMu   sync.Mutex // one sender at a time on events
	events chan Event
	kick   chan struct{}
	cancel context.CancelFunc
	ctx    context.Context
	wg     sync.WaitGroup
	once   sync.Once
}

var _ Backend = (*IGD)(nil)

// igdKey is a mapping's key at the box as pcpgw makes them: protocol and
// external port (pcpgw puts at most one remote host on a port).
type igdKey struct {
	proto string
	port  uint16
}

// igdMapping is what pcpgw made at the box, for the checks and
// ReleaseAll.
type igdMapping struct {
	remote   string
	internal netip.AddrPort
	lease    uint32 // asked; 0 permanent
	at       time.Time
}

// NewIGD makes the backend of cfg.Device and starts its checks and its
// NOTIFY listener. Its sockets are opened by the calling goroutine (the
// NOTIFY socket) and through cfg.Client.Dial (TCP).
func NewIGD(cfg IGDConfig) (*IGD, error) {
	if cfg.Device == nil {
		return nil, errors.New("upstream: NewIGD: no IGD device")
	}
	if cfg.Client.Logger == nil {
		cfg.Client.Logger = cfg.Logger
	}
	c, err := igdclient.New(cfg.Client)
	if err != nil {
		return nil, err
	}
	return newIGD(cfg, c, cfg.Device)
}

func newIGD(cfg IGDConfig, c *igdclient.Client, dev *igdclient.Device) (*IGD, error) {
	if cfg.CheckInterval <= 0 {
		cfg.CheckInterval = 30 * time.Second
	}
	if cfg.CheckSample <= 0 {
		cfg.CheckSample = 3
	}
	if cfg.PermanentRecheck <= 0 {
		cfg.PermanentRecheck = 25 * time.Minute
	}
	if cfg.PortTries <= 0 {
		cfg.PortTries = 8
	}
	if cfg.EventBuffer <= 0 {
		cfg.EventBuffer = 64
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g := &IGD{
		cfg: cfg, c: c, log: log.With("component", "upstream", "kind", KindUPnP), now: cfg.Now, rand: cfg.Rand,
		dev: dev, reachable: true, maps: map[igdKey]igdMapping{}, bootID: dev.BootID, hasBootID: dev.HasBootID,
		events: make(chan Event, cfg.EventBuffer), kick: make(chan struct{}, 1),
	}
	if g.now == nil {
		g.now = time.Now
	}
	if g.rand == nil {
		g.rand = rand.IntN
	}
	if !c.InSubnets(dev.Host.Addr()) {
		return nil, fmt.Errorf("upstream: IGD at %v is not inside the WAN subnets", dev.Host)
	}
	if cfg.NotifyAddr != "-" {
		l, err := c.ListenNotify(cfg.NotifyAddr)
		if err != nil {
			// The periodic check still finds a reboot.
			g.log.Warn("not listening for the IGD's announcements", "err", err)
		} else {
			g.notify = l
		}
	}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	g.wg.Go(g.run)
	if g.notify != nil {
		g.wg.Go(g.listen)
	}
	return g, nil
}

// DiscoverIGD finds the ISP box's IGD on the WAN link (igdclient's
// Discover: within cfg.Client.Wait and ctx) and returns its backend; an
// error when nothing valid answered. cfg.Device is ignored.
func DiscoverIGD(ctx context.Context, cfg IGDConfig) (*IGD, error) {
	if cfg.Client.Logger == nil {
		cfg.Client.Logger = cfg.Logger
	}
	c, err := igdclient.New(cfg.Client)
	if err != nil {
		return nil, err
	}
	dev, err := c.Discover(ctx)
	if err != nil {
		return nil, err
	}
	cfg.Device = dev
	return newIGD(cfg, c, dev)
}

// IGDDiscoverer returns DiscoverIGD as Config.DiscoverIGD wants it (no
// typed nil Backend on failure).
func IGDDiscoverer(cfg IGDConfig) func(ctx context.Context) (Backend, error) {
	return func(ctx context.Context) (Backend, error) {
		g, err := DiscoverIGD(ctx, cfg)
		if err != nil {
			return nil, err
		}
		return g, nil
	}
}

// Kind is KindUPnP.
func (g *IGD) Kind() Kind { return KindUPnP }

// Events delivers what the backend notices; closed by Close.
func (g *IGD) Events() <-chan Event { return g.events }

// device returns the device in force.
func (g *IGD) device() *igdclient.Device {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.dev
}

// emit sends ev without blocking, dropping the oldest event when the
// buffer is full.
func (g *IGD) emit(ev Event) {
	ev.Upstream = KindUPnP
	if ev.Server == "" {
		ev.Server = g.device().Control
	}
	g.evMu.Lock()
	defer g.evMu.Unlock()
	if g.ctx.Err() != nil {
		return // closed (or closing): the channel is closed or about to be
	}
	for {
		select {
		case g.events <- ev:
			return
		default:
		}
		select {
		case <-g.events:
		default:
		}
	}
}

// note tracks whether the box answers: a transport failure
// (igdclient.ErrNoAnswer) makes it unreachable, any answer reachable
// again. LastError is the last failure that is no UPnP error (those are
// answers, reported with the mapping they refuse).
func (g *IGD) note(err error) {
	noAnswer := errors.Is(err, igdclient.ErrNoAnswer)
	var ue *igdclient.Error
	g.mu.Lock()
	was := g.reachable
	g.reachable = !noAnswer
	if !noAnswer {
		g.lastAnswer = g.now()
	}
	if err != nil && !errors.As(err, &ue) {
		g.lastErr = err.Error()
	}
	g.mu.Unlock()
	switch {
	case was && noAnswer:
		g.log.Info("the IGD does not answer", "control", g.device().Control, "err", err)
		g.emit(Event{Kind: EventUnreachable})
	case !was && !noAnswer:
		g.log.Info("the IGD answers again", "control", g.device().Control)
		g.emit(Event{Kind: EventReachable})
		g.kickCheck(true) // it may have rebooted meanwhile
	}
}

// code returns the UPnP error code of err (0 if it is none).
func code(err error) int {
	var ue *igdclient.Error
	if errors.As(err, &ue) {
		return ue.Code
	}
	return 0
}

// upnpError turns the client's error into the backend's: a UPnP error
// into *Error in PCP's terms (RFC 6970 §4.3 read backwards), 501
// ActionFailed and anything that is no UPnP error (no answer, a broken
// answer) into a plain error, which the core takes as no answer and
// retries.
func (g *IGD) upnpError(op string, err error) error {
	if err == nil {
		return nil
	}
	var ue *igdclient.Error
	if !errors.As(err, &ue) || ue.Code == igdclient.CodeActionFailed {
		return fmt.Errorf("upstream: IGD %s: %w", op, err)
	}
	var c pcp.ResultCode
	life := uint32(igdLongErrorLife)
	switch ue.Code {
	case igdclient.CodeConflictInMappingEntry, igdclient.CodeSamePortValuesRequired, igdclient.CodeNoSuchEntryInArray:
		c, life = pcp.CannotProvideExternal, igdShortErrorLife
	case igdclient.CodeActionNotAuthorized, igdclient.CodeConflictWithOtherMechanisms:
		c = pcp.NotAuthorized
	case igdclient.CodeNoPortMapsAvailable:
		c, life = pcp.NoResources, igdShortErrorLife
	case igdclient.CodeInvalidAction, igdclient.CodeOptionalActionNotImplemented,
		igdclient.CodeWildCardNotPermittedInSrcIP, igdclient.CodeWildCardNotPermittedInExtPort,
		igdclient.CodeWildCardNotPermittedInIntPort, igdclient.CodeRemoteHostOnlySupportsWild,
		igdclient.CodeExternalPortOnlySupportsWild, igdclient.CodeOnlyPermanentLeasesSupported:
		c = pcp.UnsuppOption
	case igdclient.CodeInvalidArgs, igdclient.CodeArgumentValueInvalid, igdclient.CodeArgumentValueOutOfRange:
		c = pcp.MalformedRequest
	default:
		c, life = pcp.NetworkFailure, igdShortErrorLife
	}
	return g.refusal(op, c, life, ue.Error())
}

func (g *IGD) refusal(op string, c pcp.ResultCode, life uint32, detail string) *Error {
	return &Error{Kind: KindUPnP, Op: op, Code: c, Lifetime: life, Until: g.now().Add(time.Duration(life) * time.Second), Detail: detail}
}

// protoName is the IGD's NewProtocol of an IP protocol number.
func protoName(p uint8) (string, bool) {
	switch p {
	case 6:
		return "TCP", true
	case 17:
		return "UDP", true
	}
	return "", false
}

// check validates a request's internal endpoint: IPv4, a port, inside
// the WAN subnets (an IGD maps to any host of its LAN, which is the WAN
// subnet seen from here; pcpgw asks for nothing else).
func (g *IGD) checkRequest(op string, r MapRequest) (string, netip.AddrPort, error) {
	proto, ok := protoName(r.Protocol)
	if !ok {
		return "", netip.AddrPort{}, g.refusal(op, pcp.UnsuppProtocol, igdLongErrorLife, fmt.Sprintf("an IGD maps TCP and UDP only, not protocol %d", r.Protocol))
	}
	in := netip.AddrPortFrom(r.Internal.Addr().Unmap(), r.Internal.Port())
	if !in.Addr().Is4() || in.Port() == 0 {
		return "", netip.AddrPort{}, g.refusal(op, pcp.UnsuppOption, igdLongErrorLife, fmt.Sprintf("an IGD maps IPv4 addresses and ports, not %v", r.Internal))
	}
	if !g.c.InSubnets(in.Addr()) {
		d := fmt.Sprintf("internal address %v is not inside the WAN subnets %v: the ISP box cannot reach it", in.Addr(), g.c.Subnets())
		if r.ThirdParty {
			d = fmt.Sprintf("a third-party mapping for %v: the ISP box maps only hosts of the WAN subnets %v", in.Addr(), g.c.Subnets())
		}
		return "", netip.AddrPort{}, g.refusal(op, pcp.NotAuthorized, igdLongErrorLife, d)
	}
	return proto, in, nil
}

// remoteHost is NewRemoteHost for the filters: the address of a single
// one-host filter, else "" (any; the CPE's own DNAT keeps the narrower
// restriction, and the remote port, which an IGD cannot express).
func (g *IGD) remoteHost(fs []pcp.Filter) string {
	g.mu.Lock()
	wild := g.wildcardOnly
	g.mu.Unlock()
	if wild || len(fs) != 1 {
		return ""
	}
	p := fs[0].Prefix
	a := p.Addr()
	switch {
	case a.Is4() && p.Bits() == 32, a.Is4In6() && p.Bits() == 128:
		return a.Unmap().String()
	}
	return ""
}

// lease is NewLeaseDuration for a wanted lifetime: at most 604800 s (the
// IGD:2 maximum, MaxUint32 asks for it), 0 when the box takes only
// permanent leases.
func (g *IGD) lease(lifetime uint32) uint32 {
	g.mu.Lock()
	perm := g.permanentOnly
	g.mu.Unlock()
	if perm {
		return 0
	}
	if lifetime == 0 || lifetime > igdMaxLease {
		return igdMaxLease
	}
	return lifetime
}

// lifetime is MapResult.Lifetime for a granted lease.
func (g *IGD) lifetime(lease uint32) uint32 {
	if lease == 0 {
		return uint32(g.cfg.PermanentRecheck / time.Second)
	}
	return lease
}

func description(s string) string {
	if s == "" {
		return igdDefaultDesc
	}
	if len(s) > igdMaxDescription {
		s = s[:igdMaxDescription]
		for len(s) > 0 && !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
	}
	return s
}

// Map makes or renews a mapping at the box: AddPortMapping of the CPE's
// WAN address and port. With PreferFailure only the suggested port will
// do (else CANNOT_PROVIDE_EXTERNAL); without it, IGD:2's
// AddAnyPortMapping, or on IGD:1 the suggested port and then a few others
// when the box answers 718. A renewal (the box holds the mapping, as pcpgw
// made it) re-adds it; a 718 to that is checked with
// GetSpecificPortMappingEntry and counts as success when the entry is
// pcpgw's. MapRequest.Lifetime 0 is taken as MaxUint32 (Delete removes).
func (g *IGD) Map(ctx context.Context, r MapRequest) (MapResult, error) {
	proto, in, err := g.checkRequest("map", r)
	if err != nil {
		return MapResult{}, err
	}
	ext, err := g.externalAddr(ctx, "map", false)
	if err != nil {
		return MapResult{}, err
	}
	if s := r.SuggestedExternal.Addr().Unmap(); r.PreferFailure && s.IsValid() && !s.IsUnspecified() && s != ext {
		return MapResult{}, g.refusal("map", pcp.CannotProvideExternal, igdShortErrorLife, fmt.Sprintf("the ISP box's external address is %v, not %v", ext, s))
	}
	port := r.SuggestedExternal.Port()
	if port == 0 {
		port = in.Port()
	}
	m := igdclient.PortMapping{RemoteHost: g.remoteHost(r.Filters), ExternalPort: port, Protocol: proto, InternalPort: in.Port(),
		InternalClient: in.Addr(), Enabled: true, Description: description(r.Description), LeaseDuration: g.lease(r.Lifetime)}
	g.mu.Lock()
	old, known := g.maps[igdKey{proto, port}]
	g.mu.Unlock()
	renewal := known && old.internal == in
	if renewal {
		m.RemoteHost = old.remote
	}
	var got igdclient.PortMapping
	switch {
	case r.PreferFailure || renewal:
		got, err = g.addExact(ctx, m, true)
		var e *Error
		if err != nil && !r.PreferFailure && errors.As(err, &e) && e.Code == pcp.CannotProvideExternal {
			// The box gave pcpgw's port away (it lost its table and
			// someone took it): any port will do.
			g.forget(igdKey{proto, port})
			got, err = g.addAny(ctx, m)
		}
	default:
		got, err = g.addAny(ctx, m)
	}
	if err != nil {
		return MapResult{}, err
	}
	now := g.now()
	g.mu.Lock()
	g.maps[igdKey{proto, got.ExternalPort}] = igdMapping{remote: got.RemoteHost, internal: in, lease: got.LeaseDuration, at: now}
	g.mu.Unlock()
	g.log.Debug("mapped", "proto", proto, "internal", in, "external", netip.AddrPortFrom(ext, got.ExternalPort), "lease", got.LeaseDuration)
	return MapResult{External: netip.AddrPortFrom(ext, got.ExternalPort), Lifetime: g.lifetime(got.LeaseDuration), Nonce: r.Nonce, Server: g.device().Host, At: now}, nil
}

// do runs one action and tracks reachability.
func (g *IGD) do(err error) error {
	g.note(err)
	return err
}

// addExact asks for m exactly. It takes in the box's limits on the way
// (725: permanent leases only; 726: no remote host) and, with confirm,
// checks a 718 with GetSpecificPortMappingEntry: the entry may be
// pcpgw's own (a box that answers 718 to a re-add). It returns the
// mapping as the box holds it.
func (g *IGD) addExact(ctx context.Context, m igdclient.PortMapping, confirm bool) (igdclient.PortMapping, error) {
	dev := g.device()
	for range 3 {
		err := g.do(dev.AddPortMapping(ctx, m))
		if g.adapt(&m, err) {
			continue
		}
		if code(err) == igdclient.CodeConflictInMappingEntry && confirm {
			if got, ok := g.ours(ctx, m); ok {
				return got, nil
			}
		}
		return m, g.upnpError("map", err)
	}
	return m, g.upnpError("map", errors.New("the box keeps refusing the lease and remote host"))
}

// adapt learns a limit of the box from err and changes m for it (true:
// ask again).
func (g *IGD) adapt(m *igdclient.PortMapping, err error) bool {
	switch c := code(err); {
	case c == igdclient.CodeOnlyPermanentLeasesSupported && m.LeaseDuration != 0:
		g.mu.Lock()
		g.permanentOnly = true
		g.mu.Unlock()
		g.log.Info("the IGD takes permanent leases only: mappings are made with lease 0 and checked on renewal")
		m.LeaseDuration = 0
		return true
	case c == igdclient.CodeRemoteHostOnlySupportsWild && m.RemoteHost != "":
		g.mu.Lock()
		g.wildcardOnly = true
		g.mu.Unlock()
		g.log.Info("the IGD takes no remote host: mappings are made for any remote host (the CPE's own rules restrict them)")
		m.RemoteHost = ""
		return true
	}
	return false
}

// ours reports whether the box's entry for m's key is pcpgw's (same
// internal client and port), and returns it as held, with a timed lease
// refreshed when less than half of it is left (a box that answers 718 to
// re-adds does not extend it).
func (g *IGD) ours(ctx context.Context, m igdclient.PortMapping) (igdclient.PortMapping, bool) {
	dev := g.device()
	e, err := dev.GetSpecificPortMappingEntry(ctx, m.RemoteHost, m.ExternalPort, m.Protocol)
	g.note(err)
	if err != nil || e.InternalClient != m.InternalClient || e.InternalPort != m.InternalPort {
		return m, false
	}
	held := m
	held.LeaseDuration = e.LeaseDuration // what is left; 0 permanent
	switch {
	case m.LeaseDuration == 0 || e.LeaseDuration == 0:
		return held, true
	case e.LeaseDuration >= m.LeaseDuration/2:
		held.LeaseDuration = min(e.LeaseDuration, m.LeaseDuration)
		return held, true
	}
	// Little left: take it down and make it again.
	if err := g.do(dev.DeletePortMapping(ctx, m.RemoteHost, m.ExternalPort, m.Protocol)); err != nil && code(err) != igdclient.CodeNoSuchEntryInArray {
		return held, true
	}
	if err := g.do(dev.AddPortMapping(ctx, m)); err != nil {
		g.log.Info("re-adding a mapping the box would not renew failed", "external", m.ExternalPort, "proto", m.Protocol, "err", err)
		return m, false
	}
	return m, true
}

// addAny asks for m with its port as a wish: AddAnyPortMapping on IGD:2,
// else the port and then PortTries others.
func (g *IGD) addAny(ctx context.Context, m igdclient.PortMapping) (igdclient.PortMapping, error) {
	dev := g.device()
	g.mu.Lock()
	noAny := g.noAddAny
	g.mu.Unlock()
	if dev.Version() == 2 && !noAny {
		for range 3 {
			p, err := dev.AddAnyPortMapping(ctx, m)
			g.note(err)
			if err == nil {
				m.ExternalPort = p
				return m, nil
			}
			if g.adapt(&m, err) {
				continue
			}
			if c := code(err); c == igdclient.CodeInvalidAction || c == igdclient.CodeOptionalActionNotImplemented {
				g.mu.Lock()
				g.noAddAny = true
				g.mu.Unlock()
				g.log.Info("the IGD:2 has no AddAnyPortMapping: trying ports with AddPortMapping")
				break
			}
			return m, g.upnpError("map", err)
		}
	}
	tried := map[uint16]bool{}
	var last *Error
	for i := 0; i <= g.cfg.PortTries; i++ {
		tried[m.ExternalPort] = true
		got, err := g.addExact(ctx, m, i == 0)
		if err == nil || !errors.As(err, &last) || last.Code != pcp.CannotProvideExternal {
			return got, err
		}
		m.LeaseDuration, m.RemoteHost = got.LeaseDuration, got.RemoteHost // learned on the way (725, 726)
		for range 100 {
			if !tried[m.ExternalPort] {
				break
			}
			m.ExternalPort = uint16(1024 + g.rand(65536-1024))
		}
	}
	return m, g.refusal("map", pcp.NoResources, igdShortErrorLife, fmt.Sprintf("%s on %d ports", last.Detail, len(tried)))
}

// forget drops a mapping from the record.
func (g *IGD) forget(k igdKey) {
	g.mu.Lock()
	delete(g.maps, k)
	g.mu.Unlock()
}

// Delete removes a mapping: DeletePortMapping of the external port (the
// request's SuggestedExternal, as the MapResult gave it, else the one the
// record holds for Internal). The box's table is shared by every client
// of its LAN: the entry is deleted only when it is pcpgw's
// (GetSpecificPortMappingEntry says so, or, on a box without that action,
// pcpgw's record does). 714 NoSuchEntryInArray is success.
func (g *IGD) Delete(ctx context.Context, r MapRequest) error {
	proto, in, err := g.checkRequest("delete", r)
	if err != nil {
		return err
	}
	port := r.SuggestedExternal.Port()
	g.mu.Lock()
	rec, known := g.maps[igdKey{proto, port}]
	if port == 0 || known && rec.internal != in {
		known = false
		for k, v := range g.maps {
			if k.proto == proto && v.internal == in {
				port, rec, known = k.port, v, true
				break
			}
		}
	}
	noGet := g.noGetSpecific
	g.mu.Unlock()
	if port == 0 {
		return nil // never made
	}
	remote := g.remoteHost(r.Filters)
	if known {
		remote = rec.remote
	}
	dev := g.device()
	if !noGet {
		e, err := dev.GetSpecificPortMappingEntry(ctx, remote, port, proto)
		g.note(err)
		switch c := code(err); {
		case err == nil && (e.InternalClient != in.Addr() || e.InternalPort != in.Port()):
			g.forget(igdKey{proto, port})
			g.log.Debug("not deleting another client's mapping", "proto", proto, "external", port, "holder", e.InternalClient)
			return nil
		case c == igdclient.CodeNoSuchEntryInArray:
			g.forget(igdKey{proto, port})
			return nil
		case c == igdclient.CodeInvalidAction || c == igdclient.CodeOptionalActionNotImplemented:
			g.mu.Lock()
			g.noGetSpecific = true
			g.mu.Unlock()
			if !known {
				return nil
			}
		case err != nil:
			return g.upnpError("delete", err)
		}
	} else if !known {
		return nil
	}
	err = g.do(dev.DeletePortMapping(ctx, remote, port, proto))
	if err != nil && code(err) != igdclient.CodeNoSuchEntryInArray {
		return g.upnpError("delete", err)
	}
	g.forget(igdKey{proto, port})
	return nil
}

// ExternalAddr asks the box its external address.
func (g *IGD) ExternalAddr(ctx context.Context) (netip.Addr, error) {
	return g.externalAddr(ctx, "external address", true)
}

// externalAddr returns the box's external address: asked (fresh), or the
// last one known. A change is an EventExternalChanged; an address that
// cannot be one (empty, reserved: upstream.UsableExternal) is refused.
func (g *IGD) externalAddr(ctx context.Context, op string, fresh bool) (netip.Addr, error) {
	g.mu.Lock()
	known := g.external
	g.mu.Unlock()
	if known.IsValid() && !fresh {
		return known, nil
	}
	a, err := g.device().GetExternalIPAddress(ctx)
	g.note(err)
	if err != nil {
		return netip.Addr{}, g.upnpError(op, err)
	}
	if !UsableExternal(a) {
		return netip.Addr{}, g.refusal(op, pcp.NetworkFailure, igdShortErrorLife, fmt.Sprintf("the ISP box reports no usable external address (%q)", a.String()))
	}
	g.mu.Lock()
	old := g.external
	g.external = a
	g.mu.Unlock()
	if old.IsValid() && old != a {
		g.log.Info("the IGD's external address changed", "was", old, "external", a)
		g.emit(Event{Kind: EventExternalChanged, External: a})
	}
	return a, nil
}

// kickCheck asks the checker to run soon; limited unless force.
func (g *IGD) kickCheck(force bool) {
	g.mu.Lock()
	now := g.now()
	if !force && now.Sub(g.lastKick) < igdNotifyMinGap {
		g.mu.Unlock()
		return
	}
	g.lastKick = now
	g.mu.Unlock()
	select {
	case g.kick <- struct{}{}:
	default:
	}
}

// run checks the box every CheckInterval, when kicked, and, while it
// does not answer, again after 1 s, 2 s, 4 s ... (up to CheckInterval), so
// that a box back from a reboot is seen soon.
func (g *IGD) run() {
	t := time.NewTimer(g.cfg.CheckInterval)
	defer t.Stop()
	var backoff time.Duration
	for {
		select {
		case <-g.ctx.Done():
			return
		case <-t.C:
		case <-g.kick:
			t.Stop()
		}
		next := g.cfg.CheckInterval
		if g.check(g.ctx) {
			backoff = 0
		} else {
			backoff = min(max(2*backoff, time.Second), g.cfg.CheckInterval)
			next = backoff
		}
		t.Reset(next)
	}
}

// check asks the box for its external address and for a few of the
// mappings pcpgw made (in turn): one missing, or held by another client,
// means the box lost its table (EventStateLost: every mapping is made
// again). When the box does not answer, it is asked where it is now (a
// unicast M-SEARCH: after a reboot it may serve on another port). It
// reports whether the box answered; then an announcement that prompted
// the check is settled.
func (g *IGD) check(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, min(g.cfg.CheckInterval, time.Minute))
	defer cancel()
	if _, err := g.externalAddr(ctx, "check", true); errors.Is(err, igdclient.ErrNoAnswer) {
		if !g.relocate(ctx, "") {
			return false
		}
		if _, err := g.externalAddr(ctx, "check", true); errors.Is(err, igdclient.ErrNoAnswer) {
			return false
		}
	}
	g.mu.Lock()
	if g.notifyPending {
		// Settled by this answer: the repeats of that announcement
		// prompt nothing more.
		g.notifyPending, g.byeSeen = false, false
		if g.notifyHasBoot {
			g.bootID, g.hasBootID = g.notifyBoot, true
		}
	}
	if g.noGetSpecific || len(g.maps) == 0 {
		g.mu.Unlock()
		return true
	}
	keys := make([]igdKey, 0, len(g.maps))
	for k := range g.maps {
		keys = append(keys, k)
	}
	sortKeys(keys)
	n := min(g.cfg.CheckSample, len(keys))
	from := g.checkFrom % len(keys)
	g.checkFrom = from + n
	sample := make([]igdKey, 0, n)
	recs := make([]igdMapping, 0, n)
	for i := range n {
		k := keys[(from+i)%len(keys)]
		sample = append(sample, k)
		recs = append(recs, g.maps[k])
	}
	dev := g.dev
	g.mu.Unlock()
	for i, k := range sample {
		e, err := dev.GetSpecificPortMappingEntry(ctx, recs[i].remote, k.port, k.proto)
		g.note(err)
		c := code(err)
		switch {
		case c == igdclient.CodeInvalidAction || c == igdclient.CodeOptionalActionNotImplemented:
			g.mu.Lock()
			g.noGetSpecific = true
			g.mu.Unlock()
			g.log.Info("the IGD has no GetSpecificPortMappingEntry: its lost mappings are found on renewal only")
			return true
		case err == nil && e.InternalClient == recs[i].internal.Addr() && e.InternalPort == recs[i].internal.Port():
			continue
		case err == nil || c == igdclient.CodeNoSuchEntryInArray:
			g.stateLost(fmt.Sprintf("%s %d missing at the box", k.proto, k.port))
			return true
		case errors.Is(err, igdclient.ErrNoAnswer):
			return false
		default:
			return true // a broken answer: ask again next time
		}
	}
	return true
}

// sortKeys orders keys by protocol, then port. (sort.Slice: the daemon
// links it already; slices.SortFunc would add 8 KB of instances.)
func sortKeys(ks []igdKey) {
	sort.Slice(ks, func(i, j int) bool {
		return ks[i].proto < ks[j].proto || ks[i].proto == ks[j].proto && ks[i].port < ks[j].port
	})
}

// stateLost forgets the record and tells the core to make every mapping
// again.
func (g *IGD) stateLost(why string) {
	g.mu.Lock()
	n := len(g.maps)
	g.maps = map[igdKey]igdMapping{}
	g.mu.Unlock()
	g.log.Info("the IGD lost its mappings: making them again", "why", why, "mappings", n)
	g.emit(Event{Kind: EventStateLost})
}

// relocate looks for the box again at its address (unicast M-SEARCH), or
// takes the description at loc (a NOTIFY's LOCATION on the same host),
// and drives it there when it is the same device. It reports whether the
// device moved.
func (g *IGD) relocate(ctx context.Context, loc string) bool {
	cur := g.device()
	var d *igdclient.Device
	var err error
	if loc != "" {
		d, err = g.c.Describe(ctx, loc, cur.Host.Addr())
	} else {
		d, err = g.c.DiscoverHost(ctx, cur.Host.Addr())
	}
	if err != nil || d.Control == cur.Control {
		return false
	}
	if cur.UDN != "" && d.UDN != cur.UDN {
		g.log.Warn("another IGD answers at the box's address: not taken", "udn", d.UDN, "was", cur.UDN)
		return false
	}
	g.log.Info("the IGD moved", "location", d.Location, "control", d.Control, "was", cur.Control)
	g.mu.Lock()
	g.dev = d
	if d.HasBootID {
		g.bootID, g.hasBootID = d.BootID, true
	}
	g.mu.Unlock()
	return true
}

// listen reads the box's NOTIFYs. They are only reasons to ask: a new
// BOOTID, a byebye followed by an alive, or a new LOCATION make the
// checker run now; what pcpgw believes comes from the box's answers to
// its own requests.
func (g *IGD) listen() {
	errs := 0
	var lastRelocate time.Time
	for {
		n, src, err := g.notify.Read()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || g.ctx.Err() != nil {
				return
			}
			if errs++; errs > 100 {
				g.log.Warn("NOTIFY listener failing: stopped", "err", err)
				return
			}
			continue
		}
		errs = 0
		cur := g.device()
		if src.Addr() != cur.Host.Addr() || !ofDevice(n.USN, cur.UDN) {
			continue // another device of the WAN link, or of the box (a media server)
		}
		g.mu.Lock()
		reason := ""
		switch n.NTS {
		case igdclient.NTSByeBye:
			g.byeSeen = true
		case igdclient.NTSAlive, igdclient.NTSUpdate:
			switch {
			case g.byeSeen:
				reason = "byebye, then alive"
			case n.HasBootID && g.hasBootID && n.BootID != g.bootID:
				reason = fmt.Sprintf("BOOTID %d, was %d", n.BootID, g.bootID)
			case n.HasBootID && !g.hasBootID:
				reason = "BOOTID announced"
			case n.Location != cur.Location && n.NTS == igdclient.NTSAlive:
				reason = "new LOCATION"
			}
		}
		g.mu.Unlock()
		if reason == "" {
			continue
		}
		g.log.Debug("IGD announcement: checking", "reason", reason, "nt", n.NT, "location", n.Location)
		if n.Location != "" && n.Location != cur.Location && time.Since(lastRelocate) >= relocateEvery {
			// At most one description fetch per relocateEvery: a burst
			// of NOTIFYs (or forged ones with the box's address) is not
			// one connection to the box each.
			lastRelocate = time.Now()
			ctx, cancel := context.WithTimeout(g.ctx, 10*time.Second)
			g.relocate(ctx, n.Location)
			cancel()
		}
		g.mu.Lock()
		// Not believed: settled by the next check the box answers.
		g.notifyPending = true
		g.notifyBoot, g.notifyHasBoot = n.BootID, n.HasBootID
		g.mu.Unlock()
		g.kickCheck(false)
	}
}

// relocateEvery bounds how often a NOTIFY with a new LOCATION makes the
// IGD backend fetch a description.
const relocateEvery = 10 * time.Second

// ofDevice reports whether a NOTIFY's USN ("uuid:<id>" or
// "uuid:<id>::<type>") names the device whose UDN is udn, or one cannot
// tell (no UDN in the description). Another root device of the same box
// (a media server, a second IGD) announces itself with its own UUID: its
// reboots and locations are not the IGD's.
func ofDevice(usn, udn string) bool {
	if udn == "" {
		return true
	}
	id, _, _ := strings.Cut(usn, "::")
	return strings.EqualFold(strings.TrimSpace(id), strings.TrimSpace(udn))
}

// ReleaseAll deletes every mapping pcpgw made at the box (when another
// upstream takes over: an IGD forgets nothing by itself).
func (g *IGD) ReleaseAll(ctx context.Context) error {
	g.mu.Lock()
	type item struct {
		k igdKey
		m igdMapping
	}
	var all []item
	for k, m := range g.maps {
		all = append(all, item{k, m})
	}
	g.mu.Unlock()
	var errs []error
	for _, it := range all {
		p := uint8(6)
		if it.k.proto == "UDP" {
			p = 17
		}
		err := g.Delete(ctx, MapRequest{Protocol: p, Internal: it.m.internal, SuggestedExternal: netip.AddrPortFrom(netip.IPv4Unspecified(), it.k.port)})
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %d: %w", it.k.proto, it.k.port, err))
		}
	}
	return errors.Join(errs...)
}

// Info is what the status shows.
func (g *IGD) Info() Info {
	st := g.c.Stats()
	g.mu.Lock()
	defer g.mu.Unlock()
	d := g.dev
	proto := "WANIPConnection:1"
	switch d.Service {
	case igdclient.ServiceWANIP2:
		proto = "WANIPConnection:2"
	case igdclient.ServiceWANPPP1:
		proto = "WANPPPConnection:1"
	}
	return Info{
		Kind: KindUPnP, Address: d.Host.String(), External: g.external,
		Device:     &Device{FriendlyName: d.FriendlyName, Manufacturer: d.Manufacturer, Model: d.ModelName, Service: d.Service, Location: d.Location},
		Reachable:  g.reachable,
		LastAnswer: g.lastAnswer, LastError: g.lastErr,
		Sent: st.Requests, Received: st.Responses, Dropped: st.Dropped,
		Servers: []string{d.Control}, Protocol: proto,
	}
}

// Close stops the checks and the listener and closes Events; it does not
// delete the mappings (ReleaseAll does). Idempotent.
func (g *IGD) Close() error {
	g.once.Do(func() {
		g.evMu.Lock()
		g.cancel()
		g.evMu.Unlock()
		if g.notify != nil {
			g.notify.Close()
		}
		g.wg.Wait()
		close(g.events)
	})
	return nil
}
