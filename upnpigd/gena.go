package upnpigd

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pcpgw/pcpgw/internal/httpd"

	"github.com/pcpgw/pcpgw/internal/crand"
)

// GENA limits (UDA 1.1 §4).
const (
	minSubscription  = 300 * time.Second
	maxSubscription  = 1800 * time.Second
	notifyTimeout    = 5 * time.Second
	maxNotifyFailure = 3 // consecutive failed NOTIFYs end a subscription
	maxCallbackLen   = 1024
)

type gena struct {
	s *Server

	mu   sync.Mutex
	subs map[string]*subscription
}

type subscription struct {
	sid      string
	host     netip.Addr // the subscriber: its IPv4 address or IPv6 /64
	sv       *service
	callback *url.URL
	expires  time.Time
	seq      uint32          // SEQ of the next NOTIFY
	dirty    map[string]bool // evented variables to send
	sending  bool            // a sender goroutine runs
	failures int
}

func newGena(s *Server) *gena {
	return &gena{s: s, subs: make(map[string]*subscription)}
}

func (g *gena) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.subs)
}

// eventedVars lists the evented state variables of sv.
func eventedVars(sv *service) []string {
	var out []string
	for _, v := range sv.vars {
		if v.events {
			out = append(out, v.name)
		}
	}
	return out
}

// externalAddrWait bounds how long an action or event waits for the
// external address: while the upstream is being detected the core holds
// the question until it is known (up to mapping.DetectWait, then the
// upstream's answer), but miniupnpc gives up on a response after 5 s of
// silence (upnpc asks GetStatusInfo first): better "Disconnected" and the
// empty address in time (RFC 6970 §4.1), and a GENA event when it is
// known, than no answer.
const externalAddrWait = 3 * time.Second

// externalAddr is the core's external address, asked within
// externalAddrWait.
func (s *Server) externalAddr(ctx context.Context) (netip.Addr, error) {
	ctx, cancel := context.WithTimeout(ctx, externalAddrWait)
	defer cancel()
	return s.core.ExternalAddr(ctx)
}

// value returns the current value of an evented variable.
func (s *Server) value(ctx context.Context, name string) string {
	switch name {
	case varExternalIPAddress:
		a, err := s.externalAddr(ctx)
		if err != nil {
			return ""
		}
		return addrStr(a)
	case varPortMappingNumberOfEntries:
		return strconv.Itoa(s.core.Count())
	case varConnectionStatus:
		if a, err := s.externalAddr(ctx); err == nil && a.IsValid() {
			return "Connected"
		}
		return "Disconnected"
	case varPossibleConnectionTypes:
		return "IP_Routed"
	case varSystemUpdateID:
		return strconv.FormatUint(uint64(s.updateID.Load()), 10)
	case varPhysicalLinkStatus:
		if v, ok := s.sysRead("operstate"); ok && (v == "up" || v == "unknown") {
			return "Up"
		}
		return "Down"
	case varFirewallEnabled:
		return "1"
	case varInboundPinholeAllowed:
		return boolStr(s.pinholesAllowed())
	}
	return ""
}

// changed marks variables as changed for every subscription whose service
// has them, and starts deliveries.
func (g *gena) changed(vars ...string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, sub := range g.subs {
		for _, v := range eventedVars(sub.sv) {
			for _, c := range vars {
				if v == c {
					sub.dirty[v] = true
				}
			}
		}
		g.kickLocked(sub)
	}
}

// kickLocked starts the sender of sub if it has something to send.
func (g *gena) kickLocked(sub *subscription) {
	if sub.sending || len(sub.dirty) == 0 {
		return
	}
	sub.sending = true
	if !g.s.goOwned(func(ctx context.Context) { g.sender(ctx, sub) }) {
		sub.sending = false
	}
}

