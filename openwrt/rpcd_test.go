package openwrt_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/pcpgw/pcpgw/internal/control"
	"github.com/pcpgw/pcpgw/internal/lab"
)

// plugin is the rpcd plugin (pcpgw/files/pcpgw.rpcd) installed in a
// scratch root as the package installs it, run as rpcd runs it, with the
// harness's stand-ins for uci (test/stubs/bin) and jshn (test/jshn,
// test/stubs/libubox), and the pcpgw binary under test.
type plugin struct {
	root string
	env  []string
	sh   []string // the shell: busybox's ash when there is one, as on OpenWrt
}

func newPlugin(t *testing.T, socket string) *plugin {
	t.Helper()
	needTools(t, "sh", "awk", "sed", "go")
	root := t.TempDir()
	for dst, src := range map[string]string{
		"usr/libexec/rpcd/pcpgw":          "pcpgw/files/pcpgw.rpcd",
		"usr/share/libubox/jshn.sh":       "test/stubs/libubox/jshn.sh",
		"usr/share/rpcd/acl.d/pcpgw.json": "pcpgw/files/pcpgw.acl.json",
	} {
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(dst)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, dst), readFile(t, src), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "usr/sbin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(lab.PcpgwBinary(t), filepath.Join(root, "usr/sbin/pcpgw")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "etc/config"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("config pcpgw 'main'\n\toption socket '%s'\n", socket)
	if err := os.WriteFile(filepath.Join(root, "etc/config/pcpgw"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", filepath.Join(bin, "jshn"), "./test/jshn").CombinedOutput(); err != nil {
		t.Fatalf("building the jshn stand-in: %v\n%s", err, out)
	}
	stubs, err := filepath.Abs("test/stubs/bin")
	if err != nil {
		t.Fatal(err)
	}
	p := &plugin{root: root, sh: []string{"sh"},
		env: append(os.Environ(), "IPKG_INSTROOT="+root, "PATH="+bin+":"+stubs+":"+os.Getenv("PATH"))}
	if _, err := exec.LookPath("busybox"); err == nil {
		p.sh = []string{"busybox", "sh"}
	}
	return p
}

// call runs  pcpgw call METHOD  with input on stdin and returns its exit
// status and stdout, which must be one JSON object (what rpcd takes as
// the answer).
func (p *plugin) call(t *testing.T, method, input string) (int, map[string]any) {
	t.Helper()
	c := exec.Command(p.sh[0], append(p.sh[1:], filepath.Join(p.root, "usr/libexec/rpcd/pcpgw"), "call", method)...)
	c.Env = p.env
	c.Stdin = strings.NewReader(input)
	var stderr bytes.Buffer
	c.Stderr = &stderr
	out, err := c.Output()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("call %s: %v", method, err)
	}
	var v map[string]any
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("call %s %s: the answer is not one JSON object (%v): %q (stderr %q)", method, input, err, out, stderr.String())
	}
	return code, v
}

// rowKeys is what identifies the rows of a list, for "nothing changed".
func rowKeys(rows []control.Row) []string {
	var k []string
	for _, r := range rows {
		k = append(k, fmt.Sprintf("%d %s %d %s %s", r.ID, r.Proto, r.WANPort, r.Internal, r.Origin))
	}
	sort.Strings(k)
	return k
}

func cliList(t *testing.T, p *lab.Pcpgw) []control.Row {
	t.Helper()
	var rows []control.Row
	if err := json.Unmarshal([]byte(p.CLI(t, "list", "--json")), &rows); err != nil {
		t.Fatal(err)
	}
	return rows
}

