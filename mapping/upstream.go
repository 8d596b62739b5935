package mapping

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/pcpgw/pcpgw/firewall"
	"github.com/pcpgw/pcpgw/pcp"
	"github.com/pcpgw/pcpgw/pcpclient"
	"github.com/pcpgw/pcpgw/upstream"
)

// upstreamOpTimeout bounds one upstream operation in the background (the
// PCP client retransmits within it: 3, 6, 12, 24 s ...).
const upstreamOpTimeout = 45 * time.Second

// maxRenewing bounds the renewals and re-creations in flight at once, so
// that re-creating every mapping after the provider lost its state does not
// flood its server (and lose requests in its socket buffer); new LAN
// requests do not wait for it.
const maxRenewing = 32

// retryAfterTimeout is when a mapping whose provider did not answer is
// tried again (sooner when the provider is heard from again).
const retryAfterTimeout = 30 * time.Second

// upstreamError turns an upstream's error into a core *Error: a refusal
// (*upstream.Error) with its code, anything else as no answer.
func upstreamError(err error) error {
	if err == nil {
		return nil
	}
	var ce *Error
	if errors.As(err, &ce) {
		return err
	}
	var ue *upstream.Error
	if errors.As(err, &ue) {
		return &Error{Code: CodeFromPCP(ue.Code), Lifetime: time.Duration(ue.Lifetime) * time.Second,
			Msg: ue.Kind.Noun() + " answered " + ue.Code.String(), Err: err}
	}
	return &Error{Code: CodeNetworkFailure, Msg: "no answer from the upstream NAT", Err: err}
}

// maxRetryWait bounds the wait for an error lifetime that did not come
// through the PCP client (which caps it, RFC 6887 §15).
const maxRetryWait = 24 * time.Hour

// retryWait is how long after err the upstream is asked again: the
// error's lifetime (RFC 6887 §7.4) as the upstream holds the request,
// else retryAfterTimeout.
func retryWait(err, uerr error, now time.Time) time.Duration {
	var ue *upstream.Error
	if errors.As(err, &ue) && ue.Until.After(now) {
		return min(ue.Until.Sub(now), maxRetryWait)
	}
	if ce := asError(uerr); ce != nil && ce.Lifetime > 0 {
		return min(ce.Lifetime, maxRetryWait)
	}
	return retryAfterTimeout
}

// upstreamReason says why the upstream (of kind k) did not make a
// mapping, as the page and `pcpgw list` show it; port is the external
// port asked for.
func upstreamReason(err error, port uint16, k upstream.Kind) string {
	var ue *upstream.Error
	switch {
	case !errors.As(err, &ue):
		who := "the upstream NAT"
		switch k {
		case upstream.KindPCP:
			who = "the provider's PCP server"
		case upstream.KindNATPMP, upstream.KindUPnP:
			who = k.Noun()
		}
		return "no answer from " + who + " (" + err.Error() + ")"
	case ue.Code == pcp.CannotProvideExternal && ue.ByClient:
		return ue.Code.String() + ": " + ue.Kind.Noun() + " offered another port than " + itoa(int(port))
	case ue.Code == pcp.CannotProvideExternal:
		return ue.Code.String() + ": " + ue.Kind.Noun() + " refused external port " + itoa(int(port)) + detail(ue)
	}
	return ue.Code.String() + ": " + ue.Kind.Noun() + " refused the mapping" + detail(ue)
}

// detail is an IGD's own words about a refusal (" (UPnP error 718
// ConflictInMappingEntry)"), or "": PCP's and NAT-PMP's are the code.
func detail(ue *upstream.Error) string {
	if ue.Kind != upstream.KindUPnP || ue.Detail == "" {
		return ""
	}
	return " (" + ue.Detail + ")"
}

// answered reports whether err is the upstream's answer (a refusal), as
// opposed to no answer at all.
func answered(err error) bool {
	var ue *upstream.Error
	return errors.As(err, &ue)
}

