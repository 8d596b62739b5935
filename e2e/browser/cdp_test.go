package browser

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/internal/lab"
)

// chromiumFlags keep headless Chromium off the (closed) network: no
// background requests, updates, sync or QUIC probes.
var chromiumFlags = []string{
	"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
	"--disable-background-networking", "--disable-component-update", "--disable-sync",
	"--disable-extensions", "--disable-default-apps", "--mute-audio",
	"--remote-debugging-pipe", "--window-size=412,915",
}

// chromiumPath finds Debian's chromium; without it the test skips, or
// fails with PCPGW_E2E=1.
func chromiumPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("chromium")
	if err != nil {
		reason := "chromium is not installed (apt-get install chromium): the browser test needs it"
		if lab.E2E() {
			t.Fatal(reason + " (PCPGW_E2E=1: failing instead of skipping)")
		}
		t.Skip(reason)
	}
	return p
}

// browser is headless Chromium driven through the DevTools protocol on
// the pipes of --remote-debugging-pipe (fd 3 in, fd 4 out, messages
// ended by a NUL byte): no port, so it works across network namespaces.
type browser struct {
	t       *testing.T
	cmd     *exec.Cmd
	in      *os.File // our end of Chromium's fd 3
	out     *os.File // our end of Chromium's fd 4
	stderr  strings.Builder
	session string

	mu      sync.Mutex
	id      int
	pending map[int]chan reply
	done    chan struct{} // the reader ended
}

type reply struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// startBrowser runs Chromium (in ns when not nil) with a fresh profile and
// opens one page; the test's cleanup ends it.
func startBrowser(t *testing.T, ns *lab.NS) *browser {
	t.Helper()
	bin := chromiumPath(t)
	args := append(append([]string(nil), chromiumFlags...), "--user-data-dir="+t.TempDir(), "about:blank")
	var cmd *exec.Cmd
	if ns != nil {
		cmd = ns.Cmd(context.Background(), bin, args...)
	} else {
		cmd = exec.Command(bin, args...)
	}
	r3, w3, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r4, w4, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	b := &browser{t: t, cmd: cmd, in: w3, out: r4, pending: map[int]chan reply{}, done: make(chan struct{})}
	cmd.ExtraFiles = []*os.File{r3, w4}
	cmd.Stderr = &lockedWriter{b: &b.stderr, mu: &b.mu}
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r3.Close()
	w4.Close()
	go b.read()
	t.Cleanup(b.close)

	var tgt struct {
		TargetID string `json:"targetId"`
	}
	b.callRoot("Target.createTarget", map[string]any{"url": "about:blank"}, &tgt)
	var att struct {
		SessionID string `json:"sessionId"`
	}
	b.callRoot("Target.attachToTarget", map[string]any{"targetId": tgt.TargetID, "flatten": true}, &att)
	b.session = att.SessionID
	b.call("Emulation.setDeviceMetricsOverride", map[string]any{"width": 412, "height": 915, "deviceScaleFactor": 1, "mobile": true}, nil)
	return b
}

type lockedWriter struct {
	b  *strings.Builder
	mu *sync.Mutex
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.b.Len() < 1<<20 {
		w.b.Write(p)
	}
	return len(p), nil
}

func (b *browser) close() {
	b.in.Close() // Chromium exits when its pipe closes
	exited := make(chan struct{})
	go func() { b.cmd.Wait(); close(exited) }()
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		b.cmd.Process.Kill()
		<-exited
	}
	b.out.Close()
	<-b.done
	if b.t.Failed() {
		b.mu.Lock()
		b.t.Logf("chromium stderr:\n%s", b.stderr.String())
		b.mu.Unlock()
	}
}

