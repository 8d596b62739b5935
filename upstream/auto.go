package upstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pcpgw/pcpgw/internal/filestamp"
	"github.com/pcpgw/pcpgw/pcp"
	"github.com/pcpgw/pcpgw/pcpclient"
)

// ParseKind parses the option upstream: "auto" (KindDetecting), "pcp",
// "natpmp", "upnp" or "none".
func ParseKind(s string) (Kind, bool) {
	switch s {
	case "auto", "":
		return KindDetecting, true
	case "pcp":
		return KindPCP, true
	case "natpmp":
		return KindNATPMP, true
	case "upnp":
		return KindUPnP, true
	case "none":
		return KindNone, true
	}
	return 0, false
}

// Noun names a kind's upstream in messages: "the provider's PCP server".
func (k Kind) Noun() string {
	switch k {
	case KindPCP:
		return "the provider"
	case KindNATPMP:
		return "the NAT-PMP gateway"
	case KindUPnP:
		return "the ISP box's UPnP IGD"
	case KindNone:
		return "no upstream port control"
	}
	return "the upstream"
}

// IsPublic4 reports whether a is a public IPv4 address: not private,
// shared (100.64.0.0/10), loopback, link-local or unspecified. A CPE with
// one needs nothing upstream.
func IsPublic4(a netip.Addr) bool {
	a = a.Unmap()
	return a.Is4() && !a.IsUnspecified() && !a.IsPrivate() && !sharedSpace.Contains(a) &&
		!a.IsLoopback() && !a.IsLinkLocalUnicast() && !ietfSpace.Contains(a)
}

var sharedSpace = netip.MustParsePrefix("100.64.0.0/10")

// Config configures an Auto. Zero values are documented per field.
type Config struct {
	// Want is the configured upstream (option upstream): KindDetecting
	// detects it (auto); KindPCP, KindNATPMP, KindUPnP and KindNone force
	// one.
	Want Kind
	// PCP configures the clients of a PCP server and of a NAT-PMP
	// gateway: servers, servers file, AFTR, WAN interface, logger.
	// Protocol, ListenAnnounce and the retransmission times are Auto's.
	PCP pcpclient.Config
	// DiscoverIGD finds the ISP box's UPnP IGD on the WAN link and
	// returns its Backend, within ctx. Nil: no UPnP upstream.
	DiscoverIGD func(ctx context.Context) (Backend, error)
	// WANAddr is the CPE's WAN IPv4 address at start (SetWAN changes it);
	// invalid when it has none (DS-Lite).
	WANAddr netip.Addr
	// ProbeTimeout bounds each kind's probe. Zero: 3 s.
	ProbeTimeout time.Duration
	// Recheck is how often detection runs again while no upstream
	// forwards ports, and how long an upstream may go unanswered before
	// detection looks for another one. Zero: 60 s.
	Recheck time.Duration
	// Logger receives the logs (component=upstream). Nil: discard.
	Logger *slog.Logger

	// routers stands for the default routers that discovery would find
	// (tests): servers that are asked but not named.
	routers []netip.AddrPort
}

// Auto is the upstream the mapping core sees: it detects which kind
// answers (or uses the configured one), drives that Backend, and looks
// again when the WAN changes, the DHCP-learned PCP servers change, or the
// upstream stops answering. When another kind takes over it tells the
// core (EventKindChanged), which makes every mapping again there.
type Auto struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	kind     Kind
	back     Backend       // nil for none, local, detecting, or an IGD not found yet
	backWAN  netip.Addr    // the WAN address when back was put in force
	gen      uint64        // counts the upstreams put in force (Event.Gen)
	ready    chan struct{} // closed while no detection runs
	wan      netip.Addr
	detected time.Time
	// downSince is when the backend stopped answering (zero: it answers).
	downSince time.Time
	lastErr   string
	runs      uint64 // detections run
	aftr      string // the AFTR name (SetAFTRName)
	closed    bool

	events chan Event
	kick   chan string
	quit   chan struct{}
	wg     sync.WaitGroup
	once   sync.Once
}