// runUpstream makes or renews e at the provider and records the outcome.
// creating is true for the first attempt of a new mapping: a refusal then
// removes the mapping (its requester is told), while a timeout keeps it
// pending and retried.
//
// gen is c.upGen when req was built: an answer from an upstream that has
// been replaced since (its MapResult.Gen, or for an error gen itself,
// older than c.upGen) is not taken, and the mapping is made again at the
// new one.
func (c *Core) runUpstream(e *entry, req upstream.MapRequest, creating bool, gen uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), upstreamOpTimeout)
	go func() {
		select {
		case <-c.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	var res upstream.MapResult
	n, err := c.upstreamIntent(e, cancel)
	// sent: from here on e's request counts as sent (e is in c.asking):
	// a removal meanwhile is undone upstream by this goroutine.
	sent := err == nil
	if sent {
		req.Nonce = n
		if err = c.awaitDeletes(ctx, e); err == nil {
			res, err = c.up.Map(ctx, req)
		}
	}
	cancel()
	now := time.Now()

	c.mu.Lock()
	delete(c.asking, e)
	e.busy = false
	if e.removed {
		if sent {
			// Removed while we asked (the removal cancelled the call):
			// undo at the provider, answered or not (RFC 7648 §3: a
			// delete goes upstream regardless). Unanswered, the request
			// may still be made there: the upstream client retransmits
			// it for a while (pcpclient's Linger), and the delete with
			// its nonce, sent after it, ends that too.
			k := keyOf(e.Proto, e.port)
			if !e.upGone {
				// Removed by a path that does not delete upstream itself
				// (withdrawn, refused): no hold was taken.
				e.upGone = true
				c.holdDeleteLocked(k)
			}
			c.startDeleteLocked(req, k)
		}
		c.mu.Unlock()
		return
	}
	if err == nil && res.Gen != 0 {
		gen = res.Gen // the upstream that answered
	}
	if gen < c.upGen {
		// Asked of an upstream that has been replaced meanwhile.
		e.renewAt = now
		if e.Upstream == UpstreamPending {
			e.upErr = errors.New("the upstream changed while it was asked")
		}
		c.pushLocked(e)
		if e.ready != nil {
			select {
			case <-e.ready:
			default:
				close(e.ready)
			}
		}
		c.kickLocked()
		c.mu.Unlock()
		return
	}
	var change firewall.Change
	if err == nil {
		e.nonce = Nonce(res.Nonce)
		e.External = res.External
		e.upLife = time.Duration(res.Lifetime) * time.Second
		e.upAt = now
		e.attempt = 0
		e.upErr = nil
		e.Upstream = UpstreamOK
		if e.NAT64 {
			c.nat64AnsweredLocked(e, res.Prefix64, now, &change)
		}
		if (c.mode == ModeDSLite || e.NAT64) && !e.exact && res.External.Port() != e.port {
			if x := c.byExt[keyOf(e.Proto, e.port)]; x == e {
				delete(c.byExt, keyOf(e.Proto, e.port))
			}
			e.port = res.External.Port()
			// The provider's word decides: a mapping holding that port
			// only by its own local pick (not yet confirmed) gives way,
			// and its own answer later moves it to its port.
			if x := c.byExt[keyOf(e.Proto, e.port)]; x == nil || x.Upstream != UpstreamOK {
				c.byExt[keyOf(e.Proto, e.port)] = e
			}
		}
		c.noteExternalLocked(e, true)
		e.renewAt = pcpclient.NextRenewal(e.upAt, e.upLife, 0, time.Time{}, rand.Float64())
		if !e.Expires.IsZero() && !e.renewAt.Before(e.Expires) {
			e.renewAt = time.Time{} // the lease ends first
		}
		ext := res.External.Addr()
		c.log.Debug("mapped upstream", "proto", e.Proto, "internal", e.Internal, "external", e.External, "lifetime", res.Lifetime)
		if ext.IsValid() && ext != c.external && !e.NAT64 {
			c.mu.Unlock()
			c.setExternal(ext)
			c.mu.Lock()
		}
	} else {
		e.upErr = err
		uerr := upstreamError(err)
		code := CodeOf(uerr)
		if creating && code != CodeNetworkFailure && e.Origin != OriginStatic {
			c.log.Info("provider refused mapping", "proto", e.Proto, "internal", e.Internal, "err", err)
			c.removeLocked(e, &change)
		} else if code == CodeCannotProvideExternal && e.exact && e.Origin == OriginPCP {
			// A LAN PCP client's exact mapping (PREFER_FAILURE) that the
			// upstream cannot give its port back (it lost its state,
			// another upstream took over, it moved the mapping): not
			// moved behind the client's back (RFC 6887 §13.2), nor kept
			// as if it stood. It ends; its client gets CANNOT_PROVIDE_
			// EXTERNAL in a Mapping Update (§14.2) and when it asks again
			// (§11.3: a new exact request then fails the same way).
			c.log.Info("upstream cannot give an exact mapping its port back: ended", "proto", e.Proto,
				"internal", e.Internal, "client", e.Client, "external", e.told, "err", err)
			c.emitLocked(Event{Kind: EventMappingLost, Mapping: e.view(c.upKind), Was: e.told, Err: uerr})
			c.removeLocked(e, &change)
		} else {
			next := now.Add(retryWait(err, uerr, now))
			switch {
			case creating && e.Origin == OriginStatic && code != CodeNetworkFailure:
				// A configured forward is not moved or dropped: it shows
				// the provider's refusal and is asked for again.
				e.Upstream = UpstreamFailing
			case creating:
				e.Upstream = UpstreamPending
			case e.Upstream == UpstreamOK && !answered(err) && now.Before(e.upAt.Add(e.upLife)):
				// No answer, and still mapped upstream: retry on the §11.2.1 schedule.
				if n := pcpclient.NextRenewal(e.upAt, e.upLife, int(e.attempt), now, rand.Float64()); n.Before(e.upAt.Add(e.upLife)) {
					next = n
				}
			default:
				e.Upstream = UpstreamFailing
			}
			e.renewAt = next
			c.log.Info("provider did not map", "proto", e.Proto, "internal", e.Internal, "err", err, "retry", next.Sub(now))
		}
	}
	c.rehairpinLocked(e, now, &change)
	c.pushLocked(e)
	if e.ready != nil {
		select {
		case <-e.ready:
		default:
			close(e.ready)
		}
	}
	c.markLocked(e, markPut)
	c.dirtyLocked()
	c.mu.Unlock()
	c.apply(context.Background(), change)
}

// renewLockedUpstream starts the renewal (or re-creation) of e at the
// provider if none is in flight. Called with mu held.
func (c *Core) startRenewLocked(e *entry) {
	if e.busy || e.removed || e.IsPinhole() || !c.upstreamLocked() {
		return
	}
	e.busy = true
	e.attempt++
	req := c.upstreamRequestLocked(e)
	gen := c.upGen
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		select {
		case c.renewing <- struct{}{}:
		case <-c.quit:
			c.mu.Lock()
			e.busy = false
			c.mu.Unlock()
			return
		}
		defer func() { <-c.renewing }()
		c.runUpstream(e, req, false, gen)
	}()
}

