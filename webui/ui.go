package webui

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pcpgw/pcpgw/config"
	"github.com/pcpgw/pcpgw/config/uci"
	"github.com/pcpgw/pcpgw/internal/control"
	"github.com/pcpgw/pcpgw/internal/httpd"
)

// Daemon is what the page needs from the running daemon; cmd/pcpgw
// implements it.
type Daemon interface {
	// Status and List are what `pcpgw status` and `pcpgw list` show.
	Status() control.Status
	List() []control.Row
	// Config is the configuration in force: File names the UCI file
	// (password_hash and the forward sections are read from and written
	// to it; "" makes the page read-only) and each Forward's Line is the
	// line of its section there.
	Config() config.Config
	// Reload re-reads the file and applies it, as SIGHUP does; when it
	// returns, Config gives the new forwards.
	Reload() error
}

// Config configures the page.
type Config struct {
	// Daemon is required.
	Daemon Daemon
	// IsLANAddr reports whether a is one of pcpgw's LAN addresses: a
	// request's Host header must name such an address (or the address the
	// request arrived on) with the port it arrived on (DNS rebinding).
	// nil: only the address the request arrived on.
	IsLANAddr func(a netip.Addr) bool
	// Now is the clock. nil: time.Now.
	Now func() time.Time
	// Log receives the page's logs (logins, saved forwards). nil: discard.
	Log *slog.Logger
	// MaxSessions bounds the logged-in browsers; beyond it the least
	// recently used session ends. 0: 8.
	MaxSessions int
	// SessionIdle ends a session unused for this long. 0: 30 minutes. No
	// session lasts more than 12 hours.
	SessionIdle time.Duration
}

// Cookie names.
const (
	sessionCookie = "pcpgw_session"
	loginCookie   = "pcpgw_login" // double-submit token of the login form
)

// UI is the subscriber's page, an httpd.Handler.
type UI struct {
	d        Daemon
	isLAN    func(netip.Addr) bool
	now      func() time.Time
	log      *slog.Logger
	sess     *sessions
	lim      *limiter
	hist     *History
	kdf      sync.Mutex // one password check at a time: each takes 19 MiB
	edit     sync.Mutex // one file edit at a time
	badHost  atomic.Uint64
	badOrig  atomic.Uint64
	limited  atomic.Uint64
	failures atomic.Uint64
}

// New makes the page.
func New(c Config) (*UI, error) {
	if c.Daemon == nil {
		return nil, errors.New("webui: no Daemon")
	}
	u := &UI{d: c.Daemon, isLAN: c.IsLANAddr, now: c.Now, log: c.Log}
	if u.now == nil {
		u.now = time.Now
	}
	if u.log == nil {
		u.log = slog.New(slog.DiscardHandler)
	}
	u.log = u.log.With("component", "webui")
	if u.isLAN == nil {
		u.isLAN = func(netip.Addr) bool { return false }
	}
	u.sess = &sessions{m: map[string]*session{}, max: c.MaxSessions, idle: c.SessionIdle, life: 12 * time.Hour}
	if u.sess.max <= 0 {
		u.sess.max = 8
	}
	if u.sess.idle <= 0 {
		u.sess.idle = 30 * time.Minute
	}
	u.lim = &limiter{per: map[netip.Addr]*bucket{}, maxAddrs: 64,
		burst: 5, every: 30 * time.Second, globalBurst: 20, globalEvery: 5 * time.Second}
	u.hist = NewHistory(60, time.Minute)
	return u, nil
}

// Counters gives the page's counters: requests refused for their Host
// header or their Origin, login attempts refused by the rate limit, and
// wrong passwords.
func (u *UI) Counters() map[string]uint64 {
	return map[string]uint64{"webui_bad_host": u.badHost.Load(), "webui_cross_origin": u.badOrig.Load(),
		"webui_login_limited": u.limited.Load(), "webui_login_failed": u.failures.Load()}
}

// Run samples the number of live mappings once a minute for the chart
// until ctx ends.
func (u *UI) Run(ctx context.Context) error {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	u.Sample()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			u.Sample()
		}
	}
}

// Sample records the number of live mappings now (Run calls it).
func (u *UI) Sample() { u.hist.Add(u.now(), len(u.d.List())) }

// hostOK: the Host header names pcpgw's LAN side with the port of this
// connection.
func (u *UI) hostOK(r *httpd.Request) bool {
	ap, err := netip.ParseAddrPort(r.Host)
	if err != nil || !r.LocalAddr.IsValid() || ap.Port() != r.LocalAddr.Port() {
		return false
	}
	a := ap.Addr().Unmap().WithZone("")
	return a == r.LocalAddr.Addr().Unmap().WithZone("") || u.isLAN(a)
}

// sameOrigin: a POST's Origin (or, without one, its Referer) when present
// names this page.
func sameOrigin(r *httpd.Request) bool {
	self := "http://" + r.Host
	if o := r.Header.Get("Origin"); o != "" {
		return o == self
	}
	if ref := r.Header.Get("Referer"); ref != "" {
		return ref == self || strings.HasPrefix(ref, self+"/")
	}
	return true
}

func cookie(r *httpd.Request, name string) string {
	for _, line := range r.Header.Values("Cookie") {
		for _, kv := range strings.Split(line, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
			if ok && k == name {
				return v
			}
		}
	}
	return ""
}

func setCookie(w httpd.ResponseWriter, name, value string, maxAge int) {
	w.Header().Add("Set-Cookie", name+"="+value+"; Path=/; Max-Age="+itoa(maxAge)+"; HttpOnly; SameSite=Strict")
}