// read dispatches the answers; events are ignored.
func (b *browser) read() {
	defer close(b.done)
	br := bufio.NewReaderSize(b.out, 1<<20)
	for {
		msg, err := br.ReadBytes(0)
		if err != nil {
			b.mu.Lock()
			for id, ch := range b.pending {
				close(ch)
				delete(b.pending, id)
			}
			b.mu.Unlock()
			return
		}
		var m struct {
			ID int `json:"id"`
			reply
		}
		if json.Unmarshal(msg[:len(msg)-1], &m) != nil || m.ID == 0 {
			continue
		}
		b.mu.Lock()
		ch := b.pending[m.ID]
		delete(b.pending, m.ID)
		b.mu.Unlock()
		if ch != nil {
			ch <- m.reply
		}
	}
}

func (b *browser) send(session, method string, params any, result any) error {
	b.mu.Lock()
	b.id++
	id := b.id
	ch := make(chan reply, 1)
	b.pending[id] = ch
	b.mu.Unlock()
	m := map[string]any{"id": id, "method": method, "params": params}
	if session != "" {
		m["sessionId"] = session
	}
	data, _ := json.Marshal(m)
	if _, err := b.in.Write(append(data, 0)); err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	select {
	case r, ok := <-ch:
		if !ok {
			return fmt.Errorf("%s: chromium went away", method)
		}
		if r.Error != nil {
			return fmt.Errorf("%s: %s (%d)", method, r.Error.Message, r.Error.Code)
		}
		if result != nil {
			return json.Unmarshal(r.Result, result)
		}
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("%s: no answer in 30 s", method)
	}
}

func (b *browser) callRoot(method string, params, result any) {
	b.t.Helper()
	if err := b.send("", method, params, result); err != nil {
		b.t.Fatal(err)
	}
}

func (b *browser) call(method string, params, result any) {
	b.t.Helper()
	if err := b.send(b.session, method, params, result); err != nil {
		b.t.Fatal(err)
	}
}

// eval runs a JavaScript expression in the page and returns its value.
func (b *browser) eval(expr string) (any, error) {
	var r struct {
		Result struct {
			Value any `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	if err := b.send(b.session, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}, &r); err != nil {
		return nil, err
	}
	if r.ExceptionDetails != nil {
		return nil, errors.New(r.ExceptionDetails.Text)
	}
	return r.Result.Value, nil
}

func (b *browser) mustEval(expr string) any {
	b.t.Helper()
	v, err := b.eval(expr)
	if err != nil {
		b.t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// waitFor polls a JavaScript condition until it is true (at most timeout;
// a page being loaded answers with an error, tried again).
func (b *browser) waitFor(cond string, timeout time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		v, err := b.eval("document.readyState === 'complete' && !!(" + cond + ")")
		if err == nil && v == true {
			return
		}
		if time.Now().After(deadline) {
			body, _ := b.eval("document.location.href + '\\n' + (document.body ? document.body.innerText : '')")
			b.t.Fatalf("waiting %v for %s: %v; page:\n%v", timeout, cond, err, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (b *browser) navigate(url string) {
	b.t.Helper()
	b.call("Page.navigate", map[string]any{"url": url}, nil)
}

// typeInto focuses the element and types text as a user does.
func (b *browser) typeInto(id, text string) {
	b.t.Helper()
	b.mustEval(fmt.Sprintf("(e => { e.focus(); e.select && e.select(); })(document.getElementById(%q))", id))
	b.call("Input.insertText", map[string]any{"text": text}, nil)
}

func (b *browser) click(selector string) {
	b.t.Helper()
	if v := b.mustEval(fmt.Sprintf("(e => { if (!e) return false; e.click(); return true; })(document.querySelector(%q))", selector)); v != true {
		b.t.Fatalf("nothing to click at %s", selector)
	}
}

// screenshot saves the whole page as PNG under the test's artifact
// directory (go test -artifacts keeps it; -v logs the path).
func (b *browser) screenshot(name string) string {
	b.t.Helper()
	var r struct {
		Data string `json:"data"`
	}
	b.call("Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true}, &r)
	png, err := base64.StdEncoding.DecodeString(r.Data)
	if err != nil || len(png) < 8 || string(png[1:4]) != "PNG" {
		b.t.Fatalf("screenshot %s: not a PNG (%v)", name, err)
	}
	p := filepath.Join(b.t.ArtifactDir(), name)
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot %s", p)
	return p
}