// upstreamDeleteLocked deletes e, just removed, at the provider in the
// background (RFC 7648 §3: deletes always go upstream), with its nonce:
// when the provider made it, and when a request for it was sent and not
// answered (it may be made there all the same, and the upstream client
// may still be retransmitting it: the delete ends that). A mapping with
// no nonce never had a request sent. One whose request is in flight now
// is deleted by that request's goroutine when the call returns (see
// c.asking), so that the delete never goes out before the request it
// undoes. Called with mu held, where e is removed: from then on a new
// mapping of e's port waits for the delete (see c.deleting).
func (c *Core) upstreamDeleteLocked(e *entry) {
	if !c.upstreamLocked() || e.IsPinhole() || e.upGone || e.upAt.IsZero() && e.nonce == (Nonce{}) {
		return
	}
	e.upGone = true
	k := keyOf(e.Proto, e.port)
	c.holdDeleteLocked(k)
	if _, asking := c.asking[e]; asking {
		return // runUpstream sends it, and releases the hold
	}
	c.startDeleteLocked(c.upstreamRequestLocked(e), k)
}

// deleteWait is the upstream deletes of one port in flight: done is
// closed when the last one ends.
type deleteWait struct {
	n    int
	done chan struct{}
}

// holdDeleteLocked notes that a delete of port k is to go upstream: a
// request for a new mapping of k waits for it (awaitDeletes) until
// releaseDeleteLocked.
func (c *Core) holdDeleteLocked(k extKey) {
	w := c.deleting[k]
	if w == nil {
		w = &deleteWait{done: make(chan struct{})}
		c.deleting[k] = w
	}
	w.n++
}

