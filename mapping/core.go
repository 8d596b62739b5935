package mapping

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pcpgw/pcpgw/firewall"
	"github.com/pcpgw/pcpgw/upstream"
)

// Firewall is what the core needs of the CPE's firewall: one batch per
// change, a full reconciliation at start, pinhole counters and the
// addresses for hairpin. firewall.NFT implements it; firewalltest.Fake
// fakes it. A forward carries its port at the upstream
// (firewall.Forward.UpstreamPort) for the hairpin of the external address.
type Firewall interface {
	Apply(ctx context.Context, c firewall.Change) error
	Sync(ctx context.Context, fwds []firewall.Forward, pins []firewall.Pinhole) error
	Packets(ctx context.Context, p firewall.Pinhole) (uint64, error)
	SetWANAddr(ctx context.Context, a netip.Addr) error
	// SetExternalAddr is the upstream's external address, hairpinned too
	// (RFC 7648 §3.1) by the forwards' UpstreamPort.
	SetExternalAddr(ctx context.Context, a netip.Addr) error
}

// Upstream is what the core needs of the NAT beyond the CPE: the
// provider's PCP server, a NAT-PMP gateway, an ISP box's UPnP IGD, or
// nothing (KindNone: the core then makes mappings on the CPE only).
// upstream.Auto implements it. Refusals come as *upstream.Error (PCP
// result codes whatever the upstream speaks); other errors mean no
// answer.
type Upstream interface {
	Map(ctx context.Context, r upstream.MapRequest) (upstream.MapResult, error)
	Delete(ctx context.Context, r upstream.MapRequest) error
	ExternalAddr(ctx context.Context) (netip.Addr, error)
	Events() <-chan upstream.Event
	// Kind returns the upstream in force and its generation
	// (upstream.Event.Gen), waiting while it is being detected until ctx
	// ends (then KindDetecting).
	Kind(ctx context.Context) (upstream.Kind, uint64)
}

// DetectWait bounds how long a LAN request waits for the upstream to be
// detected (AwaitUpstream) before it is treated as pending. Detection
// itself is bounded: its probes take at most 3 s (upstream.Config.ProbeTimeout),
// and a kind change gives the old upstream's mappings back first (at most
// 5 s more). Front-ends whose clients give up sooner bound their own wait
// (upnpigd: 3 s for the external address).
const DetectWait = 5 * time.Second

// Config configures a Core. Zero values are documented per field.
type Config struct {
	// Mode is how the CPE reaches the internet. ModeAuto decides from the
	// WAN address (see ResolveMode) at start and on every SetWANAddr.
	Mode Mode
	// WANAddr is the CPE's WAN IPv4 address; invalid when it has none
	// (DS-Lite). It can change later with SetWANAddr.
	WANAddr netip.Addr
	// Upstream is the NAT beyond the CPE; nil means none (local only).
	// Portset mode has none (the provider's border relay is stateless).
	Upstream Upstream
	// PortSet is the provider's port set in portset mode (required
	// there, ignored in the other modes); SetPortSet changes it.
	PortSet PortSet
	// Prefix64 are the NAT64 prefixes NAT64 mappings admit when the
	// provider's answer names none (option nat64_prefix, RFC 7050
	// discovery); SetPrefix64 changes them. Empty: the well-known
	// 64:ff9b::/96 (RFC 6052).
	Prefix64 []netip.Prefix
	// Firewall is the CPE's firewall; required.
	Firewall Firewall
	// SecureMode, when set, lets a host map ports only to itself and
	// delete only its own mappings.
	SecureMode bool
	// Rules are the permission rules (first match wins); nil means
	// DefaultRules. They apply to IPv4 port mappings.
	Rules []Rule
	// ReservedPorts are external ports never mapped (pcpgw's own HTTP
	// port, 5350, 5351 are always reserved).
	ReservedPorts []uint16
	// Quota is the most mappings one LAN host may hold; 0 means 128.
	Quota int
	// MinLifetime and MaxLifetime clamp LAN leases that have an end;
	// zero means 120 s and 86400 s.
	MinLifetime, MaxLifetime time.Duration
	// Pinholes enables IPv6 pinholes (SetPinholes changes it later).
	Pinholes bool
	// StateDir holds the state file and its journal (see doc.go,
	// "Persistence"); "" disables persistence (answers then wait for no
	// disk).
	StateDir string
	// LeaseFile, when set, is also written in miniupnpd's lease format
	// (PROTO:eport:iaddr:iport:timestamp:desc) for OpenWrt's status page.
	LeaseFile string
	// UpstreamTimeout bounds how long a LAN request waits for the provider
	// (RFC 6970 §5.1); the upstream request goes on in the background.
	// Zero means 2 s.
	UpstreamTimeout time.Duration
	// Logger receives the core's logs; nil discards.
	Logger *slog.Logger
}

