package webui

import (
	"strings"
	"testing"

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
