package webui

import (
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/config"
	"github.com/pcpgw/pcpgw/internal/control"
	"github.com/pcpgw/pcpgw/internal/httpd"
)

// fakeDaemon loads the file as the daemon does on SIGHUP.
type fakeDaemon struct {
	mu      sync.Mutex
	cfg     *config.Config
	rows    []control.Row
	reloads int
	up      *control.Upstream // nil: a PCP server
}

func (d *fakeDaemon) Status() control.Status {
	st := control.Status{Version: "test", Mode: "nat444", ModeConfig: "auto", WAN: "wan0", External: "203.0.113.1",
		Upstream: control.Upstream{Kind: "pcp", KindConfig: "auto", Address: "100.64.0.1:5351", Server: "100.64.0.1:5351", Epoch: 42, Reachable: true}}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.up != nil {
		st.Upstream = *d.up
	}
	return st
}

func (d *fakeDaemon) List() []control.Row {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]control.Row(nil), d.rows...)
}

func (d *fakeDaemon) Config() config.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return *d.cfg
}

func (d *fakeDaemon) reloadCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.reloads
}

func (d *fakeDaemon) Reload() error {
	c, _, err := config.Load(d.cfg.File, nil)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cfg = c
	d.reloads++
	return nil
}

// A configuration file as a subscriber keeps it, with comments.
const baseConf = `# pcpgw on the home router
config pcpgw 'main'
	list lan 'br-lan'
	option wan 'eth1'   # the uplink
	option http_port '5000'
%s
# the NAS, keep it
config forward 'nas'
	# reached from outside too
	option proto 'tcp'
	option ext_port '8443'   # at the provider
	option int_addr '192.0.2.100'
	option description 'NAS web page'

# allow everything high
config perm_rule
	option action 'allow'
	option ext_ports '1024-65535'
	option int_addr '0.0.0.0/0'
	option int_ports '1024-65535'
`

// testHash is "secret" hashed with small parameters (tests run under -race).
var testHash = func() string {
	h, err := hashWith("secret", kdfParams{mem: 64, time: 1, threads: 1})
	if err != nil {
		panic(err)
	}
	return h
}()

type env struct {
	t    *testing.T
	file string
	d    *fakeDaemon
	ui   *UI
	base string // http://127.0.0.1:port
	c    *http.Client
	mu   sync.Mutex
	now  time.Time
}

// newEnv serves a UI on 127.0.0.1; hash "" leaves the password unset.
func newEnv(t *testing.T, hash string) *env {
	t.Helper()
	opt := ""
	if hash != "" {
		opt = "\toption password_hash '" + hash + "'\n"
	}
	e := &env{t: t, file: filepath.Join(t.TempDir(), "pcpgw"), now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	if err := os.WriteFile(e.file, []byte(strings.Replace(baseConf, "%s\n", opt, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := config.Load(e.file, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.d = &fakeDaemon{cfg: cfg, rows: []control.Row{
		{ID: 1, Proto: "tcp", External: "203.0.113.1:8443", Internal: "192.0.2.100:8443", LeaseLeft: -1, Origin: "static", Upstream: "ok", Description: "NAS web page"},
		{ID: 2, Proto: "udp", External: "203.0.113.1:40000", Internal: "192.0.2.7:40000", LeaseLeft: 3599, Origin: "natpmp", Upstream: "ok", Description: "game"},
	}}
	e.ui, err = New(Config{Daemon: e.d, Now: e.clock})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &httpd.Server{Handler: e.ui}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
	e.base = "http://" + ln.Addr().String()
	jar, _ := cookiejar.New(nil)
	e.c = &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return e
}

func (e *env) clock() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.now
}

func (e *env) advance(d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.now = e.now.Add(d)
}

func (e *env) get(path string) (int, string) {
	e.t.Helper()
	resp, err := e.c.Get(e.base + path)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// post sends a form as a browser on the page does (Origin set).
func (e *env) post(path string, form url.Values) (int, string) {
	e.t.Helper()
	req, _ := http.NewRequest("POST", e.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", e.base)
	resp, err := e.c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

// csrf gets the token of the forms of a page.
func (e *env) csrf(path string) string {
	e.t.Helper()
	_, body := e.get(path)
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		e.t.Fatalf("no CSRF token in %s:\n%s", path, body)
	}
	return m[1]
}

// login logs in with the password and returns the session's CSRF token.
func (e *env) login(pw string) string {
	e.t.Helper()
	code, body := e.post("/login", url.Values{"csrf": {e.csrf("/")}, "password": {pw}})
	if code != 303 {
		e.t.Fatalf("login: %d %s", code, body)
	}
	return e.csrf("/")
}

func (e *env) fileText() string {
	e.t.Helper()
	b, err := os.ReadFile(e.file)
	if err != nil {
		e.t.Fatal(err)
	}
	return string(b)
}

type netipAddr = netip.Addr

func addrN(i int) netip.Addr { return netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}) }

func writeFile(t *testing.T, name, text string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

func mustHash(t *testing.T, pw string) string {
	t.Helper()
	h, err := hashWith(pw, kdfParams{mem: 64, time: 1, threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	return h
}