// Core is THE mapping table: every port mapping and pinhole of every
// front-end, with leases, upstream renewals, policy and persistence.
//
// Decisions are taken under mu; kernel and network I/O happen after it is
// released, so a slow provider never stalls requests for other mappings.
type Core struct {
	cfg Config
	log *slog.Logger
	fw  Firewall
	up  Upstream

	mu   sync.Mutex
	mode Mode // resolved (never ModeAuto)
	// upKind is the upstream the mappings are made at: KindNone or
	// KindLocal make them on the CPE only; KindDetecting until the first
	// detection (or what the state file says).
	upKind upstream.Kind
	// upGen is the generation of the upstream in force (upstream.Event.Gen;
	// 0 before the first).
	upGen      uint64
	wan        netip.Addr
	external   netip.Addr // provider's external address, last known
	epochStart time.Time
	entries    map[uint32]*entry
	byExt      map[extKey]*entry
	perClient  map[netip.Addr][]*entry
	order      []*entry // creation order (seq ascending)
	nextID     uint32
	seq        uint64
	subs       map[chan Event]struct{}
	sched      schedHeap
	closed     bool
	pinholes   int            // live pinholes among entries
	ports      PortSet        // portset mode: the external ports mappings may take
	prefix64   []netip.Prefix // NAT64 prefixes when the provider names none
	pol        atomic.Pointer[Policy]
	// pinholesOn: IPv6 pinholes may be opened (Config.Pinholes, then
	// SetPinholes); changed under mu.
	pinholesOn atomic.Bool
	// peers are the PEER mappings (peer.go); peerLost counts the
	// upstream's losses of state, which end them upstream.
	peers    map[peerKey]*peerEntry
	peerLost uint32
	// byHairpin is the mapping whose kernel forward carries each
	// upstream port (entry.hairpin), so that no two do (hairpin.go).
	byHairpin map[extKey]*entry

	wake chan struct{} // scheduler: the earliest deadline changed

	// needSync: a kernel batch failed; the scheduler makes the kernel hold
	// exactly the table (firewall Sync), at syncAt, backing off by
	// syncBackoff while that fails.
	needSync    bool
	syncAt      time.Time
	syncBackoff time.Duration

	// jr is the journal (nil without Config.StateDir): see journal.go.
	jr *journal
	// undo are mappings whose request was never answered before a crash,
	// to be deleted at the upstream (undoLoop); undoKeys counts the
	// external ports they hold meanwhile (not given to new mappings);
	// undoKind is the upstream their nonces belong to.
	undo     []*entry
	undoKeys map[extKey]int
	undoKind upstream.Kind
	// asking holds the mappings whose request is at the upstream now
	// (from the moment its nonce is handed out until the upstream's call
	// returns), with the cancel of that call: a removal cancels it, and
	// the request's own goroutine sends the delete (runUpstream), after
	// its request, never before it.
	asking map[*entry]context.CancelFunc
	// deleting holds the ports whose mapping's delete is to go or is
	// going upstream: a new mapping's request for the port waits for it
	// (see awaitDeletes).
	deleting map[extKey]*deleteWait

	persist  chan struct{} // state writer: something changed
	renewed  chan struct{} // state writer: a lease was renewed (written later)
	renewing chan struct{} // semaphore of renewals in flight
	quit     chan struct{}
	wg       sync.WaitGroup
	bg       sync.WaitGroup // background upstream work
	closeMu  sync.Once
}