// TestRPCD: ubus call pcpgw status|list|delete as rpcd runs the plugin,
// against a running pcpgw (nat444 behind the lab's CGN, miniupnpd with
// PCP) holding a static forward (tcp 18443) and a mapping natpmpc made
// from the LAN host (tcp 18080): status and list are what `pcpgw status
// --json` and `pcpgw list --json` say; bad JSON, bad arguments, an
// unknown method and deleting the static forward give clear errors and
// change nothing; deleting tcp 18080 removes it from pcpgw and, through
// the core, from the provider's NAT; a second delete finds nothing; with
// the daemon stopped, every call says so.
func TestRPCD(t *testing.T) {
	lab.RequireRoot(t)
	lab.RequireMiniupnpd(t)
	if _, err := exec.LookPath("natpmpc"); err != nil {
		if lab.E2E() {
			t.Fatal("natpmpc not found: run scripts/deps-test.sh")
		}
		t.Skip("natpmpc not found: run scripts/deps-test.sh")
	}
	l := lab.New(t, lab.Options{})
	cgn := l.StartMiniupnpd(t, lab.MiniupnpdOptions{ThirdParty: true})
	conf := filepath.Join(l.Dir, "pcpgw.conf")
	forward := "config pcpgw 'main'\n\nconfig forward\n\toption name 'nas'\n\toption proto 'tcp'\n" +
		"\toption ext_port '18443'\n\toption int_addr '" + lab.LANHost4 + "'\n\toption int_port '443'\n"
	if err := os.WriteFile(conf, []byte(forward), 0o644); err != nil {
		t.Fatal(err)
	}
	p := l.StartPcpgw(t, "-c", conf, "--pcp-server", lab.CGN4)
	lab.Eventually(t, 20*time.Second, func() bool {
		out, _ := l.LAN.Output("natpmpc", "-g", lab.CPELAN4, "-a", "18080", "8080", "tcp", "3600")
		return strings.Contains(out, "Mapped public port")
	}, "natpmpc never got a TCP mapping for port 8080 from pcpgw")
	lab.Eventually(t, 20*time.Second, func() bool {
		rows := cliList(t, p)
		return len(rows) == 2 && rows[0].Upstream == "ok" && rows[1].Upstream == "ok"
	}, "pcpgw never held the static forward and natpmpc's mapping, both made at the provider: %+v", cliList(t, p))
	var dynamic control.Row
	for _, r := range cliList(t, p) {
		if r.Origin == "natpmp" {
			dynamic = r
		}
	}
	if dynamic.WANPort != 18080 || dynamic.Proto != "tcp" {
		t.Fatalf("natpmpc's mapping is %+v, want tcp WAN port 18080", dynamic)
	}
	dnat := cgn.DNATCount(t)
	if dnat != 2 {
		t.Fatalf("the provider's NAT holds %d DNAT rules, want 2 (the forward and natpmpc's)", dnat)
	}
	pl := newPlugin(t, p.Socket)

	t.Run("status", func(t *testing.T) {
		code, v := pl.call(t, "status", "{}")
		if code != 0 {
			t.Fatalf("exit %d: %v", code, v)
		}
		var got, want control.Status
		remarshal(t, v, &got)
		if err := json.Unmarshal([]byte(p.CLI(t, "status", "--json")), &want); err != nil {
			t.Fatal(err)
		}
		volatile := []cmp.Option{
			cmpopts.IgnoreFields(control.Status{}, "Epoch", "Counters"),
			cmpopts.IgnoreFields(control.Upstream{}, "Epoch", "LastAnswer", "Sent", "Received", "Dropped"),
		}
		if diff := cmp.Diff(want, got, volatile...); diff != "" {
			t.Errorf("ubus call pcpgw status is not pcpgw status --json (-cli +ubus):\n%s", diff)
		}
		if got.Mode != "nat444" || got.External != lab.CGNPublic4 || got.Upstream.Server == "" || got.Mappings != 2 {
			t.Errorf("status: mode %q external %q PCP server %q mappings %d; want nat444, %s, the CGN, 2",
				got.Mode, got.External, got.Upstream.Server, got.Mappings, lab.CGNPublic4)
		}
	})

	// The fields the LuCI pages read are in a running daemon's answers.
	t.Run("contract", func(t *testing.T) {
		checkLiveContract(t, []byte(p.CLI(t, "status", "--json")), []byte(p.CLI(t, "list", "--json")))
	})

	t.Run("list", func(t *testing.T) {
		code, v := pl.call(t, "list", "{}")
		if code != 0 || len(v) != 1 {
			t.Fatalf("exit %d, answer %v; want 0 and one member, mappings", code, v)
		}
		var got struct{ Mappings []control.Row }
		remarshal(t, v, &got)
		ignore := cmpopts.IgnoreFields(control.Row{}, "LeaseLeft", "RetryAt")
		if diff := cmp.Diff(cliList(t, p), got.Mappings, ignore); diff != "" {
			t.Errorf("ubus call pcpgw list is not pcpgw list --json (-cli +ubus):\n%s", diff)
		}
	})

	before := rowKeys(cliList(t, p))
	for _, tc := range []struct{ name, method, input, err string }{
		{"bad JSON", "delete", `{"proto":"tcp","port":`, `the arguments are not a JSON object: {"proto":"tcp","port":`},
		{"no port", "delete", `{"proto":"tcp"}`, `port must be a number from 1 to 65535, not ''`},
		{"bad proto", "delete", `{"proto":"sctp","port":18080}`, `proto must be tcp or udp, not 'sctp'`},
		{"port out of range", "delete", `{"proto":"tcp","port":65536}`, `port "65536" is not a number from 1 to 65535`},
		{"static forward", "delete", `{"proto":"tcp","port":18443}`,
			`tcp 18443 is the static forward "nas": remove or disable its forward section in ` + conf},
		{"unknown method", "flush", `{}`, `unknown method 'flush' (status, list or delete)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, v := pl.call(t, tc.method, tc.input)
			if diff := cmp.Diff(map[string]any{"error": tc.err}, v); code != 1 || diff != "" {
				t.Errorf("exit %d, answer (-want +got):\n%s", code, diff)
			}
			if diff := cmp.Diff(before, rowKeys(cliList(t, p))); diff != "" {
				t.Errorf("the mappings changed (-before +after):\n%s", diff)
			}
		})
	}
	if n := cgn.DNATCount(t); n != 2 {
		t.Errorf("after the refused calls the provider's NAT holds %d DNAT rules, want 2", n)
	}

	t.Run("delete", func(t *testing.T) {
		code, v := pl.call(t, "delete", `{"proto":"tcp","port":18080}`)
		if diff := cmp.Diff(map[string]any{"deleted": 1.0}, v); code != 0 || diff != "" {
			t.Fatalf("exit %d, answer (-want +got):\n%s", code, diff)
		}
		rows := cliList(t, p)
		if len(rows) != 1 || rows[0].Origin != "static" {
			t.Errorf("after the delete pcpgw lists %+v, want the static forward alone", rows)
		}
		// The core tells the provider (in the background).
		lab.Eventually(t, 10*time.Second, func() bool { return cgn.DNATCount(t) == 1 },
			"the provider's NAT still holds %d DNAT rules after the delete, want 1", cgn.DNATCount(t))
		code, v = pl.call(t, "delete", `{"proto":"tcp","port":18080}`)
		if diff := cmp.Diff(map[string]any{"deleted": 0.0}, v); code != 0 || diff != "" {
			t.Errorf("second delete: exit %d, answer (-want +got):\n%s", code, diff)
		}
		// By id, as the LuCI page deletes: the static forward is refused
		// all the same.
		code, v = pl.call(t, "delete", fmt.Sprintf(`{"id":%d}`, rows[0].ID))
		if code != 1 || !strings.Contains(fmt.Sprint(v["error"]), `is the static forward "nas"`) {
			t.Errorf("delete of the forward by id: exit %d, answer %v", code, v)
		}
	})

	t.Run("no daemon", func(t *testing.T) {
		if err := p.Stop(t); err != nil {
			t.Fatalf("stopping pcpgw: %v", err)
		}
		for _, m := range []string{"status", "list", "delete"} {
			code, v := pl.call(t, m, `{"proto":"tcp","port":18443}`)
			if e := fmt.Sprint(v["error"]); code != 1 || !strings.HasPrefix(e, "is pcpgw running? dial unix "+p.Socket) {
				t.Errorf("%s without a daemon: exit %d, answer %v", m, code, v)
			}
		}
	})
}

// remarshal decodes v (decoded JSON) into out, strictly: a member that out
// has no field for fails the test.
func remarshal(t *testing.T, v any, out any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
}