// NewAuto makes the upstream; Run detects and drives it.
func NewAuto(cfg Config) *Auto {
	if cfg.ProbeTimeout <= 0 {
		cfg.ProbeTimeout = 3 * time.Second
	}
	if cfg.Recheck <= 0 {
		cfg.Recheck = 60 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.PCP.Logger = log
	return &Auto{
		cfg:    cfg,
		log:    log.With("component", "upstream"),
		kind:   KindDetecting,
		ready:  make(chan struct{}),
		wan:    cfg.WANAddr.Unmap(),
		aftr:   cfg.PCP.AFTRName,
		events: make(chan Event, 256),
		kick:   make(chan string, 1),
		quit:   make(chan struct{}),
	}
}

// Kind returns the kind in force and its generation (see Event.Gen),
// waiting while detection runs until ctx ends (then KindDetecting).
func (a *Auto) Kind(ctx context.Context) (Kind, uint64) {
	a.mu.Lock()
	ready := a.ready
	a.mu.Unlock()
	select {
	case <-ready:
	case <-ctx.Done():
		return KindDetecting, 0
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.kind, a.gen
}

// backend waits for detection (bounded by ctx) and returns the backend
// in force, or an error saying why there is none.
func (a *Auto) backend(ctx context.Context, op string) (Backend, uint64, error) {
	k, _ := a.Kind(ctx)
	a.mu.Lock()
	b, gen := a.back, a.gen
	a.mu.Unlock()
	switch {
	case b != nil:
		return b, gen, nil
	case k == KindDetecting:
		return nil, gen, errors.New("upstream: still looking for an upstream NAT")
	case k == KindNone || k == KindLocal:
		return nil, gen, &Error{Kind: k, Op: op, Code: pcp.NetworkFailure, Detail: "no upstream forwards ports"}
	}
	return nil, gen, errors.New("upstream: " + k.Noun() + " was not found on the WAN link")
}

// Map makes or renews a mapping at the upstream in force; the result
// says which one (Gen).
func (a *Auto) Map(ctx context.Context, r MapRequest) (MapResult, error) {
	b, gen, err := a.backend(ctx, "map")
	if err != nil {
		return MapResult{}, err
	}
	res, err := b.Map(ctx, r)
	res.Gen = gen
	return res, err
}

// Delete removes a mapping at the upstream in force.
func (a *Auto) Delete(ctx context.Context, r MapRequest) error {
	b, _, err := a.backend(ctx, "delete")
	if err != nil {
		return err
	}
	return b.Delete(ctx, r)
}

// ExternalAddr returns the upstream's external address.
func (a *Auto) ExternalAddr(ctx context.Context) (netip.Addr, error) {
	b, _, err := a.backend(ctx, "external address")
	if err != nil {
		return netip.Addr{}, err
	}
	return b.ExternalAddr(ctx)
}

// Events delivers the upstream's notices (drop-oldest when full).
func (a *Auto) Events() <-chan Event { return a.events }

// SetWAN tells the upstream the CPE's WAN IPv4 address changed: detection
// runs again.
func (a *Auto) SetWAN(w netip.Addr) {
	w = w.Unmap()
	a.mu.Lock()
	same := w == a.wan
	a.wan = w
	a.mu.Unlock()
	if !same {
		a.Redetect("WAN address " + w.String())
	}
}

// Redetect makes detection run again soon (auto only).
func (a *Auto) Redetect(reason string) {
	select {
	case a.kick <- reason:
	default:
	}
}

// Info is what the status shows of the upstream in force.
func (a *Auto) Info() Info {
	a.mu.Lock()
	b, k, detected, lastErr := a.back, a.kind, a.detected, a.lastErr
	a.mu.Unlock()
	var in Info
	if b != nil {
		in = b.Info()
	}
	in.Kind = k
	in.Detected = detected
	if in.LastError == "" {
		in.LastError = lastErr
	}
	switch {
	case k == KindNone:
		in.Advice = adviceNone
	case in.External.IsValid() && !IsPublic4(in.External):
		in.Advice = fmt.Sprintf(advicePrivate, in.External)
	}
	return in
}

// advicePrivate is what the status says when the upstream's external
// address is not a public one (an ISP box itself behind the provider's
// NAT): the mappings are made there, but the internet does not reach that
// address. miniupnpd refuses such an address by default
// (ext_allow_private_ipv4); pcpgw goes on (a LAN peer in the same
// provider network can still connect) and says it.
const advicePrivate = "The upstream's external address %v is not a public address: the device in front of this router is " +
	"itself behind another NAT (the provider's), so the internet does not reach the mappings made through it. " +
	"Ask the provider for PCP or a public IPv4 address; IPv6 pinholes need none of this."

// adviceNone is what the status says when nothing upstream forwards ports.
const adviceNone = "Nothing upstream forwards ports: no PCP server, NAT-PMP gateway or UPnP IGD answered on the WAN link. " +
	"Mappings are made on this router only; the internet reaches them only if the device in front of it forwards " +
	"everything to this router (set this router as DMZ or exposed host on the ISP box), or ask the provider for PCP or " +
	"a public IPv4 address. IPv6 pinholes need none of this."

// Run detects the upstream and drives it until ctx ends or Close.
func (a *Auto) Run(ctx context.Context) {
	// Close waits for Run: Run joins the group only before Close began
	// (a WaitGroup's Add must not race with its Wait).
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return
	}
	a.wg.Add(1)
	a.mu.Unlock()
	defer a.wg.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-a.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	a.detect(ctx, "start", detectBlock)
	tick := time.NewTicker(min(a.cfg.Recheck, 2*time.Second))
	defer tick.Stop()
	lastFull := time.Now()
	files := filestamp.Of(a.cfg.PCP.ServersFile)
	for {
		a.mu.Lock()
		var evs <-chan Event
		if a.back != nil {
			evs = a.back.Events()
		}
		a.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case reason := <-a.kick:
			a.detect(ctx, reason, detectBlock)
			lastFull = time.Now()
		case ev, ok := <-evs:
			if !ok {
				continue
			}
			a.note(ev)
			emit(a.events, ev)
		case now := <-tick.C:
			if st := filestamp.Of(a.cfg.PCP.ServersFile); st != files {
				files = st
				a.detect(ctx, "PCP servers from DHCP changed", detectBlock)
				lastFull = now
				continue
			}
			if now.Sub(lastFull) < a.cfg.Recheck {
				continue
			}
			a.mu.Lock()
			k, b, down := a.kind, a.back, a.downSince
			a.mu.Unlock()
			switch {
			case k == KindNone || (b == nil && k != KindLocal):
				a.detect(ctx, "looking again for an upstream", detectQuiet)
				lastFull = now
			case !down.IsZero() && now.Sub(down) >= a.cfg.Recheck && a.cfg.Want == KindDetecting:
				// Only another upstream that answers replaces this one:
				// a PCP server down for a while is not "none".
				a.detect(ctx, k.Noun()+" does not answer", detectAnswering)
				lastFull = now
			}
		}
	}
}