// extKey identifies the external port of an IPv4 port mapping (protocol
// and port): the CPE's WAN port, or the provider's port when the CPE does
// no NAT.
type extKey uint32

func keyOf(proto Proto, port uint16) extKey { return extKey(proto)<<16 | extKey(port) }

// entry is the core's record of one mapping.
type entry struct {
	Mapping
	seq      uint64
	lifetime time.Duration // requested (0: no end)
	upLife   time.Duration // the provider's lifetime at upAt
	nonce    Nonce         // PCP nonce toward the provider
	// port is the external port of an IPv4 port mapping (its extKey with
	// Proto), the internal port of a pinhole.
	port    uint16
	busy    bool // an upstream operation is in flight
	removed bool // taken out of the table
	exact   bool // the external port was asked for exactly
	// fromProvider64: a NAT64 mapping's Prefix64 came from the provider's
	// answer (not the configured or well-known fallback).
	fromProvider64 bool
	// kernelStale: a batch for e failed; its kernel element is not known
	// (the next renewal replaces it, a resync rewrites it).
	kernelStale bool
	// tentative: made by a request not answered yet (a crash undoes it).
	tentative bool
	// upGone: its delete was sent to the upstream (or is sent by the
	// request in flight when it was removed): sent once.
	upGone  bool
	jmark   mark  // what of e awaits the journal
	attempt int32 // renewal attempt since upAt
	sidx    int32 // its index in Core.sched; -1 when not scheduled
	// jwant is the journal group holding e's last change, modulo 2^32
	// (see wantLocked; the fields above and these fill the struct's
	// padding: an entry stays 520 bytes).
	jwant uint32
	// hairpin is the upstream port e's kernel forward carries
	// (firewall.Forward.UpstreamPort; 0: none): see hairpin.go.
	hairpin uint16

	// told is the external endpoint LAN clients were last given (kept
	// while the mapping is made again at another upstream); see
	// noteExternalLocked.
	told    netip.AddrPort
	upErr   error         // why the provider has not made it (nil: it has)
	ready   chan struct{} // closed when the first upstream attempt ended
	upAt    time.Time     // when the provider last answered
	due     time.Time     // the deadline it is scheduled at (see schedHeap)
	renewAt time.Time     // next upstream renewal (zero: none)
	// kernelExp is when the kernel's element for e times out, as last
	// sent (zero: no timeout, or not known after a failed batch).
	kernelExp time.Time
}

// view is e as the front-ends see it, behind an upstream of kind k.
// Called with mu held.
func (e *entry) view(k upstream.Kind) Mapping {
	m := e.Mapping
	if m.Upstream == UpstreamPending || m.Upstream == UpstreamFailing {
		if e.upErr != nil {
			m.UpstreamErr = upstreamReason(e.upErr, e.port, k)
		}
		if !e.busy {
			m.RetryAt = e.renewAt
		}
	}
	return m
}

// New makes a Core, loads the state file and reconciles the kernel and the
// provider with it. Call Run to start timers and upstream event handling.
func New(ctx context.Context, cfg Config) (*Core, error) {
	if cfg.Firewall == nil {
		return nil, errors.New("mapping: Config.Firewall is required")
	}
	if cfg.UpstreamTimeout <= 0 {
		cfg.UpstreamTimeout = 2 * time.Second
	}
	cfg.ReservedPorts = append(slices.Clone(cfg.ReservedPorts), 5350, 5351)
	pol := Policy{SecureMode: cfg.SecureMode, Rules: cfg.Rules, Quota: cfg.Quota,
		MinLifetime: cfg.MinLifetime, MaxLifetime: cfg.MaxLifetime}.normalized()
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Core{
		cfg:        cfg,
		log:        log.With("component", "mapping"),
		fw:         cfg.Firewall,
		up:         cfg.Upstream,
		wan:        cfg.WANAddr,
		epochStart: time.Now(),
		entries:    make(map[uint32]*entry),
		byExt:      make(map[extKey]*entry),
		byHairpin:  make(map[extKey]*entry),
		perClient:  make(map[netip.Addr][]*entry),
		subs:       make(map[chan Event]struct{}),
		undoKeys:   make(map[extKey]int),
		asking:     make(map[*entry]context.CancelFunc),
		deleting:   make(map[extKey]*deleteWait),
		nextID:     1,
		wake:       make(chan struct{}, 1),
		persist:    make(chan struct{}, 1),
		renewed:    make(chan struct{}, 1),
		renewing:   make(chan struct{}, maxRenewing),
		quit:       make(chan struct{}),
	}
	c.pol.Store(&pol)
	c.prefix64 = slices.Clone(cfg.Prefix64)
	c.pinholesOn.Store(cfg.Pinholes)
	c.mode = ResolveMode(cfg.Mode, cfg.WANAddr, cfg.Upstream != nil)
	if c.mode == ModePortSet {
		if cfg.PortSet.Set.Empty() {
			return nil, errors.New("mapping: portset mode without a port set")
		}
		c.ports, c.up = cfg.PortSet, nil
	}
	if c.mode == ModeLocal || c.mode == ModePortSet {
		c.external = cfg.WANAddr
	}
	if err := c.load(ctx); err != nil {
		return nil, err
	}
	if c.upstreamLocked() && c.external.IsValid() {
		if err := c.fw.SetExternalAddr(ctx, c.external); err != nil {
			c.log.Warn("firewall: hairpin of the external address", "err", err)
		}
	}
	return c, nil
}

