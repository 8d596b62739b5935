package syslogw

import (
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// listen opens a datagram syslog socket at path.
func listen(t *testing.T, path string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func read(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

func TestWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	srv := listen(t, path)
	w, err := New("pcpgw", filepath.Join(t.TempDir(), "none"), path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.now = func() time.Time { return time.Date(2026, 12, 4, 7, 5, 9, 0, time.UTC) }
	// What slog's text handler writes when the time is left out, as
	// pcpgw does for syslog.
	log := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug, ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}))
	pid := strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		log  func()
		want string
	}{
		{func() { log.Info("started", "mode", "cgn") }, "<30>Dec  4 07:05:09 pcpgw[" + pid + "]: level=INFO msg=started mode=cgn\n"},
		{func() { log.Warn("upstream lost") }, "<28>Dec  4 07:05:09 pcpgw[" + pid + "]: level=WARN msg=\"upstream lost\"\n"},
		{func() { log.Error("boom") }, "<27>Dec  4 07:05:09 pcpgw[" + pid + "]: level=ERROR msg=boom\n"},
		{func() { log.Debug("x") }, "<31>Dec  4 07:05:09 pcpgw[" + pid + "]: level=DEBUG msg=x\n"},
		{func() { w.Write([]byte("plain text\n")) }, "<30>Dec  4 07:05:09 pcpgw[" + pid + "]: plain text\n"},
	} {
		tc.log()
		if diff := cmp.Diff(tc.want, read(t, srv)); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	}

	// The syslog daemon restarts: the next message goes to the new socket.
	srv.Close()
	os.Remove(path)
	srv = listen(t, path)
	if _, err := w.Write([]byte("level=INFO msg=again")); err != nil {
		t.Fatalf("write after the daemon's restart: %v", err)
	}
	if got, want := read(t, srv), "<30>Dec  4 07:05:09 pcpgw["+pid+"]: level=INFO msg=again\n"; got != want {
		t.Errorf("after restart: %q, want %q", got, want)
	}
}

func TestNoSocket(t *testing.T) {
	if _, err := New("pcpgw", filepath.Join(t.TempDir(), "none")); err == nil {
		t.Fatal("New with no socket: no error")
	}
}