func (c *Core) releaseDeleteLocked(k extKey) {
	w := c.deleting[k]
	if w == nil {
		return
	}
	if w.n--; w.n <= 0 {
		close(w.done)
		delete(c.deleting, k)
	}
}

// awaitDeletes waits, before e's request goes upstream, until no delete
// of e's port is in flight there (or ctx ends): a NAT-PMP gateway or an
// IGD deletes by protocol and port, and would delete the new mapping if
// the old one's delete came after its request; a PCP server still
// holding the old mapping refuses the new one's nonce (NOT_AUTHORIZED,
// RFC 6887 §11.3).
func (c *Core) awaitDeletes(ctx context.Context, e *entry) error {
	c.mu.Lock()
	w := c.deleting[keyOf(e.Proto, e.port)]
	c.mu.Unlock()
	if w == nil {
		return nil
	}
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// startDeleteLocked sends the delete req of port k upstream in the
// background, and releases k's hold (taken by the caller) when it ends.
func (c *Core) startDeleteLocked(req upstream.MapRequest, k extKey) {
	req.Lifetime = 0
	req.PreferFailure = false
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.up.Delete(ctx, req); err != nil {
			c.log.Info("deleting upstream", "internal", req.Internal, "err", err)
		}
		c.mu.Lock()
		c.releaseDeleteLocked(k)
		c.mu.Unlock()
	}()
}

// handleUpstreamEvent reacts to what the upstream noticed.
func (c *Core) handleUpstreamEvent(ev upstream.Event) {
	switch ev.Kind {
	case upstream.EventStateLost:
		// RFC 6887 §14.1.1: wait a random 0-5 s, then re-create everything.
		c.log.Info("upstream lost its state: re-creating mappings", "upstream", ev.Upstream, "server", ev.Server)
		c.recreateAll(ev.Spread)
	case upstream.EventExternalChanged:
		if ev.External.IsValid() {
			c.setExternal(ev.External)
		}
		if ev.Mapping != nil && ev.Request != nil {
			c.mappingUpdate(*ev.Request, *ev.Mapping)
		}
	case upstream.EventReachable:
		c.log.Info("upstream reachable again", "upstream", ev.Upstream, "server", ev.Server)
		c.retryFailing()
	case upstream.EventUnreachable:
		c.log.Warn("upstream unreachable", "upstream", ev.Upstream, "server", ev.Server)
	case upstream.EventKindChanged:
		var change firewall.Change
		c.mu.Lock()
		c.setKindLocked(ev.Upstream, ev.Gen, &change)
		onCPE := !c.upstreamLocked()
		c.mu.Unlock()
		c.apply(context.Background(), change)
		if onCPE {
			// No upstream address to hairpin any more (the WAN's is).
			c.fw.SetExternalAddr(context.Background(), netip.Addr{})
		}
	case upstream.EventWithdrawn:
		if ev.Mapping != nil && ev.Request != nil {
			c.withdrawn(*ev.Request, *ev.Mapping, ev.Err)
		}
	}
}

// withdrawn forgets a mapping the upstream ended by itself (RFC 6887
// §14.2): it leaves the table and the kernel, so that no LAN client is
// told it still exists; a static forward stays, failing, and is asked for
// again after the error's lifetime.
func (c *Core) withdrawn(req upstream.MapRequest, res upstream.MapResult, uerr *upstream.Error) {
	now := time.Now()
	var change firewall.Change
	c.mu.Lock()
	for _, e := range c.entries {
		if uint8(e.Proto) != req.Protocol || e.IsPinhole() || Nonce(res.Nonce) != e.nonce || e.Upstream == UpstreamNone {
			continue
		}
		var err error = errors.New("the upstream ended the mapping")
		if uerr != nil {
			err = uerr
		}
		c.log.Info("upstream withdrew a mapping", "proto", e.Proto, "internal", e.Internal, "external", e.External, "err", err)
		if e.Origin == OriginStatic {
			e.upErr, e.Upstream, e.upAt = err, UpstreamFailing, time.Time{}
			e.renewAt = now.Add(retryWait(err, err, now))
			c.rehairpinLocked(e, now, &change)
			c.pushLocked(e)
			c.markLocked(e, markPut)
			c.dirtyLocked()
			continue
		}
		ev := Event{Kind: EventMappingLost, Mapping: e.view(c.upKind), Was: e.told}
		if uerr != nil {
			ev.Err = upstreamError(uerr)
		}
		c.emitLocked(ev)
		c.removeLocked(e, &change)
	}
	c.mu.Unlock()
	c.apply(context.Background(), change)
}