// note tracks whether the backend answers.
func (a *Auto) note(ev Event) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch ev.Kind {
	case EventUnreachable:
		if a.downSince.IsZero() {
			a.downSince = time.Now()
		}
	case EventReachable, EventStateLost, EventExternalChanged:
		a.downSince = time.Time{}
	}
}

// How a detection may change the upstream in force.
type detectMode uint8

const (
	// detectBlock: requests wait for the answer (start, a WAN change, new
	// PCP servers from DHCP, an explicit Redetect): Kind, Map, Delete and
	// ExternalAddr wait until detection ends or their context does (the
	// mapping core bounds the wait, mapping.DetectWait, and the LAN
	// servers start their own bounds on a request after it, so a LAN
	// client gets the answer of the upstream found); a PCP or NAT-PMP
	// backend is made anew (its server and source address may have
	// changed).
	detectBlock detectMode = iota
	// detectQuiet: look again while nothing upstream forwards ports;
	// requests go on meanwhile (they are served on the CPE).
	detectQuiet
	// detectAnswering: the upstream in force does not answer; only
	// another that answers replaces it, and requests go on meanwhile.
	detectAnswering
)

// detect finds the upstream (or makes the configured one) and switches to
// it when it differs from the one in force (see detectMode).
func (a *Auto) detect(ctx context.Context, reason string, mode detectMode) {
	a.mu.Lock()
	a.runs++
	wan := a.wan
	cur, curBack := a.kind, a.back
	if mode == detectBlock {
		select {
		case <-a.ready:
			// Requests wait for the answer rather than go to an upstream
			// that may be gone.
			a.ready = make(chan struct{})
		default:
		}
	}
	ready := a.ready
	a.mu.Unlock()
	release := func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.ready == ready {
			select {
			case <-ready:
			default:
				close(ready)
			}
		}
	}
	defer release()

	k, b, err := a.find(ctx, wan, cur, mode == detectBlock)
	if ctx.Err() != nil {
		if b != nil && b != curBack {
			b.Close()
		}
		return
	}
	if err != nil {
		a.mu.Lock()
		a.lastErr = err.Error()
		a.mu.Unlock()
	}
	if mode == detectAnswering && (k == KindNone || b == nil) {
		return
	}
	// A detection that blocks (start, a WAN change, new servers) puts the
	// new backend in force even when it looks the same: the old one's
	// sockets and source address may be stale.
	if k == cur && curBack != nil && (b == nil || b == curBack || mode != detectBlock && sameBackend(curBack, b)) {
		if b != nil && b != curBack {
			b.Close()
		}
		a.log.Debug("upstream unchanged", "kind", k, "reason", reason)
		return
	}
	if k == cur && curBack == nil && b == nil {
		return
	}
	a.log.Info("upstream", "kind", k, "was", cur, "reason", reason)
	if k == KindNone {
		// Said plainly where a user looks first (logread), as in the
		// status and on the page.
		a.log.Warn(adviceNone)
	}
	a.mu.Lock()
	oldWAN := a.backWAN
	a.mu.Unlock()
	if curBack != nil && (k != cur || movedOnBox(curBack, b, oldWAN, wan)) {
		// Another kind takes over: what the old one made is given back
		// first (bounded), so that it cannot remove what the new one is
		// about to make on the same box (an IGD and NAT-PMP share one
		// table). The same for the same box's IGD after the CPE's WAN
		// address changed: its entries point to the old address (for
		// days, or for good on a box that takes lease 0 only), where the
		// box's DHCP may put another device, and they hold the ports the
		// mappings are about to be asked for again (718). Requests wait
		// meanwhile.
		a.mu.Lock()
		select {
		case <-a.ready:
			a.ready = make(chan struct{})
			ready = a.ready
		default:
		}
		a.mu.Unlock()
		a.releaseAll(curBack)
	}
	a.mu.Lock()
	a.kind, a.back, a.backWAN = k, b, wan
	a.gen++
	gen := a.gen
	a.detected = time.Now()
	a.downSince = time.Time{}
	a.mu.Unlock()
	if curBack != nil {
		// A backend of the same kind replaced (another box, another
		// server, a new WAN address at a PCP server or NAT-PMP gateway)
		// holds nothing worth giving back: the old box is gone, and a
		// PCP or NAT-PMP mapping can be deleted only from its own
		// internal address, which the CPE no longer has.
		curBack.Close()
	}
	// The core makes every mapping again at the new upstream.
	emit(a.events, Event{Kind: EventKindChanged, Upstream: k, Gen: gen})
	release()
}

