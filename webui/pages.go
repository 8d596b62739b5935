package webui

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/pcpgw/pcpgw/config"
	"github.com/pcpgw/pcpgw/config/uci"
	"github.com/pcpgw/pcpgw/config/ucied"
	"github.com/pcpgw/pcpgw/internal/control"
	"github.com/pcpgw/pcpgw/internal/httpd"
)

func itoa(n int) string { return strconv.Itoa(n) }

// leaseText shows a lease left in seconds (-1: permanent).
func leaseText(s int64) string {
	if s < 0 {
		return "permanent"
	}
	d := time.Duration(s) * time.Second
	if d >= time.Hour {
		return fmt.Sprintf("%dh%02dm", d/time.Hour, d%time.Hour/time.Minute)
	}
	return fmt.Sprintf("%dm%02ds", d/time.Minute, d%time.Minute/time.Second)
}

func agoText(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t).Round(time.Second)
	if d < 0 {
		d = 0
	}
	return d.String() + " ago"
}

// fwView is a forward as listed: its configuration and its mappings'
// state at the provider.
type fwView struct {
	config.Forward
	State    string // "active", "pending", "failing", "disabled", "not mapped"
	External string
	// Why is the provider's reason while pending or failing, with the
	// time to the next request ("" when it has none).
	Why string
}

type indexData struct {
	Status     control.Status
	Rows       []control.Row
	LastAnswer string
	Chart      string // SVG, numbers and fixed text only
	Forwards   []fwView
	CanEdit    bool
	NoPassword bool
	HashErr    string
	CSRF       string
	Msg        string
	LoginToken string
	// RetryRefresh reloads the page (seconds) when a failing mapping is
	// next asked for, so its "asked again in" is not left stale; 0: none.
	RetryRefresh int
}

func (u *UI) index(w httpd.ResponseWriter, r *httpd.Request, a auth, msg string, code int) {
	if a.hash != "" && !a.loggedIn {
		lt := cookie(r, loginCookie)
		if len(lt) != 32 {
			lt = randomToken()
			setCookie(w, loginCookie, lt, 3600)
		}
		u.render(w, code, renderLogin(indexData{LoginToken: lt, Msg: msg}))
		return
	}
	now := u.now()
	st := u.d.Status()
	rows := u.d.List()
	cfg := u.d.Config()
	d := indexData{Status: st, Rows: rows, LastAnswer: agoText(now, st.Upstream.LastAnswer), Chart: u.hist.SVG(now),
		CanEdit: a.canEdit(), NoPassword: a.hash == "", CSRF: a.csrf, Msg: msg}
	if a.hashErr != nil && !errors.Is(a.hashErr, os.ErrNotExist) {
		d.HashErr = a.hashErr.Error()
	}
	if cfg.File == "" {
		d.HashErr = "pcpgw runs without a configuration file: forwards cannot be edited here"
	}
	for _, f := range cfg.Forwards {
		d.Forwards = append(d.Forwards, forwardView(f, rows, now))
	}
	d.RetryRefresh = retryRefresh(rows, now)
	u.render(w, code, renderIndex(d))
}

// retryRefresh is the seconds until just after the soonest retry of a
// mapping the provider has not made (at least 3, at most 60), 0 when none
// waits for one.
func retryRefresh(rows []control.Row, now time.Time) int {
	var soonest time.Time
	for _, r := range rows {
		if !r.RetryAt.IsZero() && (soonest.IsZero() || r.RetryAt.Before(soonest)) {
			soonest = r.RetryAt
		}
	}
	if soonest.IsZero() {
		return 0
	}
	return int(min(max(soonest.Sub(now)+time.Second, 3*time.Second), time.Minute) / time.Second)
}

// whyText is a row's provider error and the time to its next retry.
func whyText(r control.Row, now time.Time) string {
	why := r.Error
	if !r.RetryAt.IsZero() {
		left := max(r.RetryAt.Sub(now), 0).Round(time.Second)
		if why != "" {
			why += "; "
		}
		why += "asked again in " + left.String()
	}
	return why
}

// forwardView finds the static mappings of f in the list.
func forwardView(f config.Forward, rows []control.Row, now time.Time) fwView {
	v := fwView{Forward: f, State: "disabled"}
	if !f.Enabled {
		return v
	}
	internal := netip.AddrPortFrom(f.IntAddr, f.IntPort).String()
	states := map[string]bool{}
	var ext, why []string
	for _, r := range rows {
		if r.Origin != "static" || r.Internal != internal {
			continue
		}
		p, _ := config.ParseProto(r.Proto)
		if !f.Proto.Has(p) {
			continue
		}
		states[r.Upstream] = true
		if w := whyText(r, now); w != "" && (r.Upstream == "failing" || r.Upstream == "pending") {
			if f.Proto == config.ProtoBoth {
				w = r.Proto + ": " + w
			}
			why = append(why, w)
		}
		if r.External != "" && !slices.Contains(ext, r.External) {
			ext = append(ext, r.External)
		}
	}
	v.External = strings.Join(ext, " ")
	v.Why = strings.Join(why, " · ")
	switch {
	case len(states) == 0:
		v.State = "not mapped"
	case states["failing"]:
		v.State = "failing"
	case states["pending"]:
		v.State = "pending"
	default:
		v.State = "active"
	}
	return v
}

