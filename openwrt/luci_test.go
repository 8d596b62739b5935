package openwrt_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/pcpgw/pcpgw/internal/control"
)

// luciDir is the luci-app-pcpgw package, laid out as in the luci feed
// (feeds/luci/applications/luci-app-pcpgw).
const luciDir = "luci-app-pcpgw"

var updatePot = flag.Bool("update", false, "rewrite luci-app-pcpgw/po/templates/pcpgw.pot from the sources")

// luciJS lists the package's JavaScript files.
func luciJS(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(filepath.Join(luciDir, "htdocs"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".js") {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 {
		t.Fatalf("luci-app-pcpgw holds %d JavaScript files, want the view and the status include: %q", len(files), files)
	}
	return files
}

// TestLuCIJSParses: each view parses as LuCI loads it, as the body of a
// function (a view ends with a top-level return, which node --check
// refuses), starts with 'use strict', and requires only LuCI's modules.
func TestLuCIJSParses(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not found: the JavaScript is not parsed")
	}
	known := map[string]bool{"baseclass": true, "dom": true, "form": true, "fs": true, "network": true, "poll": true,
		"rpc": true, "uci": true, "ui": true, "view": true, "tools.widgets as widgets": true}
	for _, f := range luciJS(t) {
		src := string(readFile(t, f))
		if !strings.HasPrefix(src, "'use strict';\n") {
			t.Errorf("%s does not start with 'use strict';", f)
		}
		for _, m := range regexp.MustCompile(`(?m)^'require ([^']+)';$`).FindAllStringSubmatch(src, -1) {
			if !known[m[1]] {
				t.Errorf("%s requires %q, not a LuCI module this test knows", f, m[1])
			}
		}
		c := exec.Command(node, "-e", `new Function(require("fs").readFileSync(process.argv[1], "utf8"))`, f)
		if out, err := c.CombinedOutput(); err != nil {
			t.Errorf("%s does not parse: %v\n%s", f, err, out)
		}
	}
	// The check catches a broken file.
	bad := filepath.Join(t.TempDir(), "bad.js")
	os.WriteFile(bad, []byte("'use strict';\nreturn view.extend({ render: function() { return E('div' }\n"), 0o644)
	if exec.Command(node, "-e", `new Function(require("fs").readFileSync(process.argv[1], "utf8"))`, bad).Run() == nil {
		t.Error("a file with a syntax error parses: the check proves nothing")
	}
}

// jsonShape maps every JSON path of a Go type (a.b.c, through pointers,
// slices and maps) to whether the member may be left out (omitempty,
// omitzero).
func jsonShape(t reflect.Type, prefix string, omit bool, out map[string]bool) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t.PkgPath() == "time" {
		return
	}
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		o := omit || strings.Contains(opts, "omitempty") || strings.Contains(opts, "omitzero")
		out[prefix+name] = o
		jsonShape(f.Type, prefix+name+".", o, out)
	}
}

// jsReads returns the fields the JavaScript reads of pcpgw's status (as
// st.PATH) and of a mapping (as row.PATH), with where.
func jsReads(t *testing.T) (status, row map[string][]string) {
	t.Helper()
	status, row = map[string][]string{}, map[string][]string{}
	re := regexp.MustCompile(`\b(st|row)((?:\??\.[A-Za-z_][A-Za-z0-9_]*)+)`)
	for _, f := range luciJS(t) {
		for n, line := range strings.Split(string(readFile(t, f)), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "//") {
				continue
			}
			for _, m := range re.FindAllStringSubmatch(line, -1) {
				path := strings.TrimPrefix(strings.ReplaceAll(m[2], "?.", "."), ".")
				where := fmt.Sprintf("%s:%d", filepath.Base(f), n+1)
				if m[1] == "st" {
					status[path] = append(status[path], where)
				} else {
					row[path] = append(row[path], where)
				}
			}
		}
	}
	return status, row
}

