package mapping

import (
	"net/netip"
	"strings"
	"unicode/utf8"
)

// Rule is one permission rule, with the meaning of miniupnpd's perm_rule
// (`allow|deny ext_ports int_addr int_ports`): the first rule matching the
// external port, the internal address and the internal port decides; no
// match allows.
type Rule struct {
	Allow   bool
	ExtLo   uint16
	ExtHi   uint16
	IntAddr netip.Prefix
	IntLo   uint16
	IntHi   uint16
	Comment string
}

// DefaultRules are miniupnpd's defaults: LAN hosts may map ports 1024-65535
// to their ports 1024-65535, nothing else.
var DefaultRules = []Rule{
	{Allow: true, ExtLo: 1024, ExtHi: 65535, IntAddr: netip.MustParsePrefix("0.0.0.0/0"), IntLo: 1024, IntHi: 65535},
	{Allow: false, ExtLo: 0, ExtHi: 65535, IntAddr: netip.MustParsePrefix("0.0.0.0/0"), IntLo: 0, IntHi: 65535},
}

func (r Rule) match(ext uint16, addr netip.Addr, intPort uint16) bool {
	return ext >= r.ExtLo && ext <= r.ExtHi && intPort >= r.IntLo && intPort <= r.IntHi &&
		r.IntAddr.IsValid() && r.IntAddr.Contains(addr.Unmap())
}

// permitted reports whether rules allow mapping external port ext to
// addr:intPort. As in miniupnpd, a request no rule matches is allowed
// (DefaultRules end with a rule denying everything else).
func permitted(rules []Rule, ext uint16, addr netip.Addr, intPort uint16) bool {
	for _, r := range rules {
		if r.match(ext, addr, intPort) {
			return r.Allow
		}
	}
	return true
}

// MaxDescription is the longest description kept, in bytes.
const MaxDescription = 256

// SanitizeDescription makes an app's description safe for the state file,
// the lease file, logs and UPnP answers: valid UTF-8, control characters
// (CR, LF, NUL, ':' separators of the lease file excluded) replaced by a
// space, and at most MaxDescription bytes cut on a rune boundary.
func SanitizeDescription(s string) string {
	if s == "" {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == utf8.RuneError, r < 0x20, r == 0x7f, r >= 0x80 && r < 0xa0:
			r = ' '
		}
		if b.Len()+utf8.RuneLen(r) > MaxDescription {
			break
		}
		b.WriteRune(r)
	}
	return strings.TrimSpace(b.String())
}