// upstreamLocked reports whether mappings are made upstream: behind a
// provider NAT (not local mode) with an upstream that forwards ports (or
// one still being detected).
func (c *Core) upstreamLocked() bool {
	return c.up != nil && c.mode != ModeLocal && c.upKind != upstream.KindNone && c.upKind != upstream.KindLocal
}

// setKindLocked puts in force the upstream k of generation gen (see
// upstream.Event.Gen) and moves every mapping there: made again (the same
// nonce and port asked for), or, when nothing upstream forwards ports,
// kept on the CPE only with its WAN address as the external one. An older
// or the same generation changes nothing (an event that comes late must
// not roll back a newer upstream); so does the first detection finding the
// kind the state file says the mappings were made at (their nonces hold).
// What the kernel must change (the hairpins of the old upstream's ports
// go) is added to change.
func (c *Core) setKindLocked(k upstream.Kind, gen uint64, change *firewall.Change) {
	if k == upstream.KindDetecting || gen <= c.upGen {
		return
	}
	first := c.upGen == 0
	c.upGen = gen
	was := c.upKind
	if first && k == was {
		return
	}
	c.upKind = k
	c.markHeadLocked()
	if first && was == upstream.KindDetecting && c.upstreamLocked() {
		// The first detection, and no kind in the state file: the
		// mappings are pending and go to the upstream found as they are.
		c.kickLocked()
		return
	}
	c.log.Info("upstream changed: mappings follow", "upstream", k, "was", was)
	now := time.Now()
	onCPE := !c.upstreamLocked()
	moving := errors.New("being made at the new upstream")
	for _, e := range c.entries {
		if e.IsPinhole() || c.mode == ModeLocal {
			continue
		}
		e.attempt, e.upErr = 0, nil
		// What the old upstream gave means nothing at the new one; the
		// nonce stays (harmless elsewhere, and the same server again
		// knows it).
		e.upAt, e.upLife = time.Time{}, 0
		e.External = netip.AddrPort{}
		if onCPE {
			e.Upstream, e.renewAt = UpstreamNone, time.Time{}
			if e.WANPort != 0 {
				e.External = netip.AddrPortFrom(c.wan, e.WANPort)
				c.noteExternalLocked(e, true)
			}
			if e.ready != nil {
				select {
				case <-e.ready:
				default:
					close(e.ready)
				}
			}
		} else {
			e.Upstream, e.renewAt, e.upErr = UpstreamPending, now, moving
			// A renewal meanwhile waits (bounded) for the new upstream's
			// answer instead of being told success with no external
			// endpoint.
			if e.ready == nil {
				e.ready = make(chan struct{})
			} else {
				select {
				case <-e.ready:
					e.ready = make(chan struct{})
				default:
				}
			}
		}
		c.pushLocked(e)
	}
	c.rehairpinAllLocked(now, change)
	old := c.external
	c.external = netip.Addr{}
	if onCPE && c.mode != ModeDSLite {
		c.external = c.wan
	}
	if c.external.IsValid() && c.external != old {
		c.emitLocked(Event{Kind: EventExternalAddr, External: c.external})
	}
	c.markAllLocked()
	c.dirtyLocked()
	c.kickLocked()
	if !onCPE {
		// Learn the new upstream's external address.
		c.bg.Add(1)
		go func() {
			defer c.bg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), upstreamOpTimeout)
			defer cancel()
			go func() {
				select {
				case <-c.quit:
					cancel()
				case <-ctx.Done():
				}
			}()
			if a, err := c.up.ExternalAddr(ctx); err == nil {
				c.setExternal(a)
			}
		}()
	}
}