// TestLuCIContract: every field the pages read of pcpgw's answers exists
// in the JSON of internal/control (what `pcpgw status --json` and `pcpgw
// list --json` print, and the rpcd plugin passes on), so that a renamed
// field fails here; and the pages read what the issue asks them to show.
// TestRPCD checks the same fields against a running daemon's answers.
func TestLuCIContract(t *testing.T) {
	status, row := jsReads(t)
	statusShape, rowShape := map[string]bool{}, map[string]bool{}
	jsonShape(reflect.TypeOf(control.Status{}), "", false, statusShape)
	jsonShape(reflect.TypeOf(control.Row{}), "", false, rowShape)
	for path, where := range status {
		if _, ok := statusShape[path]; !ok {
			t.Errorf("%v: st.%s is not in pcpgw's status JSON (control.Status)", where, path)
		}
	}
	for path, where := range row {
		if _, ok := rowShape[path]; !ok {
			t.Errorf("%v: row.%s is not in pcpgw's mapping JSON (control.Row)", where, path)
		}
	}
	for _, want := range []string{"mode", "mode_config", "external_addr", "epoch", "upstream.kind", "upstream.kind_config",
		"upstream.address", "upstream.device", "upstream.device.friendly_name", "upstream.device.manufacturer",
		"upstream.device.model", "upstream.advice", "upstream.external_addr", "upstream.server", "upstream.epoch",
		"upstream.detected"} {
		if status[want] == nil {
			t.Errorf("the pages never read st.%s", want)
		}
	}
	for _, want := range []string{"id", "origin", "proto", "external", "wan_port", "internal", "client", "lease_left_s",
		"upstream", "error", "retry_at", "description"} {
		if row[want] == nil {
			t.Errorf("the pages never read row.%s", want)
		}
	}
	// The plugin's list answer wraps the rows as the pages read them.
	if !strings.Contains(string(readFile(t, "pcpgw/files/pcpgw.rpcd")), `printf '{"mappings":%s}\n'`) {
		t.Error(`the rpcd plugin's list no longer answers {"mappings":[...]}, which the pages read`)
	}
	for _, f := range luciJS(t) {
		if !strings.Contains(string(readFile(t, f)), "list?.mappings") && !strings.Contains(string(readFile(t, f)), "list.mappings") {
			t.Errorf("%s does not read the mappings as list.mappings", f)
		}
	}
	// The check catches a field that is not there.
	if _, ok := statusShape["upstream.kindd"]; ok || len(statusShape) < 30 || len(rowShape) < 12 {
		t.Errorf("the JSON shape of control.Status (%d paths) and control.Row (%d) is not what it should be", len(statusShape), len(rowShape))
	}
}

// checkLiveContract checks the fields the pages read against a running
// daemon's answers: every one that pcpgw never leaves out is there.
func checkLiveContract(t *testing.T, statusJSON, listJSON []byte) {
	t.Helper()
	status, row := jsReads(t)
	statusShape, rowShape := map[string]bool{}, map[string]bool{}
	jsonShape(reflect.TypeOf(control.Status{}), "", false, statusShape)
	jsonShape(reflect.TypeOf(control.Row{}), "", false, rowShape)
	var st map[string]any
	var rows []map[string]any
	if err := json.Unmarshal(statusJSON, &st); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(listJSON, &rows); err != nil || len(rows) == 0 {
		t.Fatalf("list: %v, %d rows", err, len(rows))
	}
	has := func(v any, path string) bool {
		for _, k := range strings.Split(path, ".") {
			m, ok := v.(map[string]any)
			if !ok {
				return false
			}
			if v, ok = m[k]; !ok {
				return false
			}
		}
		return true
	}
	for path := range status {
		if !statusShape[path] && !has(st, path) {
			t.Errorf("the status of a running pcpgw has no %s, which the pages read", path)
		}
	}
	for path := range row {
		for _, r := range rows {
			if !rowShape[path] && !has(r, path) {
				t.Errorf("a mapping of a running pcpgw has no %s, which the pages read: %v", path, r)
			}
		}
	}
}