// sender delivers the pending events of sub one by one.
func (g *gena) sender(ctx context.Context, sub *subscription) {
	for {
		g.mu.Lock()
		live := g.subs[sub.sid] == sub && g.s.now().Before(sub.expires)
		if !live || len(sub.dirty) == 0 || ctx.Err() != nil {
			sub.sending = false
			g.mu.Unlock()
			return
		}
		vars := make([]string, 0, len(sub.dirty))
		for _, v := range eventedVars(sub.sv) {
			if sub.dirty[v] {
				vars = append(vars, v)
			}
		}
		clear(sub.dirty)
		seq := sub.seq
		sub.seq++
		if sub.seq == 0 {
			sub.seq = 1 // wraps to 1, not 0 (UDA 1.1 §4.2.1)
		}
		cb := *sub.callback
		g.mu.Unlock()

		err := g.notify(ctx, &cb, sub.sid, seq, g.propertySet(ctx, vars))
		g.mu.Lock()
		if err != nil {
			g.s.st.eventsFailed.Add(1)
			sub.failures++
			g.s.log.Debug("NOTIFY failed", "sid", sub.sid, "err", err)
			if sub.failures >= maxNotifyFailure && g.subs[sub.sid] == sub {
				delete(g.subs, sub.sid)
			}
		} else {
			g.s.st.eventsSent.Add(1)
			sub.failures = 0
		}
		g.mu.Unlock()
	}
}

func (g *gena) propertySet(ctx context.Context, vars []string) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0"?>` + "\n" + `<e:propertyset xmlns:e="urn:schemas-upnp-org:event-1-0">`)
	for _, v := range vars {
		fmt.Fprintf(&b, "<e:property><%s>", v)
		xml.EscapeText(&b, []byte(g.s.value(ctx, v)))
		fmt.Fprintf(&b, "</%s></e:property>", v)
	}
	b.WriteString("</e:propertyset>\n")
	return b.Bytes()
}

// notify sends one NOTIFY with httpd.Do: no proxy, no redirect, no
// keep-alive, within notifyTimeout.
func (g *gena) notify(ctx context.Context, cb *url.URL, sid string, seq uint32, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, notifyTimeout)
	defer cancel()
	h := httpd.Header{}
	h.Set("Content-Type", `text/xml; charset="utf-8"`)
	h.Set("NT", "upnp:event")
	h.Set("NTS", "upnp:propchange")
	h.Set("SID", sid)
	h.Set("SEQ", strconv.FormatUint(uint64(seq), 10))
	code, err := httpd.Do(ctx, "NOTIFY", cb.String(), h, body)
	if err != nil {
		return err
	}
	if code != httpd.StatusOK {
		return fmt.Errorf("NOTIFY: HTTP %d", code)
	}
	return nil
}

// parseTimeout reads a TIMEOUT header (Second-N or infinite) and clamps it.
func parseTimeout(h string) time.Duration {
	h = strings.TrimSpace(h)
	if n, ok := strings.CutPrefix(strings.ToLower(h), "second-"); ok {
		if v, err := strconv.ParseUint(n, 10, 32); err == nil {
			d := time.Duration(v) * time.Second
			return min(max(d, minSubscription), maxSubscription)
		}
	}
	return maxSubscription
}

