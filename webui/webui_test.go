package webui

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pcpgw/pcpgw/internal/control"
)

// Without password_hash the page is read-only status: no form, no login,
// every change refused.
func TestReadOnlyWithoutPassword(t *testing.T) {
	e := newEnv(t, "")
	code, body := e.get("/")
	if code != 200 {
		t.Fatalf("GET /: %d", code)
	}
	for _, want := range []string{"Read-only", "203.0.113.1", "100.64.0.1:5351", "epoch 42", "NAS web page", "permanent", "59m59s", "<svg", "nas"} {
		if !strings.Contains(body, want) {
			t.Errorf("status page lacks %q", want)
		}
	}
	for _, not := range []string{"Add a forward", `action="/forward`, `name="csrf"`} {
		if strings.Contains(body, not) {
			t.Errorf("read-only page offers %q", not)
		}
	}
	before := e.fileText()
	for _, p := range []string{"/forward", "/forward/delete", "/forward/toggle", "/login"} {
		if code, _ := e.post(p, url.Values{"id": {"9"}, "name": {"x"}, "ext_port": {"1234"}, "int_addr": {"192.0.2.5"}, "password": {""}}); code != 403 {
			t.Errorf("POST %s: %d, want 403", p, code)
		}
	}
	if code, _ := e.get("/forward"); code != 403 {
		t.Errorf("GET /forward: %d, want 403", code)
	}
	if e.fileText() != before || e.d.reloadCount() != 0 {
		t.Error("the file changed")
	}
}

