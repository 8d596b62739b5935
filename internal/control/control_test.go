package control

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

type fakeSource struct{}

func (fakeSource) Status() Status {
	return Status{Mode: "nat444", External: "203.0.113.1", Mappings: 1}
}
func (fakeSource) List() []Row {
	return []Row{{ID: 1, Proto: "tcp", External: "203.0.113.1:18080", WANPort: 18080, Internal: "192.0.2.100:8080", LeaseLeft: -1, Origin: "upnp"},
		{ID: 2, Proto: "tcp", WANPort: 18443, Internal: "192.0.2.100:443", LeaseLeft: -1, Origin: "static", Upstream: "failing",
			Error: "CANNOT_PROVIDE_EXTERNAL: the provider refused external port 18443", RetryAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}}
}

// A row the provider made carries no error nor retry time in JSON.
func TestRowJSONOmitsNoError(t *testing.T) {
	b, err := json.Marshal(fakeSource{}.List()[0])
	if err != nil {
		t.Fatal(err)
	}
	if s := string(b); strings.Contains(s, `"error"`) || strings.Contains(s, `"retry_at"`) {
		t.Errorf("row without error: %s", s)
	}
	b, _ = json.Marshal(fakeSource{}.List()[1])
	if s := string(b); !strings.Contains(s, `"error":"CANNOT_PROVIDE_EXTERNAL: the provider refused external port 18443"`) ||
		!strings.Contains(s, `"retry_at":"2026-01-02T03:04:05Z"`) {
		t.Errorf("failing row: %s", s)
	}
}

func serve(t *testing.T, path string) *Server {
	t.Helper()
	s, err := Listen(path, fakeSource{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return s
}

func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pcpgw.sock")
	serve(t, path)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want 0600", fi.Mode().Perm())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var st Status
	if err := Ask(ctx, path, "status", &st); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(fakeSource{}.Status(), st); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
	var rows []Row
	if err := Ask(ctx, path, "list", &rows); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(fakeSource{}.List(), rows); diff != "" {
		t.Errorf("list (-want +got):\n%s", diff)
	}
	var e map[string]string
	if err := Ask(ctx, path, "reboot", &e); err != nil || e["error"] == "" {
		t.Errorf("unknown request: %v %v", e, err)
	}
	// A second daemon must not take over a live socket.
	if _, err := Listen(path, fakeSource{}, nil); err == nil {
		t.Error("took over a live socket")
	}
}

func TestStaleSocketReplacedAndRemovedOnClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pcpgw.sock")
	// A socket file nobody listens on, as a killed daemon leaves it.
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	s := serve(t, path)
	s.Close()
	s.Close() // idempotent
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("socket left after Close: %v", err)
	}
	if err := Ask(context.Background(), path, "status", &Status{}); err == nil {
		t.Error("answered after Close")
	}
}
