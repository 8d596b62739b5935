package lab

import (
	"strings"
	"testing"
)

// TestMiniupnpdConf: SecureMode and Rules reach miniupnpd.conf; without
// them the file holds LAB.md's secure_mode=no and permission rules.
func TestMiniupnpdConf(t *testing.T) {
	l := &Lab{ISPIf: "pxi0", ISPPubIf: "pxi1", Dir: t.TempDir()}
	lines := func(o MiniupnpdOptions) []string {
		m := &Miniupnpd{lab: l, opt: o, LeaseFile: "/x/leases"}
		return strings.Split(strings.TrimSpace(m.conf()), "\n")
	}
	def := lines(MiniupnpdOptions{})
	if !contains(def, "secure_mode=no") || def[len(def)-1] != "deny 0-65535 0.0.0.0/0 0-65535" || !contains(def, "allow 1024-65535 192.0.2.0/24 1-65535") {
		t.Errorf("default conf:\n%s", strings.Join(def, "\n"))
	}
	rules := []string{"allow 1024-65535 0.0.0.0/0 1024-65535", "deny 0-65535 0.0.0.0/0 0-65535"}
	got := lines(MiniupnpdOptions{SecureMode: true, Rules: rules})
	if !contains(got, "secure_mode=yes") || contains(got, "secure_mode=no") {
		t.Errorf("SecureMode: conf:\n%s", strings.Join(got, "\n"))
	}
	if tail := got[len(got)-2:]; tail[0] != rules[0] || tail[1] != rules[1] || contains(got, "allow 1024-65535 192.0.2.0/24 1-65535") {
		t.Errorf("Rules: conf:\n%s", strings.Join(got, "\n"))
	}
}

func contains(lines []string, s string) bool {
	for _, l := range lines {
		if l == s {
			return true
		}
	}
	return false
}