func TestLoginAndSession(t *testing.T) {
	e := newEnv(t, testHash)
	code, body := e.get("/")
	if code != 200 || !strings.Contains(body, `type="password"`) || strings.Contains(body, "203.0.113.1") {
		t.Fatalf("without a session: %d, want the login form only:\n%s", code, body)
	}
	if code, _ := e.get("/forward"); code != 403 {
		t.Errorf("GET /forward without a session: %d", code)
	}
	// The login form's token is a double-submit cookie: without it, refused.
	if code, _ := e.post("/login", url.Values{"password": {"secret"}}); code != 403 {
		t.Errorf("login without token: %d", code)
	}
	tok := e.csrf("/")
	if code, body := e.post("/login", url.Values{"csrf": {tok}, "password": {"wrong"}}); code != 403 || !strings.Contains(body, "Wrong password") {
		t.Errorf("wrong password: %d %s", code, body)
	}
	req, _ := http.NewRequest("POST", e.base+"/login", strings.NewReader(url.Values{"csrf": {tok}, "password": {"secret"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := e.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 303 {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	var set string
	for _, c := range resp.Header.Values("Set-Cookie") {
		if strings.HasPrefix(c, sessionCookie+"=") {
			set = c
		}
	}
	if !strings.Contains(set, "HttpOnly") || !strings.Contains(set, "SameSite=Strict") || len(strings.TrimPrefix(strings.Split(set, ";")[0], sessionCookie+"=")) != 32 {
		t.Errorf("session cookie %q: want a 128-bit ID, HttpOnly, SameSite=Strict", set)
	}
	_, body = e.get("/")
	if !strings.Contains(body, "Add a forward") || !strings.Contains(body, "203.0.113.1") {
		t.Errorf("logged in, the page has no editing:\n%s", body)
	}
	// Idle sessions end.
	e.advance(31 * time.Minute)
	if _, body := e.get("/"); !strings.Contains(body, `type="password"`) {
		t.Error("an idle session still works")
	}
	// A new password ends the sessions made with the old one.
	e.login("secret")
	text := strings.Replace(e.fileText(), testHash, mustHash(t, "other"), 1)
	writeFile(t, e.file, text)
	if _, body := e.get("/"); !strings.Contains(body, `type="password"`) {
		t.Error("a session survived a new password")
	}
	// Logout ends the session.
	tok = e.login("other")
	if code, _ := e.post("/logout", url.Values{"csrf": {tok}}); code != 303 {
		t.Errorf("logout: %d", code)
	}
	if _, body := e.get("/"); !strings.Contains(body, `type="password"`) {
		t.Error("logged out, still in")
	}
}

// Every POST needs the session's token, and cross-origin POSTs are refused
// even with it.
func TestCSRF(t *testing.T) {
	e := newEnv(t, testHash)
	tok := e.login("secret")
	form := url.Values{"name": {"web"}, "proto": {"tcp"}, "ext_port": {"8080"}, "int_addr": {"192.0.2.10"}, "int_port": {"80"}, "enabled": {"1"}}
	before := e.fileText()
	for _, bad := range []string{"", "00000000000000000000000000000000", tok + "0"} {
		form.Set("csrf", bad)
		if code, _ := e.post("/forward", form); code != 403 {
			t.Errorf("token %q: %d, want 403", bad, code)
		}
	}
	form.Set("csrf", tok)
	for _, hdr := range [][2]string{{"Origin", "http://evil.example"}, {"Origin", "null"}, {"Referer", "http://evil.example/x"}} {
		req, _ := http.NewRequest("POST", e.base+"/forward", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set(hdr[0], hdr[1])
		resp, err := e.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 403 {
			t.Errorf("%s: %s: %d, want 403", hdr[0], hdr[1], resp.StatusCode)
		}
	}
	if e.fileText() != before {
		t.Fatal("a refused POST changed the file")
	}
	if code, body := e.post("/forward", form); code != 303 {
		t.Fatalf("good POST: %d %s", code, body)
	}
}

// A DNS-rebound name in the Host header is refused, as the IGD does.
func TestHostHeader(t *testing.T) {
	e := newEnv(t, "")
	for _, host := range []string{"evil.example", "router.lan:" + strings.Split(e.base, ":")[2], "127.0.0.1:1", "127.0.0.2:" + strings.Split(e.base, ":")[2]} {
		req, _ := http.NewRequest("GET", e.base+"/", nil)
		req.Host = host
		resp, err := e.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 403 {
			t.Errorf("Host %q: %d, want 403", host, resp.StatusCode)
		}
	}
	if got := e.ui.Counters()["webui_bad_host"]; got != 4 {
		t.Errorf("bad host counter %d, want 4", got)
	}
}

// Adding, editing, disabling and deleting forwards edits the file in place:
// comments and the other sections stay, and the daemon reloads each time.
func TestForwardsFileRoundTrip(t *testing.T) {
	e := newEnv(t, testHash)
	tok := e.login("secret")
	orig := e.fileText()
	add := url.Values{"csrf": {tok}, "name": {"web server"}, "proto": {"both"}, "ext_port": {"8080"}, "int_addr": {"192.0.2.10"},
		"int_port": {""}, "enabled": {"1"}, "description": {"it's mine"}}
	if code, body := e.post("/forward", add); code != 303 {
		t.Fatalf("add: %d %s", code, body)
	}
	want := orig + `
config forward
	option name 'web server'
	option proto 'both'
	option ext_port '8080'
	option int_addr '192.0.2.10'
	option int_port '8080'
	option enabled '1'
	option description 'it'\''s mine'
`
	if diff := cmp.Diff(want, e.fileText()); diff != "" {
		t.Fatalf("after add (-want +got):\n%s", diff)
	}
	if e.d.reloadCount() != 1 || len(e.d.Config().Forwards) != 2 {
		t.Fatalf("reloads %d, forwards %+v", e.d.reloadCount(), e.d.Config().Forwards)
	}
	_, body := e.get("/")
	if !strings.Contains(body, "web server") || !strings.Contains(body, "not mapped") || !strings.Contains(body, `class="active">active (203.0.113.1:8443)`) {
		t.Errorf("the list does not show both forwards and their state:\n%s", body)
	}

	// Edit the NAS (line 8) in place: its section keeps its name, the
	// comments above and inside it stay, so do its unchanged options and
	// their order; the changed port's line keeps its comment; new options
	// follow the last one.
	nas := e.d.Config().Forwards[0]
	if code, body := e.get("/forward?id=8"); code != 200 || !strings.Contains(body, `value="192.0.2.100"`) {
		t.Fatalf("edit form: %d %s", code, body)
	}
	edit := url.Values{"csrf": {tok}, "id": {"8"}, "name": {nas.Name}, "proto": {"tcp"}, "ext_port": {"8444"}, "int_addr": {"192.0.2.100"},
		"int_port": {"443"}, "enabled": {"1"}, "description": {"NAS web page"}}
	if code, body := e.post("/forward", edit); code != 303 {
		t.Fatalf("edit: %d %s", code, body)
	}
	want = strings.Replace(want, `config forward 'nas'
	# reached from outside too
	option proto 'tcp'
	option ext_port '8443'   # at the provider
	option int_addr '192.0.2.100'
	option description 'NAS web page'
`, `config forward 'nas'
	# reached from outside too
	option proto 'tcp'
	option ext_port '8444' # at the provider
	option int_addr '192.0.2.100'
	option description 'NAS web page'
	option name 'nas'
	option int_port '443'
	option enabled '1'
`, 1)
	if diff := cmp.Diff(want, e.fileText()); diff != "" {
		t.Fatalf("after edit (-want +got):\n%s", diff)
	}

	// Disable the web server, then delete it.
	web := e.d.Config().Forwards[1]
	if code, body := e.post("/forward/toggle", url.Values{"csrf": {tok}, "id": {itoa(web.Line)}}); code != 303 {
		t.Fatalf("toggle: %d %s", code, body)
	}
	if f := e.d.Config().Forwards[1]; f.Enabled || !strings.Contains(e.fileText(), "option enabled '0'") {
		t.Fatalf("not disabled: %+v", f)
	}
	if code, body := e.post("/forward/delete", url.Values{"csrf": {tok}, "id": {itoa(web.Line)}}); code != 303 {
		t.Fatalf("delete: %d %s", code, body)
	}
	want = strings.TrimSuffix(want[:strings.Index(want, "\nconfig forward\n")], "") + "\n"
	if diff := cmp.Diff(strings.TrimRight(want, "\n")+"\n", e.fileText()); diff != "" {
		t.Fatalf("after delete (-want +got):\n%s", diff)
	}
	if e.d.reloadCount() != 4 {
		t.Errorf("reloads %d, want 4", e.d.reloadCount())
	}
	// A stale id (the file changed meanwhile) is refused, not misapplied.
	if code, _ := e.post("/forward/delete", url.Values{"csrf": {tok}, "id": {itoa(web.Line)}}); code != 409 {
		t.Errorf("delete of a gone forward: %d, want 409", code)
	}
}

// A forward the provider refuses is listed as failing with the provider's
// reason and the time to the next request, in its own row of the forwards
// (and next to the mapping in the mappings table).
func TestForwardFailingReason(t *testing.T) {
	e := newEnv(t, testHash)
	e.login("secret")
	const reason = "CANNOT_PROVIDE_EXTERNAL: the provider refused external port 8443"
	e.d.mu.Lock()
	e.d.rows[0] = control.Row{ID: 1, Proto: "tcp", WANPort: 8443, Internal: "192.0.2.100:8443", LeaseLeft: -1, Origin: "static",
		Upstream: "failing", Description: "NAS web page", Error: reason, RetryAt: e.clock().Add(25 * time.Second)}
	e.d.mu.Unlock()
	_, body := e.get("/")
	i := strings.Index(body, `<table class="cards" id="forwards">`)
	if i < 0 {
		t.Fatalf("no forwards table:\n%s", body)
	}
	row := body[i:]
	row = row[strings.Index(row, "<tr><td>nas</td>"):]
	row = row[:strings.Index(row, "</tr>")]
	if want := `<td class="failing">failing<span class="why">` + htmlEsc(reason) + `; asked again in 25s</span></td>`; !strings.Contains(row, want) {
		t.Errorf("the NAS's row lacks the reason %s:\n%s", want, row)
	}
	if want := `<td class="failing">failing<span class="why">` + htmlEsc(reason) + `</span></td>`; !strings.Contains(body[:i], want) {
		t.Errorf("the mappings table lacks the reason:\n%s", body[:i])
	}
	// Active again: no reason left.
	e.d.mu.Lock()
	e.d.rows[0] = control.Row{ID: 1, Proto: "tcp", External: "203.0.113.1:8443", WANPort: 8443, Internal: "192.0.2.100:8443", LeaseLeft: -1,
		Origin: "static", Upstream: "ok", Description: "NAS web page"}
	e.d.mu.Unlock()
	if _, body := e.get("/"); strings.Contains(body, `class="why"`) || !strings.Contains(body, `class="active">active (203.0.113.1:8443)`) {
		t.Errorf("active forward:\n%s", body)
	}
}

// The file edited by hand after the last reload: the page reloads and asks
// to look again instead of editing the wrong section.
func TestForwardsStaleFile(t *testing.T) {
	e := newEnv(t, testHash)
	tok := e.login("secret")
	writeFile(t, e.file, "# moved\n\n"+e.fileText())
	before := e.fileText()
	code, body := e.post("/forward/delete", url.Values{"csrf": {tok}, "id": {"8"}})
	if code != 400 || !strings.Contains(body, "changed since pcpgw read it") {
		t.Fatalf("stale delete: %d %s", code, body)
	}
	if e.fileText() != before || e.d.reloadCount() != 1 {
		t.Fatalf("file changed or not reloaded (%d)", e.d.reloadCount())
	}
	if code, _ := e.post("/forward/delete", url.Values{"csrf": {tok}, "id": {"10"}}); code != 303 {
		t.Fatalf("delete after reload: %d", code)
	}
	if strings.Contains(e.fileText(), "'nas'") || !strings.Contains(e.fileText(), "# the NAS, keep it") {
		t.Errorf("after delete:\n%s", e.fileText())
	}
}

// Bad forwards are refused with the message next to the field, and the
// file is left alone.
func TestForwardValidation(t *testing.T) {
	e := newEnv(t, testHash)
	tok := e.login("secret")
	good := func() url.Values {
		return url.Values{"csrf": {tok}, "name": {"web"}, "proto": {"tcp"}, "ext_port": {"8080"}, "int_addr": {"192.0.2.10"}, "int_port": {"80"}, "enabled": {"1"}}
	}
	tests := []struct {
		name, key, value, field, msg string
	}{
		{"no name", "name", "", "name", "A name is needed."},
		{"name used", "name", "nas", "name", "name already used"},
		{"port text", "ext_port", "http", "ext_port", "A port from 1 to 65535."},
		{"port zero", "ext_port", "0", "ext_port", "A port from 1 to 65535."},
		{"port big", "ext_port", "65536", "ext_port", "A port from 1 to 65535."},
		{"pcp port", "ext_port", "5351", "ext_port", "is the NAT-PMP/PCP port"},
		{"pcp client port", "ext_port", "5350", "ext_port", "is the NAT-PMP/PCP port"},
		{"http port", "ext_port", "5000", "ext_port", "pcpgw&#39;s UPnP HTTP port"},
		{"duplicate", "ext_port", "8443", "ext_port", "already forwarded by"},
		{"int port", "int_port", "99999", "int_port", "A port from 1 to 65535."},
		{"addr text", "int_addr", "nas.lan", "int_addr", "An IP address of a LAN host"},
		{"addr loopback", "int_addr", "127.0.0.1", "int_addr", "is not a LAN host&#39;s address"},
		{"addr multicast", "int_addr", "239.1.1.1", "int_addr", "is not a LAN host&#39;s address"},
		{"addr unspecified", "int_addr", "0.0.0.0", "int_addr", "is not a LAN host&#39;s address"},
		{"proto", "proto", "sctp", "proto", "Choose tcp, udp or both."},
		{"description", "description", "bell\a", "description", "printable"},
	}
	before := e.fileText()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := good()
			f.Set(tt.key, tt.value)
			code, body := e.post("/forward", f)
			if code != 400 {
				t.Fatalf("%d, want 400", code)
			}
			want := `<span class="err" id="` + tt.field + `-err">`
			i := strings.Index(body, want)
			if i < 0 || !strings.Contains(body[i:i+len(want)+120], tt.msg) {
				t.Errorf("no %q next to %s:\n%s", tt.msg, tt.field, body)
			}
			if !strings.Contains(body, `value="`+htmlEsc(tt.value)+`"`) && tt.key != "proto" {
				t.Errorf("the typed value %q is not kept in the form", tt.value)
			}
		})
	}
	// A disabled duplicate is fine, as config allows.
	f := good()
	f.Set("ext_port", "8443")
	f.Del("enabled")
	if code, body := e.post("/forward", f); code != 303 {
		t.Errorf("disabled duplicate: %d %s", code, body)
	}
	// Enabling it then is refused, with the reason shown.
	web := e.d.Config().Forwards[1]
	code, body := e.post("/forward/toggle", url.Values{"csrf": {tok}, "id": {itoa(web.Line)}})
	if code != 400 || !strings.Contains(body, "already forwarded by") {
		t.Errorf("enabling a duplicate: %d %s", code, body)
	}
	if e.fileText() == before {
		t.Error("the disabled forward was not saved")
	}
}

func htmlEsc(s string) string {
	return strings.NewReplacer("'", "&#39;", "\a", "\a").Replace(s)
}

// Login attempts are limited per address: five at once, then one every
// 30 s; the right password does not get through while limited.
func TestLoginRateLimit(t *testing.T) {
	e := newEnv(t, testHash)
	tok := e.csrf("/")
	for i := range 5 {
		if code, _ := e.post("/login", url.Values{"csrf": {tok}, "password": {"guess"}}); code != 403 {
			t.Fatalf("attempt %d: %d, want 403", i, code)
		}
	}
	if code, body := e.post("/login", url.Values{"csrf": {tok}, "password": {"secret"}}); code != 429 || !strings.Contains(body, "Too many") {
		t.Fatalf("6th attempt: %d, want 429", code)
	}
	e.advance(30 * time.Second)
	if code, _ := e.post("/login", url.Values{"csrf": {tok}, "password": {"secret"}}); code != 303 {
		t.Fatalf("after 30 s: %d, want 303", code)
	}
	c := e.ui.Counters()
	if c["webui_login_limited"] != 1 || c["webui_login_failed"] != 5 {
		t.Errorf("counters %v", c)
	}
}

// Over all addresses: 20 at once, then one every 5 s; the table of
// addresses is bounded.
func TestLimiterGlobal(t *testing.T) {
	l := &limiter{per: map[netipAddr]*bucket{}, maxAddrs: 64, burst: 5, every: 30 * time.Second, globalBurst: 20, globalEvery: 5 * time.Second}
	now := time.Unix(1000, 0)
	ok := 0
	for i := range 100 {
		if l.allow(addrN(i), now) {
			ok++
		}
	}
	if ok != 20 {
		t.Errorf("%d allowed at once over many addresses, want 20", ok)
	}
	if len(l.per) > 64 {
		t.Errorf("%d addresses kept", len(l.per))
	}
	if l.allow(addrN(200), now.Add(time.Second)) {
		t.Error("allowed with the global bucket empty")
	}
	now = now.Add(10 * time.Minute)
	if !l.allow(addrN(201), now) {
		t.Error("a new address refused after the buckets refilled")
	}
}

func TestSessionsBounded(t *testing.T) {
	s := &sessions{m: map[string]*session{}, max: 2, idle: time.Minute, life: time.Hour}
	now := time.Unix(1000, 0)
	a, _ := s.create(now, "h")
	b, _ := s.create(now.Add(time.Second), "h")
	c, _ := s.create(now.Add(2*time.Second), "h")
	if _, ok := s.get(a, now.Add(3*time.Second)); ok {
		t.Error("the oldest session was kept beyond the bound")
	}
	for _, id := range []string{b, c} {
		if _, ok := s.get(id, now.Add(3*time.Second)); !ok {
			t.Error("a recent session was dropped")
		}
	}
	if len(a) != 32 || a == b {
		t.Errorf("IDs %q %q", a, b)
	}
	// Used within the idle time, a session lives until its life ends.
	t0 := now.Add(3 * time.Second)
	for t0.Before(now.Add(time.Hour - time.Minute)) {
		t0 = t0.Add(50 * time.Second)
		if _, ok := s.get(b, t0); !ok {
			t.Fatalf("session ended at %v while in use", t0.Sub(now))
		}
	}
	if _, ok := s.get(b, now.Add(time.Hour+2*time.Second)); ok {
		t.Error("a session outlived its life")
	}
}

func TestPasswordHash(t *testing.T) {
	h, err := HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("hash %q", h)
	}
	h2, _ := hashWith("correct horse", kdfParams{mem: 64, time: 1, threads: 1})
	if h2 == testHash || strings.Split(h2, "$")[4] == strings.Split(testHash, "$")[4] {
		t.Error("salts repeat")
	}
	for _, c := range []struct {
		hash, pw string
		want     bool
	}{{h, "correct horse", true}, {h, "correct horse ", false}, {testHash, "secret", true}, {testHash, "", false}} {
		got, err := CheckPassword(c.hash, c.pw)
		if err != nil || got != c.want {
			t.Errorf("CheckPassword(%q, %q) = %v, %v", c.hash, c.pw, got, err)
		}
	}
	parts := strings.Split(testHash, "$")
	for _, bad := range []string{"", "secret", "$argon2i$v=19$m=64,t=1,p=1$" + parts[4] + "$" + parts[5],
		"$argon2id$v=19$m=1048576,t=1,p=1$" + parts[4] + "$" + parts[5], // 1 GiB: refused, not computed
		"$argon2id$v=19$m=64,t=100,p=1$" + parts[4] + "$" + parts[5],
		"$argon2id$v=19$m=64,t=1,p=1$!!$" + parts[5],
		"$argon2id$v=19$m=64,t=1,x=1$" + parts[4] + "$" + parts[5]} {
		if _, err := CheckPassword(bad, "secret"); !errors.Is(err, ErrBadHash) {
			t.Errorf("CheckPassword(%q): %v, want ErrBadHash", bad, err)
		}
	}
	if _, err := HashPassword(""); err == nil {
		t.Error("empty password hashed")
	}
}

func TestChart(t *testing.T) {
	h := NewHistory(60, time.Minute)
	now := time.Unix(100000, 0)
	if svg := string(h.SVG(now)); !strings.Contains(svg, "no samples yet") {
		t.Errorf("empty chart: %s", svg)
	}
	for i := range 90 {
		h.Add(now.Add(time.Duration(i-89)*time.Minute), i)
	}
	s := h.Samples()
	if len(s) != 60 || s[0].Count != 30 || s[59].Count != 89 {
		t.Fatalf("ring: %d samples, first %+v last %+v", len(s), s[0], s[len(s)-1])
	}
	svg := string(h.SVG(now))
	pts := svg[strings.Index(svg, `points="`)+8:]
	pts = pts[:strings.IndexByte(pts, '"')]
	if n := len(strings.Fields(pts)); n != 60 {
		t.Errorf("%d points, want 60", n)
	}
	if !strings.Contains(svg, ">89<") || !strings.Contains(svg, "-60 min") || !strings.HasPrefix(svg, "<svg") {
		t.Errorf("chart: %s", svg)
	}
	// Samples older than the hour leave the chart.
	if svg := string(h.SVG(now.Add(2 * time.Hour))); !strings.Contains(svg, "no samples yet") {
		t.Error("old samples drawn")
	}
}

// Sample reads the daemon's list once per call.
func TestSample(t *testing.T) {
	e := newEnv(t, "")
	e.ui.Sample()
	e.advance(time.Minute)
	e.ui.Sample()
	s := e.ui.hist.Samples()
	if len(s) != 2 || s[1].Count != 2 || s[1].At.Sub(s[0].At) != time.Minute {
		t.Errorf("samples %+v", s)
	}
}

func TestBadRequests(t *testing.T) {
	e := newEnv(t, testHash)
	tok := e.login("secret")
	for _, c := range []struct {
		method, path, ctype, body string
		want                      int
	}{
		{"GET", "/nowhere", "", "", 404},
		{"PUT", "/", "", "", 405},
		{"POST", "/forward", "text/plain", "csrf=" + tok, 415},
		{"POST", "/forward", "application/x-www-form-urlencoded", "csrf=%zz", 400},
		{"POST", "/forward/delete", "application/x-www-form-urlencoded", "csrf=" + tok, 400},
		{"GET", "/forward?id=77", "", "", 404},
	} {
		req, _ := http.NewRequest(c.method, e.base+c.path, strings.NewReader(c.body))
		if c.ctype != "" {
			req.Header.Set("Content-Type", c.ctype)
		}
		resp, err := e.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, resp.StatusCode, c.want)
		}
	}
}

