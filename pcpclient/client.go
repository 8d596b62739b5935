package pcpclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/pcpgw/pcpgw/internal/crand"
	"github.com/pcpgw/pcpgw/pcp"
)

// Errors of the client. Server errors come as *ResultError.
var (
	// ErrTimeout: the server did not answer before the caller's context
	// ended (the error also wraps ctx.Err()).
	ErrTimeout = errors.New("pcpclient: no answer from the PCP server")
	// ErrNoServer: no PCP server is known (none configured, none in the
	// servers file, the AFTR name did not resolve, no default router).
	ErrNoServer = errors.New("pcpclient: no PCP server")
	// ErrBackoff: the same request got an error whose lifetime still runs
	// (RFC 6887 §8.3); it was not sent. The error also wraps that
	// *ResultError (errors.As).
	ErrBackoff = errors.New("pcpclient: request refused earlier, error lifetime still running")
	// ErrClosed: the client was closed.
	ErrClosed = errors.New("pcpclient: client closed")
	// ErrNATPMPThirdParty: the server speaks only NAT-PMP (RFC 6886), which
	// maps only for the sender itself: THIRD_PARTY requests cannot work.
	ErrNATPMPThirdParty = errors.New("pcpclient: NAT-PMP server cannot map for a third party")
	// ErrNATPMPUnsupported: the server speaks only NAT-PMP, which has no
	// PEER opcode, no FILTER and no IPv6 mappings.
	ErrNATPMPUnsupported = errors.New("pcpclient: not possible with a NAT-PMP server")
	// ErrTooLarge: the request would exceed 1100 octets (RFC 6887 §7).
	ErrTooLarge = errors.New("pcpclient: request larger than 1100 octets")
	// ErrUnknownMapping: Delete without a nonce for a mapping this client
	// did not make.
	ErrUnknownMapping = errors.New("pcpclient: delete of an unknown mapping needs its nonce")
	// ErrSuperseded: a newer request for the same mapping replaced this one.
	ErrSuperseded = errors.New("pcpclient: superseded by a newer request for the same mapping")
	// ErrInvalidRequest: the request's fields are not usable.
	ErrInvalidRequest = errors.New("pcpclient: invalid request")
	// ErrNATPMPOnly: the server speaks only NAT-PMP (RFC 6887 §9): it
	// answered a PCP request of ours with NAT-PMP's UNSUPP_VERSION, then a
	// NAT-PMP request of our own, and not the PCP request sent after that
	// within its retransmission time. Requests and Probe end with it with
	// ProtocolPCP; with ProtocolAuto the client switches to NAT-PMP there.
	ErrNATPMPOnly = errors.New("pcpclient: the server speaks only NAT-PMP")
	// ErrUnusableExternal: the server reported an external address no NAT
	// gives out (zero, loopback, multicast, reserved).
	ErrUnusableExternal = errors.New("pcpclient: unusable external address")
)

// Protocol is what the client speaks to the server.
type Protocol uint8

const (
	// ProtocolAuto: PCP, falling back to NAT-PMP when the server answers
	// a pending PCP request with NAT-PMP's UNSUPP_VERSION, then answers a
	// NAT-PMP request of the client's own, and then leaves a PCP request
	// unanswered for its retransmission time, never having answered PCP
	// (RFC 6887 §9; see the package doc).
	ProtocolAuto Protocol = iota
	// ProtocolPCP: PCP only; where ProtocolAuto would fall back, the
	// pending request ends with ErrNATPMPOnly (wrapping a *ResultError
	// UNSUPP_VERSION; Probe's with ErrNATPMPOnly alone).
	ProtocolPCP
	// ProtocolNATPMP: NAT-PMP only (RFC 6886), from the first request.
	ProtocolNATPMP
)