// formData is the forward form, with the messages next to its fields.
type formData struct {
	ID     int
	New    bool
	F      map[string]string // field values as typed
	Errs   map[string]string // field -> message; "" for the whole form
	CSRF   string
	Protos []string
}

var fields = []string{"name", "proto", "ext_port", "int_addr", "int_port", "description", "enabled"}

func (u *UI) forward(w httpd.ResponseWriter, r *httpd.Request, a auth, form url.Values) {
	cfg := u.d.Config()
	fd := formData{F: map[string]string{}, Errs: map[string]string{}, CSRF: a.csrf, Protos: []string{"tcp", "udp", "both"}}
	if r.Method == "GET" {
		q, _ := url.ParseQuery(r.RawQuery)
		fd.New = true
		fd.F["proto"], fd.F["enabled"] = "tcp", "1"
		if id := q.Get("id"); id != "" {
			f, ok := findForward(cfg, id)
			if !ok {
				httpd.Error(w, "no such forward (the file changed?)", httpd.StatusNotFound)
				return
			}
			fd.ID, fd.New, fd.F = f.Line, false, formOf(f)
		}
		u.render(w, httpd.StatusOK, renderForm(fd))
		return
	}
	id := form.Get("id")
	var old config.Forward
	if id != "" && id != "0" {
		f, ok := findForward(cfg, id)
		if !ok {
			u.index(w, r, a, "That forward changed meanwhile: look again.", 409)
			return
		}
		old = f
	}
	switch r.Path {
	case "/forward/delete", "/forward/toggle":
		if old.Line == 0 {
			httpd.Error(w, "no forward named", httpd.StatusBadRequest)
			return
		}
		var next *config.Forward
		if r.Path == "/forward/toggle" {
			f := old
			f.Enabled = !f.Enabled
			next = &f
		}
		if errs, err := u.change(old.Line, next); err != nil || len(errs) > 0 {
			msg := errs[""]
			for _, k := range fields {
				if m := errs[k]; m != "" {
					msg = m
				}
			}
			if err != nil {
				msg = err.Error()
			}
			u.index(w, r, a, fmt.Sprintf("%q not changed: %s", old.Name, msg), httpd.StatusBadRequest)
			return
		}
		redirect(w, "/")
	case "/forward":
		for _, k := range fields {
			fd.F[k] = strings.TrimSpace(form.Get(k))
		}
		fd.ID, fd.New = old.Line, old.Line == 0
		f, errs := parseForm(fd.F)
		if len(errs) == 0 {
			f.Line = old.Line
			var err error
			errs, err = u.change(old.Line, &f)
			if err != nil {
				errs = map[string]string{"": err.Error()}
			}
		}
		if len(errs) > 0 {
			fd.Errs = errs
			u.render(w, httpd.StatusBadRequest, renderForm(fd))
			return
		}
		redirect(w, "/")
	default:
		httpd.Error(w, "not found", httpd.StatusNotFound)
	}
}

func findForward(cfg config.Config, id string) (config.Forward, bool) {
	n, err := strconv.Atoi(id)
	if err != nil || n <= 0 {
		return config.Forward{}, false
	}
	for _, f := range cfg.Forwards {
		if f.Line == n {
			return f, true
		}
	}
	return config.Forward{}, false
}

func formOf(f config.Forward) map[string]string {
	m := map[string]string{"name": f.Name, "proto": f.Proto.String(), "ext_port": itoa(int(f.ExtPort)),
		"int_addr": f.IntAddr.String(), "int_port": itoa(int(f.IntPort)), "description": f.Description}
	if f.Enabled {
		m["enabled"] = "1"
	}
	return m
}

func printable(s string) bool {
	return !strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) })
}