// ResolveMode picks the mode for auto: a DS-Lite B4 address (RFC 6333
// §5.7's 192.0.0.0/29: OpenWrt's softwire holds 192.0.0.2) means dslite;
// a public WAN address (or no provider to ask) means local; a private or
// shared (100.64/10) one means nat444; no IPv4 WAN address with a provider
// means dslite.
func ResolveMode(m Mode, wan netip.Addr, haveUpstream bool) Mode {
	if m != ModeAuto {
		return m
	}
	switch {
	case upstream.IsB4(wan):
		return ModeDSLite
	case !haveUpstream:
		return ModeLocal
	case !wan.IsValid():
		return ModeDSLite
	case isPrivate4(wan):
		return ModeNAT444
	}
	return ModeLocal
}

func isPrivate4(a netip.Addr) bool { return a.IsValid() && !upstream.IsPublic4(a) }

// Policy is the part of the configuration that may change while pcpgw
// runs (a reload). Zero values are documented per field.
type Policy struct {
	// SecureMode lets a host map ports only to itself and delete only its
	// own mappings.
	SecureMode bool
	// Rules are the permission rules (first match wins; no match allows);
	// nil means DefaultRules. They apply to IPv4 port mappings.
	Rules []Rule
	// Quota is the most mappings one LAN host may hold; 0 means 128.
	Quota int
	// MinLifetime and MaxLifetime clamp LAN leases that have an end; zero
	// means 120 s and 86400 s.
	MinLifetime, MaxLifetime time.Duration
}

func (p Policy) normalized() Policy {
	if p.Quota <= 0 {
		p.Quota = 128
	}
	if p.MinLifetime <= 0 {
		p.MinLifetime = 120 * time.Second
	}
	if p.MaxLifetime <= 0 {
		p.MaxLifetime = 86400 * time.Second
	}
	if p.MaxLifetime < p.MinLifetime {
		p.MaxLifetime = p.MinLifetime
	}
	if p.Rules == nil {
		p.Rules = DefaultRules
	}
	p.Rules = slices.Clone(p.Rules)
	return p
}

// SetPolicy changes the policy for the requests that follow; live
// mappings are kept as they are.
func (c *Core) SetPolicy(p Policy) {
	p = p.normalized()
	c.pol.Store(&p)
}

func (c *Core) policy() *Policy { return c.pol.Load() }

// Run drives lease expiry, upstream renewals and upstream events until ctx
// ends or Close is called.
func (c *Core) Run(ctx context.Context) {
	// Close waits for what Run starts: Run adds to the group only before
	// Close marks the core closed, else it does nothing (a WaitGroup's Add
	// must not race with its Wait).
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.wg.Add(2)
	undo := len(c.undo) > 0 && c.up != nil
	if undo {
		c.wg.Add(1)
	}
	c.mu.Unlock()
	go func() { defer c.wg.Done(); c.schedLoop(ctx) }()
	go func() { defer c.wg.Done(); c.persistLoop(ctx) }()
	if undo {
		go func() { defer c.wg.Done(); c.undoLoop(ctx) }()
	}
	var events <-chan upstream.Event
	if c.up != nil {
		events = c.up.Events()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.quit:
			return
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			c.handleUpstreamEvent(ev)
		}
	}
}

