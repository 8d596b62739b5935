package webui

import (
	"strings"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/internal/control"
)

// TestRefreshWhilePending: the status page reloads itself (as a GET of /)
// while a mapping waits for the provider, and not otherwise.
func TestRefreshWhilePending(t *testing.T) {
	const meta = `<meta http-equiv="refresh" content="3; url=/">`
	if got := renderIndex(indexData{Status: control.Status{Pending: 1}}); !strings.Contains(got, meta) {
		t.Errorf("no refresh while pending:\n%.400s", got)
	}
	if got := renderIndex(indexData{Status: control.Status{}}); strings.Contains(got, "refresh") {
		t.Errorf("refresh with nothing pending:\n%.400s", got)
	}
}

// TestRefreshAtRetry: with a forward failing, the page reloads just after
// its next retry (so "asked again in" never goes stale), within 3-60 s.
func TestRefreshAtRetry(t *testing.T) {
	now := time.Date(2026, 11, 24, 6, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		rows []control.Row
		want int
	}{
		{nil, 0},
		{[]control.Row{{}}, 0},
		{[]control.Row{{RetryAt: now.Add(25 * time.Second)}, {RetryAt: now.Add(40 * time.Second)}}, 26},
		{[]control.Row{{RetryAt: now.Add(-time.Second)}}, 3},
		{[]control.Row{{RetryAt: now.Add(time.Hour)}}, 60},
	} {
		if got := retryRefresh(tt.rows, now); got != tt.want {
			t.Errorf("retryRefresh(%v) = %d, want %d", tt.rows, got, tt.want)
		}
	}
	got := renderIndex(indexData{RetryRefresh: 26})
	if !strings.Contains(got, `<meta http-equiv="refresh" content="26; url=/">`) {
		t.Errorf("no refresh at the retry:\n%.400s", got)
	}
}

// TestPortSetShown: in portset mode the page shows the port set instead of
// the PCP server (there is nothing upstream to ask).
func TestPortSetShown(t *testing.T) {
	text := "ports 4112-4127, 8208-8223, 12304-12319, ...: 240 usable, 64 for mappings (49168-49183, ...), 176 for outbound connections, 12 mapped"
	got := renderIndex(indexData{Status: control.Status{Mode: "portset", PortSet: &control.PortSet{Text: text}}})
	if !strings.Contains(got, `<dt>Port set</dt><dd id="portset">`+text+`</dd>`) || strings.Contains(got, "PCP server") {
		t.Errorf("portset status:\n%s", got)
	}
	if got := renderIndex(indexData{Status: control.Status{Mode: "nat444", Upstream: control.Upstream{Kind: "pcp"}}}); strings.Contains(got, "Port set") || !strings.Contains(got, "PCP server") {
		t.Errorf("nat444 status:\n%.600s", got)
	}
}