// TestLuCIJSON: the menu and the ACLs are valid JSON of the shapes LuCI
// and rpcd read; the menu opens the view and needs the app's ACL group;
// every ubus method the pages call is granted by the group that loads
// them, reading for status and list, writing only for delete, and only
// methods the plugin has.
func TestLuCIJSON(t *testing.T) {
	type menuEntry struct {
		Title  string `json:"title"`
		Order  int    `json:"order"`
		Action struct {
			Type string `json:"type"`
			Path string `json:"path"`
		} `json:"action"`
		Depends struct {
			ACL []string        `json:"acl"`
			UCI map[string]bool `json:"uci"`
		} `json:"depends"`
	}
	type perm struct {
		UBUS map[string][]string `json:"ubus"`
		UCI  []string            `json:"uci"`
	}
	type group struct {
		Description string `json:"description"`
		Read        perm   `json:"read"`
		Write       perm   `json:"write"`
	}
	strict := func(name string, v any) {
		t.Helper()
		dec := json.NewDecoder(bytes.NewReader(readFile(t, name)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	var menu map[string]menuEntry
	strict(filepath.Join(luciDir, "root/usr/share/luci/menu.d/luci-app-pcpgw.json"), &menu)
	var acl, pkgACL map[string]group
	strict(filepath.Join(luciDir, "root/usr/share/rpcd/acl.d/luci-app-pcpgw.json"), &acl)
	strict("pcpgw/files/pcpgw.acl.json", &pkgACL)

	e, ok := menu["admin/services/pcpgw"]
	if !ok || len(menu) != 1 {
		t.Fatalf("menu entries %v, want admin/services/pcpgw", menu)
	}
	if e.Title == "" || e.Action.Type != "view" || e.Depends.UCI["pcpgw"] != true {
		t.Errorf("menu entry %+v", e)
	}
	if _, err := os.Stat(filepath.Join(luciDir, "htdocs/luci-static/resources/view", e.Action.Path+".js")); err != nil {
		t.Errorf("the menu's view %s: %v", e.Action.Path, err)
	}
	for _, g := range e.Depends.ACL {
		if _, ok := acl[g]; !ok {
			t.Errorf("the menu depends on ACL group %q, which the ACL file does not define", g)
		}
	}

	// What the pages call: rpc.declare({ object: 'O', method: 'M' ... }).
	declare := regexp.MustCompile(`rpc\.declare\(\{\s*object: '([^']+)',\s*method: '([^']+)'`)
	calls := func(f string) [][2]string {
		var c [][2]string
		for _, m := range declare.FindAllStringSubmatch(string(readFile(t, f)), -1) {
			c = append(c, [2]string{m[1], m[2]})
		}
		if len(c) == 0 {
			t.Fatalf("%s declares no rpc call", f)
		}
		return c
	}
	granted := func(p perm, obj, method string) bool {
		for _, m := range p.UBUS[obj] {
			if m == method {
				return true
			}
		}
		return false
	}
	writes := map[string]bool{"delete": true}
	check := func(groupName, file string) {
		g, ok := acl[groupName]
		if !ok {
			t.Errorf("no ACL group %s", groupName)
			return
		}
		if g.Description == "" {
			t.Errorf("ACL group %s has no description", groupName)
		}
		for _, c := range calls(file) {
			p := g.Read
			if c[0] == "pcpgw" && writes[c[1]] {
				p = g.Write
			}
			if !granted(p, c[0], c[1]) {
				t.Errorf("%s calls %s %s, which ACL group %s does not grant", file, c[0], c[1], groupName)
			}
		}
	}
	check("luci-app-pcpgw", filepath.Join(luciDir, "htdocs/luci-static/resources/view/pcpgw/pcpgw.js"))
	check("luci-mod-status-index-pcpgw", filepath.Join(luciDir, "htdocs/luci-static/resources/view/status/include/80_pcpgw.js"))
	if w := acl["luci-mod-status-index-pcpgw"].Write; len(w.UBUS) > 0 || len(w.UCI) > 0 {
		t.Errorf("the status overview's group may write: %+v", w)
	}
	if diff := cmp.Diff([]string{"pcpgw"}, acl["luci-app-pcpgw"].Write.UCI); diff != "" {
		t.Errorf("luci-app-pcpgw writes UCI (-want +got):\n%s", diff)
	}

	// The plugin's methods, and which the ACLs grant for reading.
	methods := map[string]bool{}
	var list map[string]any
	m := regexp.MustCompile(`(?m)^\techo '(\{.*\})'$`).FindStringSubmatch(string(readFile(t, "pcpgw/files/pcpgw.rpcd")))
	if m == nil || json.Unmarshal([]byte(m[1]), &list) != nil {
		t.Fatal("the rpcd plugin's list answer not found")
	}
	for k := range list {
		methods[k] = true
	}
	for file, groups := range map[string]map[string]group{"luci-app-pcpgw.json": acl, "pcpgw.json": pkgACL} {
		for name, g := range groups {
			for _, mth := range append(append([]string(nil), g.Read.UBUS["pcpgw"]...), g.Write.UBUS["pcpgw"]...) {
				if !methods[mth] {
					t.Errorf("%s: group %s grants pcpgw %s, which the plugin does not have", file, name, mth)
				}
			}
			for _, mth := range g.Read.UBUS["pcpgw"] {
				if writes[mth] {
					t.Errorf("%s: group %s grants pcpgw %s for reading: deleting is writing", file, name, mth)
				}
			}
		}
	}
	want := group{Description: pkgACL["pcpgw"].Description,
		Read:  perm{UBUS: map[string][]string{"pcpgw": {"status", "list"}}},
		Write: perm{UBUS: map[string][]string{"pcpgw": {"delete"}}}}
	if diff := cmp.Diff(map[string]group{"pcpgw": want}, pkgACL); diff != "" || want.Description == "" {
		t.Errorf("pcpgw's ACL (-want +got):\n%s", diff)
	}
}

// formOptions returns the UCI options the view's form edits, by section
// type (the section of form.NamedSection 'main' is type pcpgw).
func formOptions(t *testing.T) map[string][]string {
	t.Helper()
	src := string(readFile(t, filepath.Join(luciDir, "htdocs/luci-static/resources/view/pcpgw/pcpgw.js")))
	section := regexp.MustCompile(`m\.section\(form\.(\w+), '([^']+)'(?:, '([^']+)')?`)
	option := regexp.MustCompile(`s\.(?:option|taboption)\((?:'[^']+', )?(?:form|widgets)\.\w+, '([^']+)'`)
	out := map[string][]string{}
	typ := ""
	for _, line := range strings.Split(src, "\n") {
		if m := section.FindStringSubmatch(line); m != nil {
			typ = m[2]
			if m[1] == "NamedSection" {
				typ = m[3]
			}
			continue
		}
		if m := option.FindStringSubmatch(line); m != nil {
			out[typ] = append(out[typ], m[1])
		}
	}
	return out
}

// TestLuCIOptions: every option the page edits is one pcpgw knows
// (config/REFERENCE.md, which config's tests keep in step with the
// parser): a misspelt option would only draw a warning in pcpgw's log.
func TestLuCIOptions(t *testing.T) {
	ref := string(readFile(t, "../config/REFERENCE.md"))
	known := map[string]map[string]bool{}
	typ := ""
	for _, line := range strings.Split(ref, "\n") {
		switch {
		case strings.HasPrefix(line, "## The daemon"):
			typ = "pcpgw"
		case strings.HasPrefix(line, "## Port mapping permissions"):
			typ = "perm_rule"
		case strings.HasPrefix(line, "## Static port forwards"):
			typ = "forward"
		case strings.HasPrefix(line, "## "):
			typ = ""
		}
		if m := regexp.MustCompile("^\\| `([a-z0-9_]+)`").FindStringSubmatch(line); m != nil && typ != "" {
			if known[typ] == nil {
				known[typ] = map[string]bool{}
			}
			known[typ][m[1]] = true
		}
	}
	opts := formOptions(t)
	for _, typ := range []string{"pcpgw", "forward", "perm_rule"} {
		if len(opts[typ]) == 0 || len(known[typ]) == 0 {
			t.Fatalf("section %s: %d options in the page, %d in config/REFERENCE.md", typ, len(opts[typ]), len(known[typ]))
		}
		for _, o := range opts[typ] {
			if !known[typ][o] {
				t.Errorf("the page edits option %s of section %s, which pcpgw does not know", o, typ)
			}
		}
	}
	// The forwards are edited whole.
	if diff := cmp.Diff([]string{"description", "enabled", "ext_port", "int_addr", "int_port", "name", "proto"}, sorted(opts["forward"])); diff != "" {
		t.Errorf("forward options in the page (-want +got):\n%s", diff)
	}
	if _, ok := opts["_status"]; ok {
		t.Error("the status section edits options")
	}
}

func sorted(s []string) []string {
	s = append([]string(nil), s...)
	sort.Strings(s)
	return s
}

// potEntry is one message of the translation template.
type potEntry struct {
	refs []string
	id   string
}

// jsString unquotes a JavaScript string literal in single or double
// quotes.
func jsString(lit string) (string, error) {
	body := lit[1 : len(lit)-1]
	if lit[0] == '\'' {
		body = strings.ReplaceAll(strings.ReplaceAll(body, `\'`, `'`), `"`, `\"`)
	}
	return strconv.Unquote(`"` + body + `"`)
}

// buildPot makes the template as LuCI's build/i18n-scan.pl does: every
// _('...') of the JavaScript and the menu titles, sorted, each with the
// places it is used, paths as in the luci feed.
func buildPot(t *testing.T) string {
	t.Helper()
	msgs := map[string][]string{}
	feed := "applications/luci-app-pcpgw/"
	call := regexp.MustCompile(`\b_\(\s*('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")`)
	for _, f := range luciJS(t) {
		rel := feed + strings.TrimPrefix(filepath.ToSlash(f), luciDir+"/")
		for n, line := range strings.Split(string(readFile(t, f)), "\n") {
			for _, m := range call.FindAllStringSubmatch(line, -1) {
				s, err := jsString(m[1])
				if err != nil {
					t.Fatalf("%s:%d: %s: %v", f, n+1, m[1], err)
				}
				msgs[s] = append(msgs[s], fmt.Sprintf("%s:%d", rel, n+1))
			}
		}
	}
	menuFile := "root/usr/share/luci/menu.d/luci-app-pcpgw.json"
	for n, line := range strings.Split(string(readFile(t, filepath.Join(luciDir, menuFile))), "\n") {
		if m := regexp.MustCompile(`"title": ("[^"]*")`).FindStringSubmatch(line); m != nil {
			s, _ := strconv.Unquote(m[1])
			msgs[s] = append(msgs[s], fmt.Sprintf("%s%s:%d", feed, menuFile, n+1))
		}
	}
	var entries []potEntry
	for id, refs := range msgs {
		entries = append(entries, potEntry{refs, id})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].id < entries[j].id })
	var b strings.Builder
	b.WriteString("msgid \"\"\nmsgstr \"Content-Type: text/plain; charset=UTF-8\"\n")
	po := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	for _, e := range entries {
		b.WriteString("\n")
		for _, r := range e.refs {
			fmt.Fprintf(&b, "#: %s\n", r)
		}
		fmt.Fprintf(&b, "msgid \"%s\"\nmsgstr \"\"\n", po.Replace(e.id))
	}
	return b.String()
}

// TestLuCIPot: po/templates/pcpgw.pot holds every string the pages
// translate (go test ./openwrt -run TestLuCIPot -update rewrites it),
// so that the luci feed's translation flow (Weblate) sees them all.
func TestLuCIPot(t *testing.T) {
	pot := filepath.Join(luciDir, "po/templates/pcpgw.pot")
	got := buildPot(t)
	if *updatePot {
		if err := os.WriteFile(pot, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff(string(readFile(t, pot)), got); diff != "" {
		t.Errorf("%s is not in step with the sources (go test ./openwrt -run TestLuCIPot -update) (-file +sources):\n%s", pot, diff)
	}
	for _, want := range []string{`msgid "Port mapping"`, `msgid "Static forwards"`, `msgid "Behind the provider's NAT (NAT444)"`} {
		if !strings.Contains(got, want+"\n") {
			t.Errorf("the template lacks %s", want)
		}
	}
}

// TestLuCIFeedMakefile: luci-app-pcpgw/Makefile is a luci feed package
// (luci.mk) depending on pcpgw, with pcpgw's license and version, and the
// directory holds only what luci.mk installs or translates.
func TestLuCIFeedMakefile(t *testing.T) {
	mk := string(readFile(t, filepath.Join(luciDir, "Makefile")))
	for _, want := range []string{
		"include $(TOPDIR)/rules.mk\n",
		"LUCI_DEPENDS:=+luci-base +pcpgw\n",
		"LUCI_PKGARCH:=all\n",
		"include ../../luci.mk\n",
		"# call BuildPackage - OpenWrt buildroot signature\n",
	} {
		if !strings.Contains(mk, want) {
			t.Errorf("luci-app-pcpgw/Makefile lacks %q", want)
		}
	}
	for _, v := range []string{"PKG_LICENSE", "PKG_VERSION", "PKG_MAINTAINER"} {
		m := regexp.MustCompile(`(?m)^` + v + `:=(.*)$`).FindStringSubmatch(mk)
		if m == nil || m[1] != makeVar(t, v) {
			t.Errorf("luci-app-pcpgw/Makefile %s = %v, want pcpgw's %q", v, m, makeVar(t, v))
		}
	}
	entries, err := os.ReadDir(luciDir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if e.Name() != "screenshot.png" {
			names = append(names, e.Name())
		}
	}
	if diff := cmp.Diff([]string{"Makefile", "htdocs", "po", "root"}, names); diff != "" {
		t.Errorf("luci-app-pcpgw holds (-want +got):\n%s", diff)
	}
}

// checkLuCIIPK checks luci-app-pcpgw_VERSION_all.ipk in dir: the files
// are htdocs/ under /www and root/ under /, byte for byte, mode 0644,
// owned by root; the control fields; luci.mk's postinst.
func checkLuCIIPK(t *testing.T, dir string) {
	t.Helper()
	version := regexp.MustCompile(`(?m)^PKG_VERSION:=(.*)$`).FindStringSubmatch(string(readFile(t, filepath.Join(luciDir, "Makefile"))))[1] +
		"-r" + regexp.MustCompile(`(?m)^PKG_RELEASE:=(.*)$`).FindStringSubmatch(string(readFile(t, filepath.Join(luciDir, "Makefile"))))[1]
	ipk := filepath.Join(dir, "luci-app-pcpgw_"+version+"_all.ipk")
	member := func(name string) []byte {
		b, err := exec.Command("ar", "p", ipk, name).Output()
		if err != nil {
			t.Fatalf("ar p %s %s: %v", ipk, name, err)
		}
		return b
	}
	if members, err := exec.Command("ar", "t", ipk).Output(); err != nil || string(members) != "debian-binary\ncontrol.tar.gz\ndata.tar.gz\n" {
		t.Fatalf("ar t %s: %v %q", ipk, err, members)
	}
	data := untar(t, member("data.tar.gz"))
	want := map[string]ipkFile{}
	for src, dst := range map[string]string{"htdocs": "www/", "root": ""} {
		base := filepath.Join(luciDir, src)
		filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(base, p)
			name := dst + filepath.ToSlash(rel)
			want[name] = ipkFile{0o644, -1}
			if !bytes.Equal(data.content[name], readFile(t, p)) {
				t.Errorf("%s in the package is not %s", name, p)
			}
			return nil
		})
	}
	if len(want) != 4 {
		t.Errorf("luci-app-pcpgw has %d files to install, want 4 (view, include, menu, ACL)", len(want))
	}
	if diff := cmp.Diff(want, modes(data.files, true)); diff != "" {
		t.Errorf("luci-app-pcpgw data.tar.gz files (-want +got):\n%s", diff)
	}
	control := untar(t, member("control.tar.gz"))
	if diff := cmp.Diff(map[string]ipkFile{"control": {0o644, -1}, "postinst": {0o755, -1}}, modes(control.files, true)); diff != "" {
		t.Errorf("luci-app-pcpgw control.tar.gz entries (-want +got):\n%s", diff)
	}
	if len(data.notRoot) > 0 || len(control.notRoot) > 0 {
		t.Errorf("entries not owned by 0:0: %v %v", data.notRoot, control.notRoot)
	}
	fields := controlFields(t, string(control.content["control"]))
	var size int64
	for _, f := range data.files {
		size += f.Size
	}
	for k, v := range map[string]string{
		"Package": "luci-app-pcpgw", "Version": version, "Architecture": "all", "Depends": "luci-base, pcpgw",
		"Section": "luci", "License": makeVar(t, "PKG_LICENSE"), "Installed-Size": strconv.FormatInt(size, 10),
	} {
		if fields[k] != v {
			t.Errorf("luci-app-pcpgw control %s = %q, want %q", k, fields[k], v)
		}
	}
	post := string(control.content["postinst"])
	for _, want := range []string{"#!/bin/sh\n", "rm -f /tmp/luci-indexcache", "rm -rf /tmp/luci-modulecache/", "killall -HUP rpcd"} {
		if !strings.Contains(post, want) {
			t.Errorf("luci-app-pcpgw postinst lacks %q:\n%s", want, post)
		}
	}
}

// TestLuCIRender runs the view and the overview include in headless
// Chromium with test/luci's stand-in for LuCI's runtime and sample
// answers (test/luci/data.js), one mapping's description replaced by
// markup: both render (their load and render run to the end), the
// mappings table has a row per mapping with the DHCP names, the static
// forward's delete button is disabled, and the description shows as text,
// never as HTML.
func TestLuCIRender(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium not found: the pages are not rendered")
	}
	const evil = `<b id="evil">bold</b>`
	files := http.FileServer(http.Dir("."))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/test/luci/data.js" {
			w.Header().Set("Content-Type", "text/javascript")
			w.Write(readFile(t, "test/luci/data.js"))
			fmt.Fprintf(w, "\nwindow.SAMPLE.ubus['pcpgw.list'].mappings[1].description = %q;\n", evil)
			return
		}
		files.ServeHTTP(w, r)
	}))
	defer srv.Close()
	c := exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+t.TempDir(), "--virtual-time-budget=5000", "--dump-dom", srv.URL+"/test/luci/index.html")
	var stderr bytes.Buffer
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	page := string(out)
	if !strings.Contains(page, "<title>rendered</title>") {
		t.Fatalf("the pages did not render:\n%s", page)
	}
	for _, want := range []string{
		`id="pcpgw_mappings"`, "Behind the provider's NAT (NAT444) (chosen automatically)",
		"The provider's PCP server: 100.64.0.1:5351", "100.64.0.1:5351 PCP, reachable, epoch 1811",
		"xbox<br><small>192.168.1.42:3074</small>", "failing: CANNOT_PROVIDE_EXTERNAL: the provider refused external port 8080 (retry in ",
		"Port mappings (pcpgw)", "Reachable from the internet at 203.0.113.1; 4 mappings, 0 pending, 1 failing.",
		"&lt;b id=\"evil\"&gt;bold&lt;/b&gt;",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the rendered pages lack %q", want)
		}
	}
	if strings.Contains(page, `<b id="evil">`) {
		t.Error("a mapping's description was rendered as HTML")
	}
	table := page[strings.Index(page, `id="pcpgw_mappings"`):]
	table = table[:strings.Index(table, "</table>")]
	if n := strings.Count(table, `<tr class="tr">`); n != 4 {
		t.Errorf("the mappings table has %d rows, want 4", n)
	}
	if !regexp.MustCompile(`<button class="btn cbi-button-remove" disabled="true" title="A static forward is removed or disabled below">`).MatchString(table) {
		t.Error("the static forward's delete button is not disabled")
	}
}
