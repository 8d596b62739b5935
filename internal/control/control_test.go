package control

import (
	"context"
	"encoding/json"
	"errors"
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

// Delete refuses the static forward of List (tcp 18443, id 2) as the
// core does, deletes the UPnP mapping (tcp 18080, id 1), and finds
// nothing else.
func (fakeSource) Delete(_ context.Context, r DeleteRequest) (int, error) {
	switch {
	case r.ID == 2 || r == DeleteRequest{Proto: "tcp", Port: 18443}:
		return 0, errors.New("tcp 18443 is a static forward: remove it in /etc/config/pcpgw")
	case r.ID == 1 || r == DeleteRequest{Proto: "tcp", Port: 18080}:
		return 1, nil
	}
	return 0, nil
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

func TestParseDelete(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want DeleteRequest
		err  string
	}{
		{[]string{"tcp", "18080"}, DeleteRequest{Proto: "tcp", Port: 18080}, ""},
		{[]string{"udp", "65535"}, DeleteRequest{Proto: "udp", Port: 65535}, ""},
		{[]string{"id", "7"}, DeleteRequest{ID: 7}, ""},
		{[]string{"id", "4294967295"}, DeleteRequest{ID: 4294967295}, ""},
		{nil, DeleteRequest{}, "delete takes PROTO PORT (tcp or udp, 1-65535) or id ID"},
		{[]string{"tcp"}, DeleteRequest{}, "delete takes PROTO PORT (tcp or udp, 1-65535) or id ID"},
		{[]string{"tcp", "1", "2"}, DeleteRequest{}, "delete takes PROTO PORT (tcp or udp, 1-65535) or id ID"},
		{[]string{"sctp", "80"}, DeleteRequest{}, `protocol "sctp" is neither tcp nor udp`},
		{[]string{"TCP", "80"}, DeleteRequest{}, `protocol "TCP" is neither tcp nor udp`},
		{[]string{"tcp", "0"}, DeleteRequest{}, `port "0" is not a number from 1 to 65535`},
		{[]string{"tcp", "65536"}, DeleteRequest{}, `port "65536" is not a number from 1 to 65535`},
		{[]string{"tcp", "-1"}, DeleteRequest{}, `port "-1" is not a number from 1 to 65535`},
		{[]string{"tcp", "http"}, DeleteRequest{}, `port "http" is not a number from 1 to 65535`},
		{[]string{"id", "0"}, DeleteRequest{}, `mapping id "0" is not a number from 1 to 4294967295`},
		{[]string{"id", "x"}, DeleteRequest{}, `mapping id "x" is not a number from 1 to 4294967295`},
	} {
		got, err := ParseDelete(tc.args)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("ParseDelete(%q) = %+v, %v; want error %q", tc.args, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseDelete(%q) = %+v, %v; want %+v", tc.args, got, err, tc.want)
		}
		// The request line parses back to the same request.
		back, err := ParseDelete(strings.Fields(got.String())[1:])
		if err != nil || back != got {
			t.Errorf("%q parses back to %+v, %v", got.String(), back, err)
		}
	}
}

// TestDelete: the answers to delete requests over the socket, raw (the
// JSON the rpcd plugin passes on) and through Delete.
func TestDelete(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pcpgw.sock")
	serve(t, path)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, tc := range []struct {
		line string
		want string
	}{
		{"delete tcp 18080", `{"deleted":1}`},
		{"delete id 1", `{"deleted":1}`},
		{"delete udp 18080", `{"deleted":0}`},
		{"delete tcp 18443", `{"deleted":0,"error":"tcp 18443 is a static forward: remove it in /etc/config/pcpgw"}`},
		{"delete id 2", `{"deleted":0,"error":"tcp 18443 is a static forward: remove it in /etc/config/pcpgw"}`},
		{"delete tcp 99999", `{"deleted":0,"error":"port \"99999\" is not a number from 1 to 65535"}`},
		{"delete", `{"deleted":0,"error":"delete takes PROTO PORT (tcp or udp, 1-65535) or id ID"}`},
		{"deleted tcp 1", `{"error":"unknown request"}`},
		{"status now", `{"error":"unknown request"}`},
	} {
		var raw json.RawMessage
		if err := Ask(ctx, path, tc.line, &raw); err != nil {
			t.Fatalf("%s: %v", tc.line, err)
		}
		if string(raw) != tc.want {
			t.Errorf("%s: answer %s, want %s", tc.line, raw, tc.want)
		}
	}
	if n, err := Delete(ctx, path, DeleteRequest{Proto: "tcp", Port: 18080}); n != 1 || err != nil {
		t.Errorf("Delete tcp 18080 = %d, %v; want 1, nil", n, err)
	}
	if n, err := Delete(ctx, path, DeleteRequest{ID: 2}); n != 0 || err == nil || !strings.Contains(err.Error(), "static forward") {
		t.Errorf("Delete id 2 = %d, %v; want 0 and the static forward error", n, err)
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
