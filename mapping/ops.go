package mapping

import (
	"context"
	"math"
	"net/netip"
	"slices"
	"time"

	"github.com/pcpgw/pcpgw/firewall"
	"github.com/pcpgw/pcpgw/pcp"
	"github.com/pcpgw/pcpgw/upstream"
)

// maxEntries bounds the table: IDs (and so pinhole UniqueIDs) fit in 16 bits.
const maxEntries = 65535

// firewallGrace is added to a lease when it is handed to the kernel as an
// element timeout, so that the kernel expires it only if pcpgw is gone.
const firewallGrace = 30 * time.Second

// minFirewallGrace: a renewal leaves the kernel's element alone while the
// element still outlives the new lease by at least this much (and by no
// more than firewallGrace). Clients that ask again and again within
// seconds (NAT-PMP and UPnP apps re-checking their port, bursts of PCP
// renewals) then cost no netlink batch; a renewal 20 s or more after the
// last write refreshes the element as before.
const minFirewallGrace = 10 * time.Second

// kernelUpdate says what a renewal of e (its lease already changed) must
// send to the kernel: nothing, a refresh of the element's timeout, or a
// replacement (delete and add: when the element gains or loses its
// timeout, which not every kernel's update in place does, or when its
// state is not known).
func kernelUpdate(e *entry, now time.Time) (refresh, replace bool) {
	var want time.Time // the kernel timeout appendFW would set now
	if !e.Expires.IsZero() {
		if left := e.Expires.Sub(now); left < firewall.MaxTimeout-firewallGrace {
			want = e.Expires.Add(firewallGrace)
		}
	}
	switch {
	case e.kernelStale:
		return true, true
	case want.IsZero() && e.kernelExp.IsZero():
		return false, false // permanent in the kernel, and wanted so
	case want.IsZero() || e.kernelExp.IsZero():
		return true, true
	case !e.kernelExp.Before(want.Add(minFirewallGrace-firewallGrace)) && !e.kernelExp.After(want):
		return false, false
	}
	return true, false
}

// Map creates a mapping, or renews/updates the requester's existing one
// (same client, protocol and internal endpoint). An IPv6 internal address
// asks for a pinhole. Behind a provider NAT the answer waits at most
// Config.UpstreamTimeout for the provider; a mapping the provider did not
// answer for stays pending, is retried, and the caller gets
// CodeNetworkFailure.
func (c *Core) Map(ctx context.Context, r Request) (Mapping, error) {
	if err := c.validate(&r); err != nil {
		return Mapping{}, err
	}
	c.awaitKind(ctx, r)
	now := time.Now()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return Mapping{}, &Error{Code: CodeNetworkFailure, Msg: "shutting down"}
	}
	e, old, created, err := c.planLocked(r, now)
	if err != nil {
		c.mu.Unlock()
		return Mapping{}, err
	}
	var change firewall.Change
	if old != nil {
		c.removeLocked(old, &change)
		c.upstreamDeleteLocked(old)
	}
	if created {
		change.AddForwards, change.AddPinholes = appendFW(change.AddForwards, change.AddPinholes, e, now)
	} else {
		c.refilterLocked(e, r, now, &change)
		c.renewKernelLocked(e, now, &change)
		c.refreshUpstreamLocked(e, r.Lifetime, now)
	}
	m := e.view(c.upKind)
	var upReq upstream.MapRequest
	startUp := created && e.Upstream == UpstreamPending
	gen := c.upGen
	if startUp {
		e.tentative = true // undone after a crash until answered (settle)
		e.busy = true
		upReq = c.upstreamRequestLocked(e)
	}
	c.mu.Unlock()

	if err := c.apply(ctx, change); err != nil && !created {
		c.mu.Lock()
		e.kernelStale = true // the next renewal replaces it
		c.mu.Unlock()
	} else if err != nil {
		c.mu.Lock()
		var undo firewall.Change
		c.removeLocked(e, &undo)
		c.mu.Unlock()
		c.apply(context.WithoutCancel(ctx), undo)
		c.durableWait(e) // refused: not back after a crash
		return Mapping{}, &Error{Code: CodeNoResources, Msg: "firewall", Err: err}
	}
	if startUp {
		c.bg.Add(1)
		go func() {
			defer c.bg.Done()
			c.runUpstream(e, upReq, true, gen)
		}()
	}
	if e.ready == nil {
		if err := c.settle(e, old); err != nil {
			return Mapping{}, err
		}
		return m, nil
	}
	m, err = c.await(ctx, e)
	if serr := c.settle(e, old); serr != nil && err == nil {
		return Mapping{}, serr
	}
	return m, err
}