// parseForm reads the fields one by one; config.Validate then judges the
// forward among the others.
func parseForm(v map[string]string) (config.Forward, map[string]string) {
	errs := map[string]string{}
	f := config.Forward{Name: v["name"], Description: v["description"], Enabled: v["enabled"] == "1"}
	switch {
	case f.Name == "":
		errs["name"] = "A name is needed."
	case len(f.Name) > 40 || !printable(f.Name):
		errs["name"] = "At most 40 printable characters."
	}
	if len(f.Description) > 100 || !printable(f.Description) {
		errs["description"] = "At most 100 printable characters."
	}
	var err error
	if f.Proto, err = config.ParseProto(v["proto"]); err != nil {
		errs["proto"] = "Choose tcp, udp or both."
	}
	port := func(k, s string) uint16 {
		n, err := strconv.ParseUint(s, 10, 16)
		if err != nil || n == 0 {
			errs[k] = "A port from 1 to 65535."
		}
		return uint16(n)
	}
	f.ExtPort = port("ext_port", v["ext_port"])
	if v["int_port"] == "" {
		f.IntPort = f.ExtPort
	} else {
		f.IntPort = port("int_port", v["int_port"])
	}
	if f.IntAddr, err = netip.ParseAddr(v["int_addr"]); err != nil {
		errs["int_addr"] = "An IP address of a LAN host, such as 192.168.1.10."
	}
	return f, errs
}

// fieldOf names the form field a config validation message is about.
func fieldOf(msg string) string {
	switch {
	case strings.Contains(msg, "ext_port"), strings.Contains(msg, "external port"):
		return "ext_port"
	case strings.Contains(msg, "int_port"):
		return "int_port"
	case strings.Contains(msg, "int_addr"):
		return "int_addr"
	case strings.Contains(msg, "name already used"):
		return "name"
	case strings.Contains(msg, "protocol"):
		return "proto"
	}
	return ""
}

// errStale: the file no longer holds the forwards the daemon loaded.
var errStale = errors.New("the configuration file changed since pcpgw read it: it is reloaded now, look again")

// change replaces the forward whose section starts at line (0: a new
// one) by f (nil: deletes it), validates the result as the daemon would,
// writes the file in place and has the daemon reload it. Validation
// failures come back per form field.
func (u *UI) change(line int, f *config.Forward) (map[string]string, error) {
	u.edit.Lock()
	defer u.edit.Unlock()
	cfg := u.d.Config()
	if cfg.File == "" {
		return nil, errors.New("pcpgw runs without a configuration file")
	}
	next := slices.Clone(cfg.Forwards)
	i := slices.IndexFunc(next, func(x config.Forward) bool { return line != 0 && x.Line == line })
	switch {
	case line != 0 && i < 0:
		return nil, errStale
	case f == nil:
		next = slices.Delete(next, i, i+1)
	case i >= 0:
		next[i] = *f
	default:
		next = append(next, *f)
	}
	check := cfg
	check.Forwards = next
	if err := check.Validate(); err != nil {
		msg := err.Error()
		var ce *config.Error
		if errors.As(err, &ce) {
			msg = ce.Msg
		}
		if f != nil {
			// Next to the field of this very forward, its name goes.
			msg = strings.TrimPrefix(msg, fmt.Sprintf("forward %q: ", f.Name))
		}
		return map[string]string{fieldOf(msg): msg}, nil
	}
	data, err := os.ReadFile(cfg.File)
	if err != nil {
		return nil, err
	}
	doc, err := ucied.Parse(cfg.File, data)
	if err != nil {
		return nil, err
	}
	var lines []int
	name := map[int]string{}
	for _, s := range doc.Spans() {
		if s.Type == "forward" {
			lines = append(lines, s.Start)
			name[s.Start] = s.Name
		}
	}
	var loaded []int
	for _, x := range cfg.Forwards {
		loaded = append(loaded, x.Line)
	}
	if !slices.Equal(lines, loaded) {
		if err := u.d.Reload(); err != nil {
			return nil, err
		}
		return nil, errStale
	}
	switch {
	case f == nil:
		err = doc.Delete(line)
	case line != 0:
		err = doc.Replace(line, section(*f, name[line]))
	default:
		err = doc.Append(section(*f, ""))
	}
	if err != nil {
		return nil, err
	}
	if err := ucied.WriteFile(cfg.File, doc.Bytes(), 0o600); err != nil {
		return nil, err
	}
	u.log.Info("forwards saved", "file", cfg.File, "forwards", len(next))
	return nil, u.d.Reload()
}

// section writes f as a forward section named sname ("" anonymous).
func section(f config.Forward, sname string) *uci.Section {
	s := &uci.Section{Type: "forward", Name: sname}
	add := func(k, v string) {
		if v != "" {
			s.Options = append(s.Options, &uci.Option{Name: k, Values: []string{v}})
		}
	}
	add("name", f.Name)
	add("proto", f.Proto.String())
	add("ext_port", itoa(int(f.ExtPort)))
	add("int_addr", f.IntAddr.String())
	add("int_port", itoa(int(f.IntPort)))
	if f.Enabled {
		add("enabled", "1")
	} else {
		add("enabled", "0")
	}
	add("description", f.Description)
	return s
}