// Close stops the core's goroutines, waits for them and compacts the
// journal into the state file a last time. It leaves the kernel's entries
// in place (the caller removes the firewall's table on a clean exit).
// Close is idempotent.
func (c *Core) Close() error {
	c.closeMu.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		close(c.quit)
		c.wg.Wait()
		c.bg.Wait()
		if c.jr != nil {
			if err := c.compact(); err != nil {
				c.log.Warn("writing state", "err", err)
				c.flushJournal()
			}
			c.closeJournal()
		}
		if err := c.writeLeaseFile(); err != nil {
			c.log.Warn("writing the lease file", "err", err)
		}
	})
	return nil
}

// Mode returns the mode in force (never ModeAuto).
func (c *Core) Mode() Mode {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mode
}

// Epoch returns pcpgw's own epoch time: seconds since its start of epoch
// (NAT-PMP, downstream PCP). It survives restarts with the state file.
func (c *Core) Epoch(now time.Time) uint32 {
	c.mu.Lock()
	start := c.epochStart
	c.mu.Unlock()
	d := now.Sub(start)
	if d < 0 {
		return 0
	}
	return uint32(d / time.Second)
}

// SecureMode reports whether secure mode is on (the policy in force).
func (c *Core) SecureMode() bool { return c.policy().SecureMode }

// PinholesEnabled reports whether IPv6 pinholes may be opened.
func (c *Core) PinholesEnabled() bool { return c.pinholesOn.Load() }

// Count returns the number of live port mappings (pinholes excluded).
func (c *Core) Count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.countLocked()
}

func (c *Core) countLocked() int { return len(c.entries) - c.pinholes }

// Get returns the mapping with that ID.
func (c *Core) Get(id uint32) (Mapping, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[id]
	if !ok {
		return Mapping{}, false
	}
	return e.view(c.upKind), true
}

// Find returns the mappings s selects (without authorization), in creation
// order.
func (c *Core) Find(s Selector) []Mapping {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Mapping
	for _, e := range c.selectLocked(s) {
		out = append(out, e.view(c.upKind))
	}
	return out
}

func (c *Core) selectLocked(s Selector) []*entry {
	if s.ID != 0 {
		e, ok := c.entries[s.ID]
		if !ok || !selects(s, e) {
			return nil
		}
		return []*entry{e}
	}
	if s.External != 0 && s.Proto != 0 {
		var out []*entry
		if e, ok := c.byExt[keyOf(s.Proto, s.External)]; ok && selects(s, e) {
			out = append(out, e)
		}
		return out
	}
	var from []*entry
	if s.Client.IsValid() && s.Internal.Addr() == s.Client {
		from = c.perClient[s.Client]
		from = slices.Clone(from)
		slices.SortFunc(from, func(a, b *entry) int { return cmp.Compare(a.seq, b.seq) })
	} else {
		from = c.order
	}
	var out []*entry
	for _, e := range from {
		if selects(s, e) {
			out = append(out, e)
		}
	}
	return out
}

func selects(s Selector, e *entry) bool {
	switch {
	case s.Origin != 0 && e.Origin != s.Origin,
		s.Proto != 0 && e.Proto != s.Proto,
		s.Internal.Addr().IsValid() && e.Internal.Addr() != s.Internal.Addr(),
		s.Internal.Port() != 0 && e.Internal.Port() != s.Internal.Port(),
		s.External != 0 && e.port != s.External,
		s.RemoteHost.IsValid() && e.RemoteHost != s.RemoteHost,
		s.ID != 0 && e.ID != s.ID:
		return false
	}
	return true
}

// subscriberBuffer is the events a subscriber may fall behind by before
// it loses some: room for the moves of a burst of re-creations.
const subscriberBuffer = 128