// refreshUpstreamLocked applies RFC 7648 §3 to a renewal asking for
// lifetime: when less than 3/4 of it is left at the upstream, the
// upstream is asked now and the answer waits for it (await, bounded by
// Config.UpstreamTimeout), so that the lifetime the LAN client is told
// is backed by the upstream's own.
func (c *Core) refreshUpstreamLocked(e *entry, lifetime time.Duration, now time.Time) {
	if lifetime <= 0 || e.Upstream != UpstreamOK || !c.upstreamLocked() || e.IsPinhole() {
		return
	}
	// 3/4 of what was asked, or of what the upstream grants at most when
	// that is less (its cap would send every renewal upstream).
	want := lifetime
	if e.upLife > 0 {
		want = min(want, e.upLife)
	}
	if left := e.upAt.Add(e.upLife).Sub(now); left >= want/4*3 {
		return
	}
	if e.ready == nil {
		e.ready = make(chan struct{})
	}
	select {
	case <-e.ready:
		e.ready = make(chan struct{}) // the answer to wait for
	default: // a request in flight: its answer
	}
	if !e.busy {
		e.renewAt = now
		c.startRenewLocked(e)
	}
}

// awaitKind waits, for a request that may go upstream (an IPv4 port, or
// an IPv4 port for an IPv6 host at the provider's NAT64), until the
// upstream is known: see AwaitUpstream. A pinhole never waits.
func (c *Core) awaitKind(ctx context.Context, r Request) {
	if r.Internal.Addr().Is6() && !isNAT64(r) {
		return
	}
	c.AwaitUpstream(ctx)
}

// AwaitUpstream waits while the upstream is being detected (at start, after
// a WAN change, new PCP servers: detection that blocks, see upstream.Auto),
// at most DetectWait and until ctx ends, and puts the upstream found in
// force. It returns at once when no detection runs, in local and portset
// mode, and without an upstream.
//
// Map, Peer and ExternalAddr call it themselves before they ask the
// upstream (bounded by Config.UpstreamTimeout): a request that arrives
// while detection runs is answered as the upstream found says, not failed.
// A front-end that bounds its own calls into the core by a short timeout
// (the NAT-PMP/PCP server's CoreTimeout) calls it first and starts that
// timeout after it: the detection's time is not the request's.
func (c *Core) AwaitUpstream(ctx context.Context) {
	c.mu.Lock()
	ask := c.up != nil && c.mode != ModeLocal
	c.mu.Unlock()
	if !ask {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, DetectWait)
	defer cancel()
	if k, gen := c.up.Kind(ctx); k != upstream.KindDetecting {
		var change firewall.Change
		c.mu.Lock()
		c.setKindLocked(k, gen, &change)
		c.mu.Unlock()
		c.apply(ctx, change)
	}
}