// Config configures a Client. Each field documents its zero value.
type Config struct {
	// Servers are the configured addresses of the provider's PCP server, in
	// preference order (RFC 7488 §3 treats them as one server's addresses);
	// port 0 means 5351. Empty: ServersFile, then AFTRName, then the
	// default routers (RFC 6887 §8.1).
	Servers []netip.AddrPort
	// ServersFile is a file a DHCP client hook writes, one server address
	// (or address:port) per line (DHCPv4 option 158 / DHCPv6 option 86,
	// RFC 7291); it is read again when its modification time or size
	// changes. Zero: none.
	ServersFile string
	// AFTRName is the DS-Lite AFTR name (DHCPv6 option 64, RFC 6334),
	// resolved (AAAA) with Resolvers within 5 s; the AFTR becomes the
	// server. Zero: none.
	AFTRName string
	// Resolvers are the WAN's DNS resolvers for AFTRName. Zero:
	// ResolvConf's, else the nameservers of /etc/resolv.conf.
	Resolvers []netip.AddrPort
	// ResolvConf is a file in resolv.conf's format that lists the
	// resolvers learned on the WAN (OpenWrt's
	// /tmp/resolv.conf.d/resolv.conf.auto), read at each resolution of
	// AFTRName; when it is missing or names none, /etc/resolv.conf's are
	// used. Zero: none.
	ResolvConf string
	// WANInterface names the interface toward the provider: default-router
	// discovery only looks at routes through it, and announcements are
	// joined on it. Zero: the main table's default routes, any interface.
	WANInterface string
	// WANAddr4 is the CPE's own IPv4 address at the provider's NAT: its
	// WAN address, or DS-Lite's B4 address (RFC 6333 §5.7; OpenWrt's
	// softwire holds 192.0.0.2). ExternalAddr asks a server reached over
	// IPv6 for a mapping of it with THIRD_PARTY (a mapping of the IPv6
	// address the request comes from would be an IPv6 pinhole). Zero:
	// the probe maps the request's own address.
	WANAddr4 netip.Addr
	// WAN6Interface is the IPv6 uplink when it is not WANInterface
	// (DS-Lite: WANInterface is the softwire, and the AFTR is reached over
	// the IPv6 uplink): IPv6 announcements are joined on it and IPv6
	// default routers looked for through it. Zero: WANInterface.
	WAN6Interface string
	// Logger receives the client's logs (component=pcpclient). Nil: discard.
	Logger *slog.Logger
	// Now is the clock for timestamps, error lifetimes and the epoch check.
	// Nil: time.Now. Retransmission timers always run on the runtime's
	// timers (use testing/synctest to fake them).
	Now func() time.Time
	// Rand returns uniform values in [0, 1) for the retransmission jitter.
	// Nil: a generator seeded from crypto/rand. Nonces always come from
	// crypto/rand.
	Rand func() float64
	// ListenAnnounce makes the client listen for unsolicited ANNOUNCE and
	// Mapping Update messages (RFC 6887 §14) on AnnounceAddr4 and
	// AnnounceAddr6. False: it does not.
	ListenAnnounce bool
	// AnnounceAddr4 and AnnounceAddr6 are where announcements arrive.
	// Empty: "224.0.0.1:5350" and "[ff02::1]:5350"; "-" turns one off. A
	// unicast address (tests) is bound without joining a group.
	AnnounceAddr4, AnnounceAddr6 string
	// IRT and MRT are the initial and maximum retransmission times of RFC
	// 6887 §8.1.1. Zero: 3 s and 1024 s. MRC and MRD are unbounded with a
	// single server address (the caller's ctx bounds the wait); with
	// several, each address gets MRC=4 (RFC 7488 §3).
	IRT, MRT time.Duration
	// Linger is how long a request whose callers all gave up is still
	// retransmitted: a new identical call within that time joins it. Zero:
	// 5 minutes; negative: stop at once.
	Linger time.Duration
	// EventBuffer is the capacity of the Events channel; when it is full
	// the oldest event is dropped. Zero: 64.
	EventBuffer int
	// Protocol is what the client speaks. Zero: ProtocolAuto.
	Protocol Protocol

	dial dialFunc // tests: in-memory sockets; nil: dialUDP
}