// auth is what a request may do.
type auth struct {
	hash     string // "" no password: read-only status
	hashErr  error  // the file's hash cannot be read
	loggedIn bool
	sid      string
	csrf     string
}

func (a auth) canEdit() bool { return a.hash != "" && a.loggedIn }

// passwordHash reads password_hash from the pcpgw section of the file.
func (u *UI) passwordHash() (string, error) {
	file := u.d.Config().File
	if file == "" {
		return "", nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	f, err := uci.Parse(file, bytes.NewReader(b))
	if err != nil {
		return "", err
	}
	for _, s := range f.OfType("pcpgw") {
		if o := s.Option("password_hash"); o != nil && len(o.Values) > 0 {
			return o.Values[len(o.Values)-1], nil
		}
	}
	return "", nil
}

func (u *UI) auth(r *httpd.Request) auth {
	var a auth
	a.hash, a.hashErr = u.passwordHash()
	if a.hashErr != nil {
		// Unreadable file: nobody may change anything.
		a.hash = ""
	}
	if a.hash == "" {
		return a
	}
	if sid := cookie(r, sessionCookie); sid != "" {
		if s, ok := u.sess.get(sid, u.now()); ok && s.hash == a.hash {
			a.loggedIn, a.sid, a.csrf = true, sid, s.csrf
		}
	}
	return a
}

// ServeHTTP answers every path the IGD does not own.
func (u *UI) ServeHTTP(w httpd.ResponseWriter, r *httpd.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	if !u.hostOK(r) {
		u.badHost.Add(1)
		httpd.Error(w, "forbidden host", httpd.StatusForbidden)
		return
	}
	if r.Method == "POST" && !sameOrigin(r) {
		u.badOrig.Add(1)
		httpd.Error(w, "cross-origin request refused", httpd.StatusForbidden)
		return
	}
	var form url.Values
	if r.Method == "POST" {
		ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
		if ct != "application/x-www-form-urlencoded" {
			httpd.Error(w, "form expected", httpd.StatusUnsupportedMediaType)
			return
		}
		var err error
		if form, err = url.ParseQuery(string(r.Body)); err != nil {
			httpd.Error(w, "bad form", httpd.StatusBadRequest)
			return
		}
	}
	a := u.auth(r)
	switch {
	case r.Path == "/" && (r.Method == "GET" || r.Method == "HEAD"):
		u.index(w, r, a, "", httpd.StatusOK)
	case r.Path == "/login" && r.Method == "POST":
		u.login(w, r, a, form)
	case r.Path == "/logout" && r.Method == "POST":
		if a.loggedIn && u.csrfOK(a, form) {
			u.sess.remove(a.sid)
		}
		setCookie(w, sessionCookie, "", 0)
		redirect(w, "/")
	case r.Path == "/forward" && r.Method == "GET", strings.HasPrefix(r.Path, "/forward") && r.Method == "POST":
		if !a.canEdit() {
			httpd.Error(w, "log in first (pcpgw passwd sets the password)", httpd.StatusForbidden)
			return
		}
		if r.Method == "POST" && !u.csrfOK(a, form) {
			httpd.Error(w, "bad or missing CSRF token: reload the page", httpd.StatusForbidden)
			return
		}
		u.forward(w, r, a, form)
	case r.Path == "/" || r.Path == "/login" || r.Path == "/logout" || r.Path == "/forward":
		httpd.Error(w, "method not allowed", httpd.StatusMethodNotAllowed)
	default:
		httpd.Error(w, "not found", httpd.StatusNotFound)
	}
}

func (u *UI) csrfOK(a auth, form url.Values) bool {
	t := form.Get("csrf")
	return a.csrf != "" && subtle.ConstantTimeCompare([]byte(t), []byte(a.csrf)) == 1
}

func redirect(w httpd.ResponseWriter, to string) {
	w.Header().Set("Location", to)
	w.WriteHeader(303)
}

func (u *UI) login(w httpd.ResponseWriter, r *httpd.Request, a auth, form url.Values) {
	if a.hash == "" {
		httpd.Error(w, "no password is set: run pcpgw passwd on the router", httpd.StatusForbidden)
		return
	}
	lt := cookie(r, loginCookie)
	if lt == "" || subtle.ConstantTimeCompare([]byte(lt), []byte(form.Get("csrf"))) != 1 {
		httpd.Error(w, "bad or missing CSRF token: reload the page", httpd.StatusForbidden)
		return
	}
	peer := r.RemoteAddr.Addr().Unmap().WithZone("")
	if !u.lim.allow(peer, u.now()) {
		u.limited.Add(1)
		u.index(w, r, a, "Too many login attempts: wait a minute.", 429)
		return
	}
	u.kdf.Lock()
	ok, err := CheckPassword(a.hash, form.Get("password"))
	u.kdf.Unlock()
	if err != nil {
		u.log.Error("password_hash unusable: set it again with pcpgw passwd", "err", err)
		u.index(w, r, a, "The password hash in the configuration file is not usable: set it again with pcpgw passwd.", httpd.StatusInternalServerError)
		return
	}
	if !ok {
		u.failures.Add(1)
		u.log.Info("wrong password", "client", peer)
		u.index(w, r, a, "Wrong password.", httpd.StatusForbidden)
		return
	}
	sid, _ := u.sess.create(u.now(), a.hash)
	setCookie(w, sessionCookie, sid, int(u.sess.life/time.Second))
	setCookie(w, loginCookie, "", 0)
	u.log.Info("logged in", "client", peer)
	redirect(w, "/")
}

// render writes a page.
func (u *UI) render(w httpd.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	io.WriteString(w, body)
}

var _ httpd.Handler = (*UI)(nil)