// await waits for the first upstream answer of e, bounded by ctx and
// Config.UpstreamTimeout, and returns e as it then is.
func (c *Core) await(ctx context.Context, e *entry) (Mapping, error) {
	c.mu.Lock()
	ready := e.ready
	c.mu.Unlock()
	if ready != nil {
		t := time.NewTimer(c.cfg.UpstreamTimeout)
		defer t.Stop()
		select {
		case <-ready:
		case <-t.C:
			c.mu.Lock()
			ok := e.Upstream == UpstreamOK && !e.removed && e.External.IsValid()
			m := e.view(c.upKind)
			c.mu.Unlock()
			if ok {
				// A renewal the upstream is slow to answer: the mapping
				// still stands there; the table's answer is true.
				return m, nil
			}
			return Mapping{}, &Error{Code: CodeNetworkFailure, Msg: "the upstream NAT did not answer in time"}
		case <-ctx.Done():
			return Mapping{}, &Error{Code: CodeNetworkFailure, Msg: "request cancelled", Err: ctx.Err()}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.removed {
		if e.upErr != nil {
			return Mapping{}, upstreamError(e.upErr)
		}
		return Mapping{}, &Error{Code: CodeNotFound, Msg: "mapping was removed"}
	}
	if e.Upstream != UpstreamOK && e.upErr != nil {
		return e.view(c.upKind), upstreamError(e.upErr)
	}
	return e.view(c.upKind), nil
}

// validate checks and normalizes a request.
func (c *Core) validate(r *Request) error {
	if r.Proto != TCP && r.Proto != UDP {
		return &Error{Code: CodeUnsupportedProtocol, Msg: "protocol " + r.Proto.String()}
	}
	r.Client = r.Client.Unmap()
	r.Internal = netip.AddrPortFrom(r.Internal.Addr().Unmap(), r.Internal.Port())
	r.RemoteHost = r.RemoteHost.Unmap()
	if !r.Client.IsValid() {
		return &Error{Code: CodeInvalid, Msg: "no requester address"}
	}
	ia := r.Internal.Addr()
	if !ia.IsValid() || ia.IsUnspecified() || ia.IsMulticast() || ia.IsLoopback() {
		return &Error{Code: CodeInvalid, Msg: "internal address " + ia.String()}
	}
	if r.Internal.Port() == 0 {
		return &Error{Code: CodeInvalid, Msg: "internal port 0"}
	}
	if r.Lifetime < 0 {
		return &Error{Code: CodeInvalid, Msg: "negative lifetime"}
	}
	if r.RemoteHost.IsValid() && r.RemoteHost.Is4() != ia.Is4() {
		return &Error{Code: CodeInvalid, Msg: "remote host of another address family"}
	}
	r.Lifetime = c.clampLease(r.Origin, r.Lifetime)
	r.Description = SanitizeDescription(r.Description)
	if c.policy().SecureMode && ia != r.Client && r.Origin != OriginStatic {
		return &Error{Code: CodeNotAuthorized, Msg: "secure mode: a host may map ports only to itself"}
	}
	if ia.Is6() && !c.PinholesEnabled() {
		return &Error{Code: CodeDisabled, Msg: "IPv6 pinholes are disabled"}
	}
	return nil
}

// maxUPnPLease is the longest UPnP lease (WANIPConnection:2's 604800 s).
const maxUPnPLease = 604800 * time.Second

// clampLease bounds a lease that has an end: NAT-PMP's and PCP's to
// min_lifetime-max_lifetime (as miniupnpd's options do), UPnP's to 1 s -
// 604800 s, the range the IGD specification gives (miniupnpd keeps those
// as asked: an IGD:2 client asking for a week gets a week).
func (c *Core) clampLease(o Origin, l time.Duration) time.Duration {
	if l <= 0 {
		return l
	}
	if o == OriginUPnP {
		return min(max(l, time.Second), maxUPnPLease)
	}
	pol := c.policy()
	return min(max(l, pol.MinLifetime), pol.MaxLifetime)
}

// planLocked finds the entry r renews, or makes a new one. old, when not
// nil, is a mapping r replaces (IGD AddPortMapping of the same external
// port by the same host to another internal endpoint).
func (c *Core) planLocked(r Request, now time.Time) (e, old *entry, created bool, err error) {
	nat64 := isNAT64(r)
	pinhole := r.Internal.Addr().Is6() && !nat64
	if pinhole && !c.PinholesEnabled() {
		return nil, nil, false, &Error{Code: CodeDisabled, Msg: "IPv6 pinholes are disabled"}
	}
	// The requester's own mapping of this internal endpoint, which the
	// request renews. Static forwards are told apart by their external
	// port (looked up below): two of them may lead to the same LAN port.
	var own *entry
	if (r.Origin != OriginStatic || pinhole) && (r.Origin != OriginUPnP || !r.ExactPort || pinhole) {
		own = c.ownLocked(r, nat64, pinhole)
	}
	// PCP has no replacing: a request for an existing mapping renews it
	// whatever port it suggests (RFC 6887 §11.3).
	if r.ExactPort && r.ExternalPort != 0 && !pinhole && (own == nil || r.Origin != OriginPCP) {
		if x := c.byExt[keyOf(r.Proto, r.ExternalPort)]; x != nil {
			switch {
			case x.Origin == OriginStatic && r.Origin != OriginStatic:
				return nil, nil, false, &Error{Code: CodeConflict, Msg: "the port is a static forward"}
			case x.Client != r.Client && (c.policy().SecureMode || x.Internal != r.Internal):
				// With secure mode off a host may renew a mapping that
				// leads where its request does (as miniupnpd lets it).
				return nil, nil, false, &Error{Code: CodeConflict, Msg: "the port is mapped for another host"}
			case x.Internal == r.Internal:
				return c.renewLocked(x, r, now), nil, false, nil
			case r.Origin == OriginPCP:
				// The host's mapping of another internal port holds it.
				return nil, nil, false, &Error{Code: CodeConflict, Msg: "the port is mapped to another internal port"}
			default:
				old = x
			}
		}
	}
	if old == nil && own != nil {
		x := own
		if r.Origin == OriginPCP && x.Nonce != r.Nonce {
			// RFC 6887 §11.3 refuses another nonce. pcpgw accepts it
			// from the mapping's own host for itself, as miniupnpd
			// does: tailscale's portmapper sends a fresh nonce with
			// every renewal. Third-party mappings and deletes keep
			// the check.
			if x.Internal.Addr() != r.Client {
				return nil, nil, false, &Error{Code: CodeNonceMismatch, Msg: "the mapping belongs to another nonce"}
			}
		}
		if r.Origin == OriginPCP && !pinhole {
			if err := c.pcpExactLocked(x, r); err != nil {
				return nil, nil, false, err
			}
		}
		if r.Origin == OriginPCP && x.Nonce != r.Nonce {
			x.Nonce = r.Nonce
			c.markLocked(x, markPut)
			c.dirtyLocked() // a new nonce is written at once
		}
		return c.renewLocked(x, r, now), nil, false, nil
	}
	n := len(c.perClient[r.Client])
	if old != nil {
		n--
	}
	if n >= c.policy().Quota && r.Origin != OriginStatic {
		return nil, nil, false, &Error{Code: CodeQuota, Msg: "the host's quota is used up"}
	}
	if len(c.entries) >= maxEntries {
		return nil, nil, false, &Error{Code: CodeNoResources, Msg: "the table is full"}
	}
	e = &entry{sidx: -1, Mapping: Mapping{
		Origin:      r.Origin,
		Client:      r.Client,
		Proto:       r.Proto,
		Internal:    r.Internal,
		RemoteHost:  r.RemoteHost,
		RemotePort:  r.RemotePort,
		Description: r.Description,
		Nonce:       r.Nonce,
		Created:     now,
	}, lifetime: r.Lifetime}
	if r.Lifetime > 0 {
		e.Expires = now.Add(r.Lifetime)
	}
	if pinhole {
		e.External = r.Internal
		e.port = r.Internal.Port()
	} else {
		if nat64 && !c.upstreamLocked() {
			return nil, nil, false, &Error{Code: CodeNetworkFailure, Msg: "no port control upstream to ask the provider's NAT64 for an IPv4 port"}
		}
		if c.mode == ModeDSLite && !c.upstreamLocked() {
			return nil, nil, false, &Error{Code: CodeNetworkFailure, Msg: "DS-Lite without port control at the AFTR: no port can be opened"}
		}
		port, err := c.pickPortLocked(r, old)
		if err != nil {
			return nil, nil, false, err
		}
		e.port = port
		e.NAT64 = nat64
		switch {
		case e.NAT64:
			c.planNAT64Locked(e)
		case c.mode == ModeDSLite:
			e.Upstream = UpstreamPending
		case !c.upstreamLocked():
			// Local mode, or nothing upstream forwards ports (kind none):
			// the CPE's own DNAT, its WAN address the external one.
			e.WANPort = port
			e.External = netip.AddrPortFrom(c.wan, port)
		default: // nat444
			e.WANPort = port
			e.Upstream = UpstreamPending
		}
		if e.Upstream == UpstreamPending {
			e.ready = make(chan struct{})
		}
	}
	e.exact = r.ExactPort
	c.insertLocked(e)
	return e, old, true, nil
}

// ownLocked is the requester's mapping of r's protocol and internal
// endpoint from the same front-end (for pinholes from UPnP, also the
// same remote host and port), which r renews; nil when there is none.
func (c *Core) ownLocked(r Request, nat64, pinhole bool) *entry {
	for _, x := range c.perClient[r.Client] {
		if x.Proto == r.Proto && x.Internal == r.Internal && x.Origin == r.Origin && x.NAT64 == nat64 &&
			(!pinhole || r.Origin == OriginPCP || x.RemoteHost == r.RemoteHost && x.RemotePort == r.RemotePort) {
			return x
		}
	}
	return nil
}

// pcpExactLocked applies a LAN PCP client's renewal of x to its
// exactness. With PREFER_FAILURE the suggested port must be the one x
// has (RFC 6887 §11.3: CANNOT_PROVIDE_EXTERNAL otherwise, not another
// port or a success), and x is asked for exactly from then on (its
// renewals and re-creations upstream carry PREFER_FAILURE); without it, x
// may move (§11.3: the server assigns another port when it must).
func (c *Core) pcpExactLocked(x *entry, r Request) error {
	if r.ExactPort && r.ExternalPort != 0 {
		// The port the client was given: the upstream's, or the WAN's
		// when the CPE is the outermost NAT; the one it was last told
		// while the mapping is made again elsewhere.
		have := x.External
		if !have.IsValid() {
			have = x.told
		}
		if have.IsValid() && have.Port() != r.ExternalPort {
			return &Error{Code: CodeCannotProvideExternal,
				Msg: "PREFER_FAILURE: the mapping's external port is " + itoa(int(have.Port())) + ", not " + itoa(int(r.ExternalPort))}
		}
	}
	if x.exact != r.ExactPort {
		x.exact = r.ExactPort
		c.markLocked(x, markPut)
		c.dirtyLocked()
	}
	return nil
}

// renewLocked updates x from r (lease, description) and returns it.
func (c *Core) renewLocked(x *entry, r Request, now time.Time) *entry {
	before := x.Expires
	x.lifetime = r.Lifetime
	if r.Lifetime > 0 {
		x.Expires = now.Add(r.Lifetime)
	} else {
		x.Expires = time.Time{}
	}
	// Only a later lease end can wait for the state file (renewedLocked);
	// anything else a crash must not undo.
	later := !before.IsZero() && !x.Expires.IsZero() && !x.Expires.Before(before)
	if r.Description != "" && r.Description != x.Description {
		x.Description = r.Description
		later = false
	}
	c.pushLocked(x)
	if x.Upstream == UpstreamFailing && !x.busy {
		x.renewAt = now
		c.pushLocked(x)
	}
	if later {
		c.markLeaseLocked(x, before)
		c.renewedLocked()
	} else {
		c.markLocked(x, markPut)
		c.dirtyLocked()
	}
	return x
}

// pickPortLocked chooses the external (WAN) port for a new IPv4 mapping.
func (c *Core) pickPortLocked(r Request, replaced *entry) (uint16, error) {
	addr, ip := r.Internal.Addr(), r.Internal.Port()
	rules := c.policy().Rules
	free := func(p uint16) bool {
		if p == 0 || slices.Contains(c.cfg.ReservedPorts, p) {
			return false
		}
		if x := c.byExt[keyOf(r.Proto, p)]; x != nil && x != replaced || c.undoKeys[keyOf(r.Proto, p)] > 0 {
			return false
		}
		return r.Origin == OriginStatic || permitted(rules, p, addr, ip)
	}
	want := r.ExternalPort
	if want == 0 {
		want = ip
	}
	if c.mode == ModePortSet {
		if p, err, done := c.pickInSetLocked(r, want, free); done {
			return p, err
		}
	}
	if free(want) {
		return want, nil
	}
	if r.ExactPort {
		switch {
		case slices.Contains(c.cfg.ReservedPorts, want):
			return 0, &Error{Code: CodeNotAuthorized, Msg: "the port is reserved"}
		case r.Origin != OriginStatic && !permitted(rules, want, addr, ip):
			return 0, &Error{Code: CodeNotAuthorized, Msg: "not allowed by the permission rules"}
		}
		return 0, &Error{Code: CodeConflict, Msg: "the port is in use"}
	}
	if r.Origin != OriginStatic && !c.anyAllowed(addr, ip) {
		return 0, &Error{Code: CodeNotAuthorized, Msg: "not allowed by the permission rules"}
	}
	const lo = 1024
	p := max(want, lo)
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
	return 0, &Error{Code: CodeNoResources, Msg: "no free external port"}
}

// anyAllowed reports whether some external port may be mapped to
// addr:port: false only when a deny rule covering every external port
// matches before any allow rule does.
func (c *Core) anyAllowed(addr netip.Addr, port uint16) bool {
	for _, r := range c.policy().Rules {
		if !r.IntAddr.IsValid() || !r.IntAddr.Contains(addr) || port < r.IntLo || port > r.IntHi {
			continue
		}
		if r.Allow {
			return true
		}
		if r.ExtLo == 0 && r.ExtHi == math.MaxUint16 {
			return false
		}
	}
	return true
}

func (c *Core) insertLocked(e *entry) {
	if e.ID == 0 {
		for c.entries[c.nextID] != nil || c.nextID == 0 {
			c.nextID = c.nextID%maxEntries + 1
		}
		e.ID = c.nextID
		c.nextID = c.nextID%maxEntries + 1
	}
	c.seq++
	e.seq = c.seq
	c.entries[e.ID] = e
	if e.IsPinhole() {
		c.pinholes++
	} else {
		c.byExt[keyOf(e.Proto, e.port)] = e
	}
	c.perClient[e.Client] = append(c.perClient[e.Client], e)
	c.order = append(c.order, e)
	c.pushLocked(e)
	c.noteExternalLocked(e, false)
	c.emitLocked(Event{Kind: EventMappings, Count: c.countLocked()})
	c.markLocked(e, markPut)
	c.dirtyLocked()
}

// removeLocked takes e out of the table and adds its kernel entries to
// change. The caller deletes it upstream (upstreamDeleteLocked), under
// the same lock.
func (c *Core) removeLocked(e *entry, change *firewall.Change) {
	if e.removed {
		return
	}
	e.removed = true
	if cancel := c.asking[e]; cancel != nil {
		cancel() // its request's goroutine deletes it upstream
	}
	c.pushLocked(e) // out of the schedule
	delete(c.entries, e.ID)
	if e.IsPinhole() {
		c.pinholes--
	}
	if k := keyOf(e.Proto, e.port); !e.IsPinhole() && c.byExt[k] == e {
		delete(c.byExt, k)
	}
	pc := c.perClient[e.Client]
	if i := slices.Index(pc, e); i >= 0 {
		pc = slices.Delete(pc, i, i+1)
	}
	if len(pc) == 0 {
		delete(c.perClient, e.Client)
	} else {
		c.perClient[e.Client] = pc
	}
	if i, ok := slices.BinarySearchFunc(c.order, e.seq, func(x *entry, s uint64) int {
		switch {
		case x.seq < s:
			return -1
		case x.seq > s:
			return 1
		}
		return 0
	}); ok {
		c.order = slices.Delete(c.order, i, i+1)
	}
	change.DelForwards, change.DelPinholes = appendFW(change.DelForwards, change.DelPinholes, e, time.Time{})
	c.dropHairpinLocked(e)
	c.markRemovedLocked(e)
	if e.ready != nil {
		select {
		case <-e.ready:
		default:
			close(e.ready)
		}
	}
	c.emitLocked(Event{Kind: EventMappings, Count: c.countLocked()})
	c.dirtyLocked()
}

// renewKernelLocked adds to change what the kernel needs after e's lease
// changed (see kernelUpdate).
func (c *Core) renewKernelLocked(e *entry, now time.Time, change *firewall.Change) {
	refresh, replace := kernelUpdate(e, now)
	if replace {
		change.DelForwards, change.DelPinholes = appendFW(change.DelForwards, change.DelPinholes, e, time.Time{})
	}
	if refresh {
		change.AddForwards, change.AddPinholes = appendFW(change.AddForwards, change.AddPinholes, e, now)
	}
}

// appendFW appends e's kernel entries. With now not zero they are
// additions: timeouts as of now, remembered in e.kernelExp.
func appendFW(fwds []firewall.Forward, pins []firewall.Pinhole, e *entry, now time.Time) ([]firewall.Forward, []firewall.Pinhole) {
	var timeout time.Duration
	if !now.IsZero() {
		e.kernelExp, e.kernelStale = time.Time{}, false
	}
	if !now.IsZero() && !e.Expires.IsZero() {
		// Beyond what the kernel may hold the entry has no timeout (the
		// core still ends it); the sum cannot overflow below that bound.
		if left := e.Expires.Sub(now); left < firewall.MaxTimeout-firewallGrace {
			timeout = max(left, 0) + firewallGrace
			e.kernelExp = now.Add(timeout)
		}
	}
	if e.NAT64 {
		return fwds, nat64Pinholes(pins, e, timeout)
	}
	if e.IsPinhole() {
		return fwds, append(pins, firewall.Pinhole{
			Proto: uint8(e.Proto), To: e.Internal, Remote: e.RemoteHost, RemotePort: e.RemotePort, Timeout: timeout,
		})
	}
	return append(fwds, firewall.Forward{
		Proto: uint8(e.Proto), Port: e.WANPort, To: e.Internal, Remote: e.RemoteHost, UpstreamPort: e.hairpin, Timeout: timeout,
	}), pins
}

// apply sends a change the table already holds to the kernel. The caller's
// cancellation does not stop it (the table changed: the kernel must
// follow). When it fails, the scheduler resyncs the kernel with the whole
// table (needSync), so that no element outlives its mapping.
func (c *Core) apply(ctx context.Context, ch firewall.Change) error {
	if ch.Empty() {
		return nil
	}
	err := c.fw.Apply(context.WithoutCancel(ctx), ch)
	if err != nil {
		c.log.Error("firewall", "err", err)
		c.mu.Lock()
		c.needSync = true
		c.mu.Unlock()
		c.kickLocked()
	}
	return err
}

// Delete removes what s selects and returns how many mappings it removed
// (0 and nil when nothing matched). With secure mode a host may delete only
// its own mappings; static forwards are not deleted from the LAN. A
// selector for one mapping fails when that may not be deleted; a wildcard
// (internal port 0, no ID or external port) deletes what it may.
func (c *Core) Delete(ctx context.Context, s Selector) (int, error) {
	s.Client = s.Client.Unmap()
	s.Internal = netip.AddrPortFrom(s.Internal.Addr().Unmap(), s.Internal.Port())
	// A wildcard (no ID, no external port, internal port 0: NAT-PMP's
	// "delete all", RFC 6886 §3.4) deletes what it may and leaves the
	// rest; a delete of one mapping that may not be deleted fails.
	wildcard := s.ID == 0 && s.External == 0 && s.Internal.Port() == 0
	c.mu.Lock()
	all := c.selectLocked(s)
	es := all[:0:0]
	for _, e := range all {
		var err error
		switch {
		case e.Origin == OriginStatic && s.Origin != OriginStatic:
			err = &Error{Code: CodeNotAuthorized, Msg: "a static forward is changed in the configuration"}
		case c.policy().SecureMode && s.Client.IsValid() && e.Client != s.Client:
			err = &Error{Code: CodeNotAuthorized, Msg: "secure mode: the mapping belongs to another host"}
		case s.Nonce != nil && e.Nonce != *s.Nonce:
			err = &Error{Code: CodeNonceMismatch, Msg: "the mapping belongs to another nonce"}
		}
		switch {
		case err == nil:
			es = append(es, e)
		case !wildcard:
			c.mu.Unlock()
			return 0, err
		}
	}
	var change firewall.Change
	for _, e := range es {
		c.removeLocked(e, &change)
		c.upstreamDeleteLocked(e)
	}
	c.mu.Unlock()
	err := c.apply(ctx, change)
	if err != nil {
		return len(es), &Error{Code: CodeNoResources, Msg: "firewall", Err: err}
	}
	if err := c.durableWait(es...); err != nil {
		return len(es), &Error{Code: CodeNoResources, Msg: "the state could not be saved", Err: err}
	}
	return len(es), nil
}

// Renew changes the lease of mapping id (IGD:2 UpdatePinhole).
func (c *Core) Renew(ctx context.Context, client netip.Addr, id uint32, lifetime time.Duration) (Mapping, error) {
	client = client.Unmap()
	if lifetime < 0 {
		return Mapping{}, &Error{Code: CodeInvalid, Msg: "negative lifetime"}
	}
	now := time.Now()
	c.mu.Lock()
	e, ok := c.entries[id]
	if !ok {
		c.mu.Unlock()
		return Mapping{}, &Error{Code: CodeNotFound, Msg: "no such mapping"}
	}
	lifetime = c.clampLease(e.Origin, lifetime)
	if c.policy().SecureMode && e.Client != client || e.Origin == OriginStatic {
		c.mu.Unlock()
		return Mapping{}, &Error{Code: CodeNotAuthorized, Msg: "the mapping belongs to another host"}
	}
	e = c.renewLocked(e, Request{Lifetime: lifetime}, now)
	var change firewall.Change
	c.renewKernelLocked(e, now, &change)
	m := e.view(c.upKind)
	c.mu.Unlock()
	if err := c.apply(ctx, change); err != nil {
		c.mu.Lock()
		e.kernelStale = true
		c.mu.Unlock()
		return m, &Error{Code: CodeNoResources, Msg: "firewall", Err: err}
	}
	if err := c.durableWait(e); err != nil {
		return m, &Error{Code: CodeNoResources, Msg: "the state could not be saved", Err: err}
	}
	return m, nil
}

// Packets returns how many packets went through pinhole id.
func (c *Core) Packets(ctx context.Context, id uint32) (uint64, error) {
	c.mu.Lock()
	e, ok := c.entries[id]
	var p firewall.Pinhole
	if ok {
		_, pins := appendFW(nil, nil, e, time.Time{})
		if len(pins) == 1 {
			p = pins[0]
		} else {
			ok = false
		}
	}
	c.mu.Unlock()
	if !ok {
		return 0, &Error{Code: CodeNotFound, Msg: "no such pinhole"}
	}
	n, err := c.fw.Packets(ctx, p)
	if err != nil {
		return 0, &Error{Code: CodeNetworkFailure, Msg: "firewall counters", Err: err}
	}
	return n, nil
}

// upstreamRequestLocked builds the upstream request for e (RFC 6970 §5.4,
// §5.5).
func (c *Core) upstreamRequestLocked(e *entry) upstream.MapRequest {
	r := upstream.MapRequest{
		Protocol:    uint8(e.Proto),
		Description: e.Description,
		Nonce:       pcp.Nonce(e.nonce),
	}
	switch c.mode {
	case ModeDSLite:
		r.Internal = e.Internal
		r.ThirdParty = true
	default:
		r.Internal = netip.AddrPortFrom(c.wan, e.WANPort)
	}
	// Ask for the port the LAN sees; keep what the provider gave on renewals.
	port := e.port
	if e.exact && e.told.IsValid() {
		port = e.told.Port() // its port, also while it is made again elsewhere
	}
	switch {
	case e.External.IsValid():
		r.SuggestedExternal = e.External
	case c.external.IsValid():
		r.SuggestedExternal = netip.AddrPortFrom(c.external, port)
	default:
		r.SuggestedExternal = netip.AddrPortFrom(netip.IPv4Unspecified(), port)
	}
	if e.NAT64 {
		nat64Request(e, &r)
	}
	// PREFER_FAILURE for what was asked for exactly (IGD AddPortMapping,
	// a LAN PCP client's PREFER_FAILURE, RFC 6887 §13.2, a static
	// forward), when it is made and when it is renewed or re-created
	// after the upstream lost its state (RFC 6970 §5.10): it keeps its
	// port or fails, and is never moved behind its client's back. Only
	// the port is exact (RFC 6970 §5.6: the control point names a port):
	// with the upstream's address as the suggestion, an upstream that
	// came back with another address would refuse it forever.
	r.PreferFailure = e.exact || e.Origin == OriginStatic
	if r.PreferFailure {
		r.SuggestedExternal = netip.AddrPortFrom(netip.IPv4Unspecified(), r.SuggestedExternal.Port())
	}
	if e.RemoteHost.IsValid() {
		bits := 32
		if e.RemoteHost.Is6() {
			bits = 128
		}
		r.Filters = []pcp.Filter{{Prefix: netip.PrefixFrom(e.RemoteHost, bits), RemotePort: e.RemotePort}}
	}
	// RFC 6970 asks for 2^32 for a lease with no end: the field holds
	// 2^32-1; the server grants what it will and pcpgw renews.
	r.Lifetime = math.MaxUint32
	if !e.Expires.IsZero() {
		left := time.Until(e.Expires)
		r.Lifetime = uint32(max(left, time.Second) / time.Second)
	}
	return r
}