// Default announcement addresses (RFC 6887 §14.1.3).
const (
	DefaultAnnounceAddr4 = "224.0.0.1:5350"
	DefaultAnnounceAddr6 = "[ff02::1]:5350"
)

const (
	defaultLinger      = 5 * time.Minute
	defaultEventBuffer = 64
	multiAddrMRC       = 4                // RFC 7488 §3 step 3
	cycleRepeat        = 15 * time.Minute // RFC 7488 §3 step 5
	rediscoverInterval = 30 * time.Second
	maxErrorLifetime   = 24 * time.Hour   // RFC 6887 §15 sanity limit
	maxShortErrorLife  = 30 * time.Minute // a short-lifetime error is not held longer
	probeLifetime      = 120              // seconds, ExternalAddr probe mapping
	probeHold          = 30 * time.Second // least time a refused probe is not repeated
	// announceHold: unsolicited announcements (PCP ANNOUNCE, NAT-PMP
	// address announcements) make the client ask again at most this
	// often; a burst of them, or a flood of spoofed ones, costs one
	// request a hold.
	announceHold = time.Second
	// probeWindow is how long a request of the client's own that no
	// caller waits for is retransmitted.
	probeWindow = 30 * time.Second
	// unreachableAfter is how many retransmission timeouts without any
	// answer mark the server unreachable.
	unreachableAfter = 2
)

// Client talks to the provider's PCP server (RFC 6887) on behalf of the
// mapping core. It is safe for concurrent use.
type Client struct {
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	irt    time.Duration
	mrt    time.Duration
	linger time.Duration
	dial   dialFunc

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	emitMu   sync.Mutex
	events   chan Event
	evClosed bool

	rndMu sync.Mutex
	rnd   func() float64

	mu         sync.Mutex
	closed     bool
	servers    []*server // one server's addresses, configured order
	source     string    // where servers came from
	fileMod    time.Time
	fileSize   int64
	fileSeen   bool
	nextLookup time.Time // next AFTR / router discovery attempt
	preferred  netip.AddrPort
	natpmp     bool // the server speaks only NAT-PMP (RFC 6887 §9)
	// lastAnnounce is when an unsolicited announcement last made the
	// client ask again; askArmed: another one came within announceHold
	// and will be asked about when it ends.
	lastAnnounce time.Time
	askArmed     bool
	txns         map[dispatchKey]*txn
	joins        map[joinKey]*txn
	known        map[mapKey]known
	backoff      map[reqID]*ResultError
	ext4         netip.Addr
	unreachable  bool
	announcers   []packetConn
	st           Status
}

type server struct {
	addr  netip.AddrPort
	conn  packetConn
	local netip.Addr // source address written in the header (§8.1)
	// probe is the internal UDP port of the external-address probe
	// (ExternalAddr); see probePort.
	probe uint16
	epoch epochState
	// announced: the last packet from this server was an ANNOUNCE already
	// reported as state loss (repeats of one announcement are not).
	announced bool
	// pcpSeen: this server address answered a PCP request of the
	// client's: its UNSUPP_VERSION (version 0 or another) is not believed,
	// and the client never falls back to NAT-PMP with it.
	pcpSeen bool
	// natpmpConfirmed: before answering any PCP request, this server
	// address answered the confirm, the NAT-PMP request the client sent
	// after a version-0 UNSUPP_VERSION (which carries no nonce, so anyone
	// may send it): the server may speak only NAT-PMP. The client falls
	// back when a PCP request sent after that goes unanswered for its
	// retransmission time (natpmpTimeoutLocked). natpmpExt, natpmpEpoch
	// and natpmpAt are that answer's address, epoch and arrival, taken
	// only at the fallback.
	natpmpConfirmed bool
	natpmpExt       netip.Addr
	natpmpEpoch     uint32
	natpmpAt        time.Time
}