// Subscribe returns a channel of events until the returned func is called.
// A subscriber that does not keep up loses events (never blocks the core).
func (c *Core) Subscribe() (<-chan Event, func()) {
	ch := make(chan Event, subscriberBuffer)
	c.mu.Lock()
	c.subs[ch] = struct{}{}
	c.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			c.mu.Lock()
			delete(c.subs, ch)
			c.mu.Unlock()
		})
	}
}

func (c *Core) emitLocked(ev Event) {
	for ch := range c.subs {
		select {
		case ch <- ev:
		default:
		}
	}
}

// ExternalAddr returns the external IPv4 address the internet sees: the
// provider's (nat444, dslite: learned through PCP, never the CPE's private
// WAN address) or the WAN's (local).
func (c *Core) ExternalAddr(ctx context.Context) (netip.Addr, error) {
	// While the upstream is being detected the answer is not known yet:
	// which upstream (or none: the WAN address) says it.
	c.AwaitUpstream(ctx)
	c.mu.Lock()
	mode, ext, up, wan := c.mode, c.external, c.up, c.wan
	onCPE := !c.upstreamLocked()
	c.mu.Unlock()
	if mode == ModeLocal || onCPE && mode != ModeDSLite {
		// No upstream forwards ports: the CPE's WAN address is all the
		// internet can be pointed at (kind none says so in the status).
		ext = wan
		if !ext.IsValid() {
			return netip.Addr{}, &Error{Code: CodeNetworkFailure, Msg: "no WAN address"}
		}
		return ext, nil
	}
	if ext.IsValid() {
		return ext, nil
	}
	if up == nil {
		return netip.Addr{}, &Error{Code: CodeNetworkFailure, Msg: "no upstream NAT to ask"}
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.UpstreamTimeout)
	defer cancel()
	a, err := up.ExternalAddr(ctx)
	if err != nil {
		return netip.Addr{}, upstreamError(err)
	}
	c.setExternal(a)
	return a, nil
}

func (c *Core) setExternal(a netip.Addr) {
	if !upstream.UsableExternal(a) {
		return
	}
	c.mu.Lock()
	if c.external == a || !c.upstreamLocked() {
		c.mu.Unlock()
		return
	}
	c.setExternalLocked(a)
	c.mu.Unlock()
	// A LAN host reaching a mapped service at the address the internet
	// uses is hairpinned by the CPE (RFC 7648 §3.1).
	if err := c.fw.SetExternalAddr(context.Background(), a); err != nil {
		c.log.Warn("firewall: hairpin of the external address", "err", err)
	}
}

func (c *Core) setExternalLocked(a netip.Addr) {
	old := c.external
	c.external = a
	for _, e := range c.entries {
		if e.Upstream == UpstreamOK && e.External.Addr().Is4() && !e.IsPinhole() && !e.NAT64 {
			e.External = netip.AddrPortFrom(a, e.External.Port())
			c.markLocked(e, markPut)
			// Every mapping's address changed: EventExternalAddr tells
			// the front-ends (announcements, GENA, PCP Mapping Updates).
			c.noteExternalLocked(e, false)
		}
	}
	c.markHeadLocked()
	c.log.Info("external address", "external", a, "was", old)
	c.emitLocked(Event{Kind: EventExternalAddr, External: a})
	c.dirtyLocked()
}

// Status is what `pcpgw status` shows of the core.
type Status struct {
	Mode Mode
	// Upstream is the upstream the mappings are made at.
	Upstream   upstream.Kind
	WANAddr    netip.Addr
	External   netip.Addr
	EpochStart time.Time
	Mappings   int
	Pinholes   int
	Pending    int
	Failing    int
}

// Status returns a snapshot of the core's state.
func (c *Core) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := Status{Mode: c.mode, Upstream: c.upKind, WANAddr: c.wan, External: c.external, EpochStart: c.epochStart}
	if !c.upstreamLocked() && c.mode != ModeDSLite {
		s.External = c.wan
	}
	for _, e := range c.entries {
		if e.IsPinhole() {
			s.Pinholes++
		} else {
			s.Mappings++
		}
		switch e.Upstream {
		case UpstreamPending:
			s.Pending++
		case UpstreamFailing:
			s.Failing++
		}
	}
	return s
}

// jitter returns a random duration in [0, d).
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(d)))
}