// movedOnBox reports whether b drives the same ISP box's IGD as cur while
// the CPE's WAN address changed from was to now: what cur made there
// forwards to the old address. An IGD deletes any entry by its external
// port (IGD.ReleaseAll deletes only those for cur's internal client).
func movedOnBox(cur, b Backend, was, now netip.Addr) bool {
	if b == nil || cur.Kind() != KindUPnP || b.Kind() != KindUPnP || !was.IsValid() || was == now {
		return false
	}
	return sameBackend(cur, b)
}

// sameBackend reports whether b, just found, is the upstream cur already
// drives: same kind and address (and for an IGD the same description),
// so cur is kept.
func sameBackend(cur, b Backend) bool {
	if cur.Kind() != b.Kind() {
		return false
	}
	ci, bi := cur.Info(), b.Info()
	if ci.Device != nil || bi.Device != nil {
		return ci.Device != nil && bi.Device != nil && ci.Device.Location == bi.Device.Location
	}
	return ci.Address == bi.Address && slices.Equal(ci.Servers, bi.Servers)
}

// releaseAll gives back, within 5 s, what a backend that another kind
// replaces made (its mappings would otherwise stay there until they
// expire, or forever on an IGD).
func (a *Auto) releaseAll(b Backend) {
	r, ok := b.(interface{ ReleaseAll(context.Context) error })
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.ReleaseAll(ctx); err != nil {
		a.log.Info("giving back the old upstream's mappings", "kind", b.Kind(), "err", err)
	}
}