// New makes a client. Sockets toward configured servers and the announcement
// listeners are opened here, in the caller's network namespace.
func New(cfg Config) (*Client, error) {
	c := &Client{
		cfg:     cfg,
		log:     cfg.Logger,
		now:     cfg.Now,
		irt:     cfg.IRT,
		mrt:     cfg.MRT,
		linger:  cfg.Linger,
		dial:    cfg.dial,
		rnd:     cfg.Rand,
		txns:    make(map[dispatchKey]*txn),
		joins:   make(map[joinKey]*txn),
		known:   make(map[mapKey]known),
		backoff: make(map[reqID]*ResultError),
	}
	if c.log == nil {
		c.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c.log = c.log.With("component", "pcpclient")
	if c.now == nil {
		c.now = time.Now
	}
	if c.irt <= 0 {
		c.irt = DefaultIRT
	}
	if c.mrt <= 0 {
		c.mrt = DefaultMRT
	}
	if c.linger == 0 {
		c.linger = defaultLinger
	}
	if c.dial == nil {
		c.dial = dialUDP
	}
	if c.rnd == nil {
		var seed [32]byte
		crand.Must(seed[:])
		r := rand.New(rand.NewChaCha8(seed))
		c.rnd = r.Float64
	}
	n := cfg.EventBuffer
	if n <= 0 {
		n = defaultEventBuffer
	}
	c.events = make(chan Event, n)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.natpmp = cfg.Protocol == ProtocolNATPMP

	var list []netip.AddrPort
	for _, s := range cfg.Servers {
		if !s.Addr().IsValid() {
			c.cancel()
			return nil, fmt.Errorf("pcpclient: invalid server address %v", s)
		}
		list = appendUnique(list, withDefaultPort(s))
	}
	if len(list) > 0 {
		if err := c.setServers(list, "config"); err != nil {
			c.cancel()
			return nil, err
		}
	}
	if cfg.ListenAnnounce {
		if err := c.startAnnounce(); err != nil {
			c.Close()
			return nil, err
		}
	}
	c.refreshServers(c.ctx)
	return c, nil
}

func (c *Client) startAnnounce() error {
	var ifis [2]*net.Interface // IPv4's, IPv6's
	for i, name := range []string{c.cfg.WANInterface, c.wan6()} {
		if name == "" {
			continue
		}
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return fmt.Errorf("pcpclient: WAN interface: %w", err)
		}
		ifis[i] = ifi
	}
	addrs := []string{c.cfg.AnnounceAddr4, c.cfg.AnnounceAddr6}
	defs := []string{DefaultAnnounceAddr4, DefaultAnnounceAddr6}
	var errs []error
	for i, a := range addrs {
		if a == "-" {
			continue
		}
		if a == "" {
			a = defs[i]
		}
		pc, err := listenAnnounce(a, ifis[i])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c.mu.Lock()
		c.announcers = append(c.announcers, pc)
		c.mu.Unlock()
		c.wg.Add(1)
		go c.readLoop(pc, nil)
	}
	c.mu.Lock()
	got := len(c.announcers)
	c.mu.Unlock()
	if got == 0 && len(errs) > 0 {
		return errors.Join(errs...)
	}
	for _, err := range errs {
		// One family may be missing (no IPv6 on the WAN): say so, go on.
		c.log.Warn("announcement listener", "err", err)
	}
	return nil
}