// callbackFor picks the first CALLBACK URL that points back at the
// subscriber itself: http, an IP literal equal to the TCP peer. Anything
// else could make pcpgw send requests to a third party (CallStranger,
// CVE-2020-12695).
// subscriberKey is the host a subscription counts against: its IPv4
// address, or the /64 of its IPv6 address.
func subscriberKey(a netip.Addr) netip.Addr {
	if a = a.Unmap().WithZone(""); a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

func callbackFor(h string, peer netip.Addr) (*url.URL, bool) {
	if len(h) > maxCallbackLen {
		return nil, false
	}
	for {
		i := strings.IndexByte(h, '<')
		if i < 0 {
			return nil, false
		}
		j := strings.IndexByte(h[i:], '>')
		if j < 0 {
			return nil, false
		}
		raw := h[i+1 : i+j]
		h = h[i+j+1:]
		u, err := url.Parse(raw)
		if err != nil || u.Scheme != "http" || u.User != nil || u.Opaque != "" {
			continue
		}
		a, err := netip.ParseAddr(strings.Trim(u.Hostname(), "[]"))
		if err != nil || a.Unmap().WithZone("") != peer {
			continue
		}
		if p := u.Port(); p != "" {
			if n, err := strconv.ParseUint(p, 10, 16); err != nil || n == 0 {
				continue
			}
		}
		return u, true
	}
}

func newSID() string {
	var b [16]byte
	crand.Must(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("uuid:%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// serve handles SUBSCRIBE and UNSUBSCRIBE on an event URL.
func (g *gena) serve(w httpd.ResponseWriter, r *httpd.Request, sv *service, peer netip.Addr) {
	s := g.s
	sid := r.Header.Get("SID")
	cb := r.Header.Get("CALLBACK")
	nt := r.Header.Get("NT")
	now := s.now()
	switch r.Method {
	case "SUBSCRIBE":
		timeout := parseTimeout(r.Header.Get("TIMEOUT"))
		if sid != "" {
			if cb != "" || nt != "" {
				httpd.Error(w, "SID with CALLBACK or NT", httpd.StatusBadRequest)
				return
			}
			g.mu.Lock()
			sub, ok := g.subs[sid]
			if ok && (sub.sv != sv || !now.Before(sub.expires)) {
				ok = false
			}
			if ok {
				sub.expires = now.Add(timeout)
			}
			g.mu.Unlock()
			if !ok {
				httpd.Error(w, "no such subscription", httpd.StatusPreconditionFailed)
				return
			}
			g.accept(w, sid, timeout)
			return
		}
		if nt != "upnp:event" {
			s.st.subscribeRefused.Add(1)
			httpd.Error(w, "NT must be upnp:event", httpd.StatusPreconditionFailed)
			return
		}
		u, ok := callbackFor(cb, peer)
		if !ok {
			s.st.subscribeRefused.Add(1)
			s.log.Debug("SUBSCRIBE refused: callback is not the subscriber", "client", peer)
			httpd.Error(w, "CALLBACK must point at the subscriber", httpd.StatusPreconditionFailed)
			return
		}
		g.mu.Lock()
		for k, sub := range g.subs {
			if !now.Before(sub.expires) {
				delete(g.subs, k)
			}
		}
		host, mine := subscriberKey(peer), 0
		for _, sub := range g.subs {
			if sub.host == host {
				mine++
			}
		}
		if len(g.subs) >= s.cfg.MaxSubscriptions || mine >= s.cfg.MaxSubscriptionsPerHost {
			g.mu.Unlock()
			s.st.subscribeRefused.Add(1)
			httpd.Error(w, "too many subscriptions", httpd.StatusServiceUnavailable)
			return
		}
		sub := &subscription{sid: newSID(), host: host, sv: sv, callback: u, expires: now.Add(timeout), dirty: make(map[string]bool)}
		for _, v := range eventedVars(sv) {
			sub.dirty[v] = true
		}
		g.subs[sub.sid] = sub
		g.mu.Unlock()
		g.accept(w, sub.sid, timeout)
		// The initial event goes out once the answer carrying the SID
		// has been flushed.
		g.mu.Lock()
		g.kickLocked(sub)
		g.mu.Unlock()
	case "UNSUBSCRIBE":
		if sid == "" {
			httpd.Error(w, "missing SID", httpd.StatusPreconditionFailed)
			return
		}
		if cb != "" || nt != "" {
			httpd.Error(w, "SID with CALLBACK or NT", httpd.StatusBadRequest)
			return
		}
		g.mu.Lock()
		sub, ok := g.subs[sid]
		if ok && sub.sv == sv {
			delete(g.subs, sid)
		}
		g.mu.Unlock()
		if !ok || sub.sv != sv {
			httpd.Error(w, "no such subscription", httpd.StatusPreconditionFailed)
			return
		}
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(httpd.StatusOK)
	default:
		w.Header().Set("Allow", "SUBSCRIBE, UNSUBSCRIBE")
		httpd.Error(w, "method not allowed", httpd.StatusMethodNotAllowed)
	}
}

func (g *gena) accept(w httpd.ResponseWriter, sid string, timeout time.Duration) {
	w.Header().Set("SID", sid)
	w.Header().Set("TIMEOUT", fmt.Sprintf("Second-%d", timeout/time.Second))
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(httpd.StatusOK)
	if f, ok := w.(httpd.Flusher); ok {
		f.Flush()
	}
}
