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

// upstreamError turns an error of the PCP client into a core *Error.
func upstreamError(err error) error {
	if err == nil {
		return nil
	}
	var ce *Error
	if errors.As(err, &ce) {
		return err
	}
	var re *pcpclient.ResultError
	if errors.As(err, &re) {
		return &Error{Code: CodeFromPCP(re.Code), Lifetime: time.Duration(re.Lifetime) * time.Second,
			Msg: "the provider's PCP server answered " + re.Code.String(), Err: err}
	}
	return &Error{Code: CodeNetworkFailure, Msg: "the provider's PCP server", Err: err}
}

// maxRetryWait bounds the wait for an error lifetime that did not come
// through the PCP client (which caps it, RFC 6887 §15).
const maxRetryWait = 24 * time.Hour

// retryWait is how long after err the provider is asked again: the
// error's lifetime (RFC 6887 §7.4) as the PCP client holds the request,
// else retryAfterTimeout.
func retryWait(err, uerr error, now time.Time) time.Duration {
	var re *pcpclient.ResultError
	if errors.As(err, &re) && re.Until.After(now) {
		return re.Until.Sub(now)
	}
	if ce := asError(uerr); ce != nil && ce.Lifetime > 0 {
		return min(ce.Lifetime, maxRetryWait)
	}
	return retryAfterTimeout
}

// upstreamReason says why the provider did not make a mapping, as the
// page and `pcpgw list` show it; port is the external port asked for.
func upstreamReason(err error, port uint16) string {
	var re *pcpclient.ResultError
	switch {
	case !errors.As(err, &re):
		return "no answer from the provider's PCP server (" + err.Error() + ")"
	case re.Code == pcp.CannotProvideExternal && re.ByClient:
		return re.Code.String() + ": the provider offered another port than " + itoa(int(port))
	case re.Code == pcp.CannotProvideExternal:
		return re.Code.String() + ": the provider refused external port " + itoa(int(port))
	}
	return re.Code.String() + ": the provider refused the mapping"
}

// answered reports whether err is the server's answer (an error result),
// as opposed to no answer at all.
func answered(err error) bool {
	var re *pcpclient.ResultError
	return errors.As(err, &re)
}

// runUpstream makes or renews e at the provider and records the outcome.
// creating is true for the first attempt of a new mapping: a refusal then
// removes the mapping (its requester is told), while a timeout keeps it
// pending and retried.
func (c *Core) runUpstream(e *entry, req pcpclient.MapRequest, creating bool) {
	ctx, cancel := context.WithTimeout(context.Background(), upstreamOpTimeout)
	go func() {
		select {
		case <-c.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	res, err := c.up.Map(ctx, req)
	cancel()
	now := time.Now()

	c.mu.Lock()
	e.busy = false
	if e.removed {
		c.mu.Unlock()
		if err == nil {
			// Removed while we asked: undo at the provider.
			req.Nonce = res.Nonce
			c.deleteUpstream(req)
		}
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
		if c.mode == ModeDSLite && !e.exact && res.External.Port() != e.port {
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
		e.renewAt = pcpclient.NextRenewal(e.upAt, e.upLife, 0, time.Time{}, rand.Float64())
		if !e.Expires.IsZero() && !e.renewAt.Before(e.Expires) {
			e.renewAt = time.Time{} // the lease ends first
		}
		ext := res.External.Addr()
		c.log.Debug("mapped upstream", "proto", e.Proto, "internal", e.Internal, "external", e.External, "lifetime", res.Lifetime)
		if ext.IsValid() && ext != c.external {
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
	c.pushLocked(e)
	if e.ready != nil {
		select {
		case <-e.ready:
		default:
			close(e.ready)
		}
	}
	c.dirtyLocked()
	c.mu.Unlock()
	c.apply(context.Background(), change)
}

// renewLockedUpstream starts the renewal (or re-creation) of e at the
// provider if none is in flight. Called with mu held.
func (c *Core) startRenewLocked(e *entry) {
	if e.busy || e.removed || c.up == nil || e.IsPinhole() || c.mode == ModeLocal {
		return
	}
	e.busy = true
	e.attempt++
	req := c.upstreamRequestLocked(e)
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
		c.runUpstream(e, req, false)
	}()
}

// upstreamDeleteBG deletes e at the provider in the background (RFC 7648:
// deletes always go upstream), with its nonce.
func (c *Core) upstreamDeleteBG(e *entry) {
	c.mu.Lock()
	if c.up == nil || e.IsPinhole() || e.upAt.IsZero() {
		c.mu.Unlock()
		return
	}
	req := c.upstreamRequestLocked(e)
	c.mu.Unlock()
	c.deleteUpstream(req)
}

func (c *Core) deleteUpstream(req pcpclient.MapRequest) {
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
	}()
}

// handleUpstreamEvent reacts to what the PCP client noticed.
func (c *Core) handleUpstreamEvent(ev pcpclient.Event) {
	switch ev.Kind {
	case pcpclient.EventStateLost:
		// RFC 6887 §14.1.1: wait a random 0-5 s, then re-create everything.
		c.log.Info("provider lost its state: re-creating mappings", "server", ev.Server)
		c.recreateAll(true)
	case pcpclient.EventExternalChanged:
		if ev.External.IsValid() {
			c.setExternal(ev.External)
		}
		if ev.Mapping != nil && ev.Request != nil {
			c.mappingUpdate(*ev.Request, *ev.Mapping)
		}
	case pcpclient.EventReachable:
		c.log.Info("provider reachable again", "server", ev.Server)
		c.retryFailing()
	case pcpclient.EventUnreachable:
		c.log.Warn("provider unreachable", "server", ev.Server)
	}
}

// mappingUpdate applies an unsolicited MAP response (RFC 6887 §14.2).
func (c *Core) mappingUpdate(req pcpclient.MapRequest, res pcpclient.MapResult) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.entries {
		if uint8(e.Proto) != req.Protocol || e.IsPinhole() || Nonce(res.Nonce) != e.nonce {
			continue
		}
		e.External = res.External
		e.upLife = time.Duration(res.Lifetime) * time.Second
		e.upAt = time.Now()
		e.attempt = 0
		e.renewAt = pcpclient.NextRenewal(e.upAt, e.upLife, 0, time.Time{}, rand.Float64())
		c.pushLocked(e)
		c.dirtyLocked()
	}
}

// recreateAll schedules every upstream mapping for renewal now (with a
// random 0-5 s wait when spread is set).
func (c *Core) recreateAll(spread bool) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.entries {
		if e.IsPinhole() || c.mode == ModeLocal {
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
	for _, e := range c.entries {
		if e.IsPinhole() {
			continue
		}
		switch c.mode {
		case ModeLocal:
			e.Upstream = UpstreamNone
			e.External = netip.AddrPortFrom(a, e.WANPort)
		default:
			if e.Upstream == UpstreamNone {
				e.Upstream = UpstreamPending
			}
			e.renewAt = now
			c.pushLocked(e)
		}
	}
	if c.mode == ModeLocal && a.IsValid() && a != c.external {
		c.external = a
		c.emitLocked(Event{Kind: EventExternalAddr, External: a})
	}
	c.dirtyLocked()
	c.kickLocked()
	c.mu.Unlock()
	if err := c.fw.SetWANAddr(ctx, a); err != nil {
		c.log.Error("firewall WAN address", "err", err)
	}
}