// aftrResolvers are the resolvers the AFTR name is looked up with:
// Config.Resolvers, else those of Config.ResolvConf (the WAN's, read
// now), else the system's.
func (c *Client) aftrResolvers() []netip.AddrPort {
	if len(c.cfg.Resolvers) > 0 {
		return c.cfg.Resolvers
	}
	if c.cfg.ResolvConf != "" {
		res, err := systemResolvers(c.cfg.ResolvConf)
		if err == nil {
			return res
		}
		c.log.Info("no resolvers learned on the WAN: using the system's", "err", err)
	}
	res, err := systemResolvers(resolvConf)
	if err != nil {
		c.log.Warn("resolvers", "err", err)
	}
	return res
}

// wan6 is the IPv6 uplink's name.
func (c *Client) wan6() string {
	if c.cfg.WAN6Interface != "" {
		return c.cfg.WAN6Interface
	}
	return c.cfg.WANInterface
}

// setServers replaces the server's addresses, opening a socket toward each.
func (c *Client) setServers(list []netip.AddrPort, source string) error {
	c.mu.Lock()
	same := len(list) == len(c.servers)
	for i := 0; same && i < len(list); i++ {
		same = c.servers[i].addr == list[i]
	}
	c.mu.Unlock()
	if same {
		return nil
	}
	var fresh []*server
	var errs []error
	for _, ap := range list {
		pc, local, err := c.dial(ap)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fresh = append(fresh, &server{addr: ap, conn: pc, local: local, probe: c.probePort(pc)})
	}
	if len(fresh) == 0 && len(list) > 0 {
		return errors.Join(errs...)
	}
	for _, err := range errs {
		c.log.Warn("server address unusable", "err", err)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		for _, s := range fresh {
			s.conn.Close()
		}
		return ErrClosed
	}
	old := c.servers
	c.servers = fresh
	c.source = source
	c.preferred = netip.AddrPort{}
	c.natpmp = c.cfg.Protocol == ProtocolNATPMP
	// A new server may be asked at once (RFC 6887 §8.3, last paragraph).
	clear(c.backoff)
	c.st.Servers = nil
	for _, s := range fresh {
		c.st.Servers = append(c.st.Servers, s.addr)
		c.wg.Add(1)
		go c.readLoop(s.conn, s)
	}
	c.mu.Unlock()
	for _, s := range old {
		s.conn.Close()
	}
	c.log.Info("PCP server", "servers", list, "source", source)
	return nil
}

// refreshServers applies the discovery order of RFC 6887 §8.1: configured
// servers, else the servers file, else the AFTR, else the default routers.
func (c *Client) refreshServers(ctx context.Context) {
	if len(c.cfg.Servers) > 0 {
		return
	}
	if c.cfg.ServersFile != "" {
		fi, err := os.Stat(c.cfg.ServersFile)
		c.mu.Lock()
		changed := err == nil && (!c.fileSeen || !fi.ModTime().Equal(c.fileMod) || fi.Size() != c.fileSize)
		if changed {
			c.fileSeen, c.fileMod, c.fileSize = true, fi.ModTime(), fi.Size()
		}
		gone := err != nil && c.fileSeen
		if gone {
			c.fileSeen = false
		}
		fromFile := c.source == "file"
		c.mu.Unlock()
		if changed {
			list, err := readServersFile(c.cfg.ServersFile)
			if err != nil {
				c.log.Warn("servers file", "err", err)
			}
			if len(list) > 0 {
				if err := c.setServers(list, "file"); err != nil {
					c.log.Warn("servers file", "err", err)
				}
				return
			}
			fromFile = fromFile && len(list) == 0
		}
		if (gone || changed) && fromFile {
			// The file emptied: fall back to the next source now.
			c.mu.Lock()
			c.nextLookup = time.Time{}
			c.mu.Unlock()
			c.setServers(nil, "")
		}
		c.mu.Lock()
		haveFile := c.source == "file"
		c.mu.Unlock()
		if haveFile {
			return
		}
	}
	c.mu.Lock()
	now := c.now()
	due := len(c.servers) == 0 && !now.Before(c.nextLookup)
	if due {
		c.nextLookup = now.Add(rediscoverInterval)
	}
	c.mu.Unlock()
	if !due {
		return
	}
	var list []netip.AddrPort
	source := "router"
	if c.cfg.AFTRName != "" {
		source = "aftr"
		addrs, err := resolveAFTR(ctx, c.cfg.AFTRName, c.aftrResolvers())
		if err != nil {
			c.log.Warn("AFTR", "err", err)
		}
		for _, a := range addrs {
			list = appendUnique(list, netip.AddrPortFrom(a, pcp.ServerPort))
		}
	} else {
		for _, a := range defaultRouters(c.cfg.WANInterface, c.wan6()) {
			list = appendUnique(list, netip.AddrPortFrom(a, pcp.ServerPort))
		}
	}
	if len(list) > 0 {
		if err := c.setServers(list, source); err != nil {
			c.log.Warn("discovered server", "err", err)
		}
	}
}