// mappingUpdate applies an unsolicited MAP response (RFC 6887 §14.2).
func (c *Core) mappingUpdate(req upstream.MapRequest, res upstream.MapResult) {
	var change firewall.Change
	defer func() { c.apply(context.Background(), change) }()
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	for _, e := range c.entries {
		if uint8(e.Proto) != req.Protocol || e.IsPinhole() || Nonce(res.Nonce) != e.nonce {
			continue
		}
		if (e.exact || e.Origin == OriginStatic) && e.External.IsValid() && res.External.Port() != e.External.Port() {
			// An exact mapping the upstream moved (RFC 6887 §14.2 says it
			// should rather have sent CANNOT_PROVIDE_EXTERNAL): it is not
			// moved behind its client's back but asked for again on its
			// port (PREFER_FAILURE), and fails if that port is gone.
			c.log.Info("upstream moved an exact mapping: asking for its port again", "proto", e.Proto,
				"internal", e.Internal, "external", e.External, "offered", res.External)
			e.renewAt = time.Now()
			c.pushLocked(e)
			c.kickLocked()
			continue
		}
		e.External = res.External
		c.noteExternalLocked(e, true)
		e.upLife = time.Duration(res.Lifetime) * time.Second
		e.upAt = now
		e.attempt = 0
		e.renewAt = pcpclient.NextRenewal(e.upAt, e.upLife, 0, time.Time{}, rand.Float64())
		c.rehairpinLocked(e, now, &change)
		c.pushLocked(e)
		c.markLocked(e, markPut)
		c.dirtyLocked()
	}
}

// recreateAll schedules every upstream mapping for renewal now (with a
// random 0-5 s wait when spread is set).
func (c *Core) recreateAll(spread bool) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.peerLost++ // PEER mappings are gone upstream: not answered from the table
	for _, e := range c.entries {
		if e.IsPinhole() || !c.upstreamLocked() {
			continue
		}
		e.renewAt = now
		if spread {
			e.renewAt = now.Add(jitter(5 * time.Second))
		}
		e.attempt = 0
		c.pushLocked(e)
	}
	c.kickLocked()
}

// retryFailing retries at once every mapping the provider has not made.
func (c *Core) retryFailing() {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.entries {
		if e.Upstream == UpstreamFailing || e.Upstream == UpstreamPending {
			e.renewAt = now
			c.pushLocked(e)
		}
	}
	c.kickLocked()
}

// SetWANAddr tells the core the CPE's WAN IPv4 address changed (invalid:
// none). Local mappings follow it; behind a provider NAT every mapping is
// made again for the new address.
func (c *Core) SetWANAddr(ctx context.Context, a netip.Addr) {
	a = a.Unmap()
	c.mu.Lock()
	if a == c.wan {
		c.mu.Unlock()
		return
	}
	c.log.Info("WAN address changed", "was", c.wan, "now", a)
	c.wan = a
	c.mode = ResolveMode(c.cfg.Mode, a, c.up != nil)
	now := time.Now()
	onCPE := !c.upstreamLocked()
	for _, e := range c.entries {
		if e.IsPinhole() || e.NAT64 {
			continue // the NAT64's mapping is not the CPE's IPv4 address's
		}
		switch {
		case onCPE:
			e.Upstream = UpstreamNone
			e.External = netip.AddrPortFrom(a, e.WANPort)
			c.noteExternalLocked(e, false) // EventExternalAddr tells everyone
		default:
			if e.Upstream == UpstreamNone {
				e.Upstream = UpstreamPending
			}
			e.renewAt = now
			c.pushLocked(e)
		}
	}
	if onCPE && c.mode != ModeDSLite && a.IsValid() && a != c.external {
		c.external = a
		c.emitLocked(Event{Kind: EventExternalAddr, External: a})
	}
	var change firewall.Change
	c.rehairpinAllLocked(now, &change)
	c.markAllLocked()
	c.dirtyLocked()
	c.kickLocked()
	c.mu.Unlock()
	c.apply(ctx, change)
	if err := c.fw.SetWANAddr(ctx, a); err != nil {
		c.log.Error("firewall WAN address", "err", err)
	}
}