// find returns the kind to use and its backend (nil for none and local,
// or when the configured one was not found).
func (a *Auto) find(ctx context.Context, wan netip.Addr, cur Kind, fresh bool) (Kind, Backend, error) {
	switch a.cfg.Want {
	case KindNone:
		return KindNone, nil, nil
	case KindPCP, KindNATPMP:
		if cur == a.cfg.Want && !fresh {
			a.mu.Lock()
			b := a.back
			a.mu.Unlock()
			if b != nil {
				return cur, b, nil
			}
		}
		proto := pcpclient.ProtocolAuto
		if a.cfg.Want == KindNATPMP {
			proto = pcpclient.ProtocolNATPMP
		}
		b, err := NewPCP(a.pcpConfig(proto, true))
		if err != nil {
			return a.cfg.Want, nil, err
		}
		return a.cfg.Want, b, nil
	case KindUPnP:
		if a.cfg.DiscoverIGD == nil {
			return KindUPnP, nil, errors.New("upstream: no UPnP client")
		}
		pctx, cancel := context.WithTimeout(ctx, a.cfg.ProbeTimeout)
		defer cancel()
		b, err := a.cfg.DiscoverIGD(pctx)
		return KindUPnP, b, err
	}
	if IsPublic4(wan) {
		return KindLocal, nil, nil
	}
	if IsB4(wan) {
		wan = netip.Addr{} // DS-Lite: no IPv4 of the CPE's own
	}
	return a.probe(ctx, wan)
}

// pcpConfig is the PCP client's configuration for proto; announce makes
// it listen for announcements (the backend in force, not a probe).
func (a *Auto) pcpConfig(proto pcpclient.Protocol, announce bool) pcpclient.Config {
	c := a.cfg.PCP
	a.mu.Lock()
	c.AFTRName = a.aftr
	if a.wan.Is4() {
		c.WANAddr4 = a.wan
	}
	a.mu.Unlock()
	if len(c.Servers) == 0 && len(a.cfg.routers) > 0 && !fileHasServers(c.ServersFile) {
		c.Servers = a.cfg.routers
	}
	c.Protocol = proto
	c.ListenAnnounce = announce
	if !announce {
		// A probe: answer within ProbeTimeout, retransmitting once or twice.
		c.IRT, c.MRT, c.Linger = time.Second, time.Second, -1
		if proto == pcpclient.ProtocolNATPMP {
			c.IRT, c.MRT = 500*time.Millisecond, time.Second
		}
		c.EventBuffer = 1
	}
	return c
}