// candidates returns the addresses to try for a request whose internal
// address is of family v4, in RFC 7488 order: the address that answered last
// first, then the others with the request's family before the other family
// (a simple form of RFC 6724 destination selection), configured order kept.
// Default routers of the other family are separate servers (§8.1) and left out.
func (c *Client) candidates(v4 bool) []*server {
	c.mu.Lock()
	defer c.mu.Unlock()
	var same, other []*server
	for _, s := range c.servers {
		if s.addr.Addr().Unmap().Is4() == v4 {
			same = append(same, s)
		} else if c.source != "router" {
			other = append(other, s)
		}
	}
	out := append(same, other...)
	if c.preferred.IsValid() {
		if i := slices.IndexFunc(out, func(s *server) bool { return s.addr == c.preferred }); i > 0 {
			p := out[i]
			out = append([]*server{p}, append(out[:i:i], out[i+1:]...)...)
		}
	}
	return out
}

func (c *Client) rand() float64 {
	c.rndMu.Lock()
	defer c.rndMu.Unlock()
	return c.rnd()
}

// Events returns the client's notices to its owner. The channel is buffered;
// the client never blocks on it: when it is full, the oldest event is
// dropped. It is closed by Close.
//
// EventStateLost is sent at once when the server lost state; the waiting
// of a random 0-5 s before re-creating the mappings (RFC 6887 §14.1.3) is
// the owner's job.
func (c *Client) Events() <-chan Event { return c.events }

func (c *Client) emit(ev Event) {
	c.emitMu.Lock()
	defer c.emitMu.Unlock()
	if c.evClosed {
		return
	}
	for {
		select {
		case c.events <- ev:
			return
		default:
		}
		select {
		case <-c.events:
		default:
		}
	}
}

// Status returns a snapshot for `pcpgw status`.
func (c *Client) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.st
	st.Servers = slices.Clone(c.st.Servers)
	st.External = c.ext4
	st.Reachable = !c.unreachable && !c.st.LastAnswer.IsZero()
	st.Protocol = ""
	if !c.st.LastAnswer.IsZero() {
		st.Protocol = "pcp"
	}
	if c.natpmp {
		st.Protocol = "nat-pmp"
	}
	return st
}

// Close stops the client: pending calls return ErrClosed, sockets close, and
// Close waits for the client's goroutines. It is idempotent.
func (c *Client) Close() error {
	c.once.Do(func() {
		c.mu.Lock()
		c.closed = true
		servers := c.servers
		ann := c.announcers
		c.mu.Unlock()
		c.cancel()
		for _, s := range servers {
			s.conn.Close()
		}
		for _, a := range ann {
			a.Close()
		}
		c.wg.Wait()
		c.emitMu.Lock()
		c.evClosed = true
		close(c.events)
		c.emitMu.Unlock()
	})
	return nil
}

// newNonce returns 96 random bits (RFC 6887 §11.2).
func newNonce() pcp.Nonce {
	var n pcp.Nonce
	crand.Must(n[:])
	return n
}