// Text from LAN hosts (a UPnP description) and from the file is escaped.
func TestEscaping(t *testing.T) {
	e := newEnv(t, "")
	e.d.mu.Lock()
	e.d.rows[1].Description = `<script>alert(1)</script>"'&`
	e.d.mu.Unlock()
	_, body := e.get("/")
	if strings.Contains(body, "<script>") || !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;&#34;&#39;&amp;") {
		t.Errorf("description not escaped:\n%s", body)
	}
	if strings.Contains(body, "<script") {
		t.Error("a script element in the page")
	}
}

// TestUpstreamShown: the page names the upstream (issue 15): an ISP box's
// IGD with its name and the address it reports, and, with nothing
// upstream forwarding ports, the advice.
func TestUpstreamShown(t *testing.T) {
	for _, tc := range []struct {
		up   control.Upstream
		want []string
	}{
		{control.Upstream{Kind: "upnp", KindConfig: "auto", Address: "100.64.0.1:5000", External: "203.0.113.1",
			Device: &control.Device{FriendlyName: "ISP box", Manufacturer: "Lab", Model: "LabBox <1>"}},
			[]string{"the ISP box's UPnP IGD (ISP box Lab LabBox &lt;1&gt;) at 100.64.0.1:5000, which reports 203.0.113.1"}},
		{control.Upstream{Kind: "none", KindConfig: "auto", Advice: "Nothing upstream forwards ports: set this router as DMZ."},
			[]string{"nothing upstream forwards ports", `id="advice"`, "set this router as DMZ"}},
		{control.Upstream{Kind: "natpmp", KindConfig: "natpmp", Address: "100.64.0.1:5351", Server: "100.64.0.1:5351"},
			[]string{"a NAT-PMP gateway at 100.64.0.1:5351 (configured)", "PCP server"}},
	} {
		e := newEnv(t, "")
		e.d.mu.Lock()
		e.d.up = &tc.up
		e.d.mu.Unlock()
		_, body := e.get("/")
		for _, w := range tc.want {
			if !strings.Contains(body, w) {
				t.Errorf("%s: page lacks %q", tc.up.Kind, w)
			}
		}
	}
}
