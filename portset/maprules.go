package portset

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// MapRule is what OpenWrt's map rules file (/tmp/map-<cfg>.rules) says
// about this CPE: its Basic Mapping Rule.
type MapRule struct {
	// Type is map-e, map-t or lw4o6 (the rule's type; map-e when it
	// names none, as map.sh assumes).
	Type string
	// Addr is the IPv4 address the CPE shares (RULE_<k>_IPV4ADDR).
	Addr netip.Addr
	// Ports is the CPE's port set: RULE_<k>_PORTSETS, or, in a file
	// without it, the set of RULE_<k>_PSID (a fork's addition) with the
	// rule's PSIDLEN and OFFSET. Empty when the PSID length is 0: the
	// whole address is the CPE's (Full).
	Ports Set
	// PSID is the rule's offset, length and (when the file has it) PSID.
	PSID PSID
	// EALen is the rule's EA-bits length.
	EALen int
	// Full reports a rule with no port set (PSID length 0).
	Full bool
}

// ErrNoBMR is returned by ParseMapRules for a file that names no Basic
// Mapping Rule (mapcalc found no delegated prefix matching the rule:
// map.sh reports NO_MATCHING_PD and the interface stays down).
var ErrNoBMR = errors.New("portset: the map rules name no basic mapping rule (RULE_BMR)")

// maxRulesFile bounds what ParseMapRules reads.
const maxRulesFile = 64 << 10

// ParseMapRules reads OpenWrt's map rules file (see the package doc).
// Unknown lines are ignored; the BMR's address and port set must be
// well formed.
func ParseMapRules(b []byte) (MapRule, error) {
	if len(b) > maxRulesFile {
		return MapRule{}, fmt.Errorf("portset: map rules of %d bytes: too long", len(b))
	}
	vars := map[string]string{}
	var ruleType string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, maxRulesFile)
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok {
			continue
		}
		if k == "rule" {
			// type=map-e,ipv6prefix=...: getsubopt's syntax.
			for _, kv := range strings.Split(v, ",") {
				if t, ok := strings.CutPrefix(kv, "type="); ok {
					ruleType = t
				}
			}
			continue
		}
		vars[k] = unquote(v)
	}
	if err := sc.Err(); err != nil {
		return MapRule{}, fmt.Errorf("portset: map rules: %w", err)
	}
	bmr, ok := vars["RULE_BMR"]
	if !ok {
		return MapRule{}, ErrNoBMR
	}
	if n, err := strconv.Atoi(bmr); err != nil || n < 1 || n > 1000 {
		return MapRule{}, fmt.Errorf("portset: map rules: RULE_BMR=%q is not a rule number", bmr)
	}
	get := func(name string) (string, bool) {
		v, ok := vars["RULE_"+bmr+"_"+name]
		return v, ok
	}
	r := MapRule{Type: ruleType}
	if r.Type == "" {
		r.Type = "map-e"
	}
	switch r.Type {
	case "map-e", "map-t", "lw4o6":
	default:
		return MapRule{}, fmt.Errorf("portset: map rules: rule type %q is not map-e, map-t or lw4o6", r.Type)
	}
	a, ok := get("IPV4ADDR")
	if !ok {
		return MapRule{}, fmt.Errorf("portset: map rules: rule %s has no IPv4 address (RULE_%s_IPV4ADDR)", bmr, bmr)
	}
	addr, err := netip.ParseAddr(a)
	if err != nil || !addr.Is4() || addr.IsUnspecified() {
		return MapRule{}, fmt.Errorf("portset: map rules: RULE_%s_IPV4ADDR=%q is not an IPv4 address", bmr, a)
	}
	r.Addr = addr
	num := func(name string, limit int) (int, bool, error) {
		v, ok := get(name)
		if !ok {
			return 0, false, nil
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > limit {
			return 0, false, fmt.Errorf("portset: map rules: RULE_%s_%s=%q is not a number from 0 to %d", bmr, name, v, limit)
		}
		return n, true, nil
	}
	psidLen, hasLen, err := num("PSIDLEN", 16)
	if err != nil {
		return MapRule{}, err
	}
	offset, _, err := num("OFFSET", 16)
	if err != nil {
		return MapRule{}, err
	}
	if r.EALen, _, err = num("EALEN", 48); err != nil {
		return MapRule{}, err
	}
	psid, hasPSID, err := num("PSID", 65535)
	if err != nil {
		return MapRule{}, err
	}
	r.PSID = PSID{Offset: uint8(offset), Len: uint8(psidLen), ID: uint16(psid)}
	if sets, ok := get("PORTSETS"); ok && strings.TrimSpace(sets) != "" {
		if r.Ports, err = Parse(sets); err != nil {
			return MapRule{}, fmt.Errorf("portset: map rules: RULE_%s_PORTSETS: %w", bmr, err)
		}
		if r.Ports.Empty() {
			// Separators only (","): neither a set nor the whole address.
			return MapRule{}, fmt.Errorf("portset: map rules: RULE_%s_PORTSETS %q names no port", bmr, sets)
		}
		return r, nil
	}
	switch {
	case !hasLen || psidLen == 0:
		// mapcalc writes no port sets for a rule without a PSID: the
		// whole address is the CPE's.
		r.Full = true
	case hasPSID:
		if r.Ports, err = r.PSID.Set(); err != nil {
			return MapRule{}, fmt.Errorf("portset: map rules: rule %s: %w", bmr, err)
		}
	default:
		return MapRule{}, fmt.Errorf("portset: map rules: rule %s has a PSID length of %d but neither port sets nor a PSID", bmr, psidLen)
	}
	return r, nil
}

// unquote removes the single quotes mapcalc puts around a value with
// spaces ('4112-4127 8208-8223 ').
func unquote(v string) string {
	if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
		return v[1 : len(v)-1]
	}
	return v
}