// probe asks every kind at once and takes, by preference, PCP, then
// NAT-PMP, then UPnP IGD; else none (or PCP when a PCP server was named:
// configured, from DHCP or the AFTR, and it is down for now). NAT-PMP is
// taken only on the answer to the NAT-PMP probe's own request, never
// because the PCP probe heard UNSUPP_VERSION (that carries no nonce: one
// forged packet from the server's address would pick NAT-PMP at a
// server that speaks both), and so never in DS-Lite, where no NAT-PMP
// probe runs (the CPE has no IPv4 address of its own to map).
func (a *Auto) probe(ctx context.Context, wan netip.Addr) (Kind, Backend, error) {
	pctx, cancel := context.WithTimeout(ctx, a.cfg.ProbeTimeout)
	defer cancel()
	type result struct {
		ok     bool
		natpmp bool // PCP probe: the server seems to speak only NAT-PMP (logged only)
		b      Backend
		err    error
	}
	pcpc, natc, igdc := make(chan result, 1), make(chan result, 1), make(chan result, 1)
	a.mu.Lock()
	aftr := a.aftr
	a.mu.Unlock()
	explicit := len(a.cfg.PCP.Servers) > 0 || aftr != "" || fileHasServers(a.cfg.PCP.ServersFile)
	go func() {
		c, err := pcpclient.New(a.pcpConfig(pcpclient.ProtocolPCP, false))
		if err != nil {
			pcpc <- result{err: err}
			return
		}
		defer c.Close()
		_, err = c.Probe(pctx)
		pcpc <- result{ok: err == nil, natpmp: errors.Is(err, pcpclient.ErrNATPMPOnly), err: err}
	}()
	if wan.IsValid() {
		go func() {
			c, err := pcpclient.New(a.pcpConfig(pcpclient.ProtocolNATPMP, false))
			if err != nil {
				natc <- result{err: err}
				return
			}
			defer c.Close()
			_, err = c.ExternalAddr(pctx)
			natc <- result{ok: err == nil, err: err}
		}()
		if a.cfg.DiscoverIGD != nil {
			go func() {
				b, err := a.cfg.DiscoverIGD(pctx)
				igdc <- result{ok: err == nil && b != nil, b: b, err: err}
			}()
		} else {
			igdc <- result{}
		}
	} else {
		// No IPv4 on the WAN (DS-Lite): only the AFTR's PCP server can
		// help.
		natc <- result{}
		igdc <- result{}
	}
	p, n, g := <-pcpc, <-natc, <-igdc
	var errs []error
	for _, r := range []result{p, n, g} {
		if r.err != nil {
			errs = append(errs, r.err)
		}
	}
	a.log.Debug("probes", "pcp", p.ok, "pcp_natpmp_only", p.natpmp, "natpmp", n.ok, "upnp", g.ok, "errs", errors.Join(errs...))
	closeIGD := func() {
		if g.b != nil {
			g.b.Close()
		}
	}
	switch {
	case p.ok:
		closeIGD()
		return a.newPCP(KindPCP, pcpclient.ProtocolPCP)
	case n.ok && !explicit:
		closeIGD()
		return a.newPCP(KindNATPMP, pcpclient.ProtocolNATPMP)
	case g.ok:
		return KindUPnP, g.b, nil
	case explicit:
		// The named PCP server is down for now: keep asking it. When
		// NAT-PMP answered at its address, the client may fall back to
		// NAT-PMP, but only on its own exchange (UNSUPP_VERSION, its
		// NAT-PMP request answered, PCP unanswered): a NAT-PMP answer
		// carries no nonce, and one forged while the PCP server is slow
		// must not turn a server named as PCP into a NAT-PMP gateway.
		proto := pcpclient.ProtocolPCP
		if n.ok {
			proto = pcpclient.ProtocolAuto
		}
		return a.newPCP(KindPCP, proto)
	}
	return KindNone, nil, errors.Join(errs...)
}

// newPCP makes the backend of kind k speaking proto. When that fails (no
// route to the server yet, the WAN interface gone) the Backend is a nil
// interface, never a typed nil: the caller finds no backend and asks
// again later.
func (a *Auto) newPCP(k Kind, proto pcpclient.Protocol) (Kind, Backend, error) {
	b, err := NewPCP(a.pcpConfig(proto, true))
	if err != nil {
		return k, nil, err
	}
	return k, b, nil
}

// Close stops Run and closes the backend in force; idempotent.
func (a *Auto) Close() error {
	a.once.Do(func() {
		a.mu.Lock()
		a.closed = true
		a.mu.Unlock()
		close(a.quit)
		a.wg.Wait()
		a.mu.Lock()
		b := a.back
		a.back = nil
		a.mu.Unlock()
		if b != nil {
			b.Close()
		}
	})
	return nil
}

// fileHasServers reports whether the DHCP hooks' servers file names a
// server.
func fileHasServers(name string) bool {
	if name == "" {
		return false
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			return true
		}
	}
	return false
}
