package browser

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/config"
	"github.com/pcpgw/pcpgw/internal/control"
	"github.com/pcpgw/pcpgw/internal/httpd"
	"github.com/pcpgw/pcpgw/webui"
)

// fakeDaemon reloads the file as pcpgw does and shows every enabled
// forward as an active static mapping at 203.0.113.1.
type fakeDaemon struct {
	mu  sync.Mutex
	cfg *config.Config
}

func (d *fakeDaemon) Status() control.Status {
	return control.Status{Version: "browser-test", Mode: "nat444", ModeConfig: "auto", WAN: "eth1", WANAddr: "100.64.0.2",
		External: "203.0.113.1", Mappings: len(d.List()),
		Upstream: control.Upstream{Server: "100.64.0.1:5351", Protocol: "pcp", Epoch: 1234, Reachable: true, Sent: 12, Received: 12}}
}

func (d *fakeDaemon) List() []control.Row {
	d.mu.Lock()
	defer d.mu.Unlock()
	rows := []control.Row{{ID: 1, Proto: "udp", External: "203.0.113.1:40000", Internal: "192.0.2.7:40000", Client: "192.0.2.7",
		LeaseLeft: 3300, Origin: "natpmp", Upstream: "ok", Description: "game console"}}
	for i, f := range d.cfg.Forwards {
		if !f.Enabled {
			continue
		}
		for _, p := range []config.Proto{config.ProtoTCP, config.ProtoUDP} {
			if f.Proto.Has(p) {
				rows = append(rows, control.Row{ID: uint32(10 + i), Proto: p.String(), External: netip.AddrPortFrom(netip.MustParseAddr("203.0.113.1"), f.ExtPort).String(),
					Internal: netip.AddrPortFrom(f.IntAddr, f.IntPort).String(), Client: f.IntAddr.String(), LeaseLeft: -1, Origin: "static", Upstream: "ok", Description: f.Description})
			}
		}
	}
	return rows
}

func (d *fakeDaemon) Config() config.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return *d.cfg
}

func (d *fakeDaemon) Reload() error {
	c, _, err := config.Load(d.cfg.File, nil)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cfg = c
	return nil
}

// TestBrowserForward: in headless Chromium, log in, be told off for a bad
// port next to the field, add a static forward, see it listed as active,
// delete it; the file keeps its comments. Screenshots of the status page
// and the forward form go to the test's artifact directory.
func TestBrowserForward(t *testing.T) {
	chromiumPath(t)
	hash, err := webui.HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "pcpgw")
	conf := "# the router's pcpgw\nconfig pcpgw 'main'\n\tlist lan 'br-lan'\n\toption wan 'eth1'\n\toption password_hash '" + hash + "'\n\n# the NAS\nconfig forward 'nas'\n\toption proto 'tcp'\n\toption ext_port '8443'\n\toption int_addr '192.0.2.100'\n\toption description 'NAS web page'\n"
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := config.Load(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := &fakeDaemon{cfg: cfg}
	ui, err := webui.New(webui.Config{Daemon: d})
	if err != nil {
		t.Fatal(err)
	}
	ui.Sample() // a first point on the chart
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &httpd.Server{Handler: ui}
	served := make(chan struct{})
	go func() { defer close(served); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-served })
	base := "http://" + ln.Addr().String()

	b := startBrowser(t, nil)
	runScenario(t, b, base, "correct horse", 18080, "192.0.2.100", 8080, func() {
		text, _ := os.ReadFile(file)
		if !strings.Contains(string(text), "option ext_port '18080'") || !strings.Contains(string(text), "# the NAS") {
			t.Errorf("file after add:\n%s", text)
		}
	})
	text, _ := os.ReadFile(file)
	if string(text) != conf {
		t.Errorf("after add and delete, the file is not as it was:\n%s", text)
	}
}

// runScenario drives the page at base: log in, a refused port, add the
// forward ext -> addr:port, wait until it is listed active, then
// whileActive, then delete it.
func runScenario(t *testing.T, b *browser, base, password string, ext uint16, addr string, port uint16, whileActive func()) {
	t.Helper()
	b.navigate(base + "/")
	b.waitFor("document.getElementById('password')", 15*time.Second)
	b.screenshot("login.png")
	b.typeInto("password", password)
	b.click("#login")
	b.waitFor("document.getElementById('add')", 15*time.Second)
	if v := b.mustEval("document.cookie"); v != "" {
		t.Errorf("the session cookie is visible to scripts: %v", v)
	}
	b.click("#add")
	b.waitFor("document.getElementById('save')", 10*time.Second)
	b.typeInto("name", "web")
	b.typeInto("ext_port", "5351")
	b.typeInto("int_addr", addr)
	b.typeInto("int_port", itoa(int(port)))
	b.typeInto("description", "web server")
	b.click("#save")
	b.waitFor("document.getElementById('ext_port-err')", 10*time.Second)
	if msg := b.mustEval("document.getElementById('ext_port-err').innerText"); !strings.Contains(msg.(string), "NAT-PMP/PCP port") {
		t.Errorf("message next to ext_port: %v", msg)
	}
	b.screenshot("forward-form.png")
	b.typeInto("ext_port", itoa(int(ext)))
	b.click("#save")
	row := "[...document.querySelectorAll('#forwards tr')].find(r => r.innerText.includes('web server'))"
	b.waitFor(row, 10*time.Second)
	b.waitFor(row+".querySelector('td.active')", 60*time.Second)
	b.screenshot("status.png")
	whileActive()
	b.mustEval(row + ".querySelector('button.danger').click()")
	b.waitFor("!"+row+" && document.getElementById('add')", 10*time.Second)
	b.screenshot("status-after-delete.png")
}

func itoa(n int) string { return strconv.Itoa(n) }
