package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/pcpgw/pcpgw/config/uci"
)

// PortRange is an inclusive range of ports.
type PortRange struct{ Lo, Hi uint16 }

// Contains reports whether p is in r.
func (r PortRange) Contains(p uint16) bool { return r.Lo <= p && p <= r.Hi }

// String gives "lo-hi", or "lo" for a single port.
func (r PortRange) String() string {
	if r.Lo == r.Hi {
		return strconv.Itoa(int(r.Lo))
	}
	return fmt.Sprintf("%d-%d", r.Lo, r.Hi)
}

// ParsePortRange reads "x", "x-y" or "x:y" (miniupnpd's forms).
func ParsePortRange(v string) (PortRange, error) {
	lo, hi, ok := strings.Cut(v, "-")
	if !ok {
		lo, hi, ok = strings.Cut(v, ":")
	}
	if !ok {
		hi = lo
	}
	a, err1 := strconv.ParseUint(strings.TrimSpace(lo), 10, 16)
	b, err2 := strconv.ParseUint(strings.TrimSpace(hi), 10, 16)
	if err1 != nil || err2 != nil {
		return PortRange{}, fmt.Errorf("%q is not a port or port range (x, x-y)", v)
	}
	r := PortRange{uint16(a), uint16(b)}
	if r.Lo > r.Hi {
		return r, fmt.Errorf("port range %q runs backwards", v)
	}
	return r, nil
}

// PermRule is one perm_rule section, with the meaning of miniupnpd's
// /etc/config/upnpd: a request to map external port ext to port intPort
// of LAN host addr matches when all three are in range; the first rule
// that matches allows or denies it, and a request no rule matches is
// allowed ([Permitted]).
//
//	config perm_rule
//		option action    'allow'        # or 'deny'; default deny
//		option ext_ports '1024-65535'   # x, x-y or x:y; default 0-65535
//		option int_addr  '0.0.0.0/0'    # address, address/len or IPv4 address/mask; default 0.0.0.0/0
//		option int_ports '1024-65535'   # default 0-65535
//		option comment   'Allow high ports'
type PermRule struct {
	Allow    bool
	ExtPorts PortRange
	IntAddr  netip.Prefix // masked
	IntPorts PortRange
	Comment  string
	// Line is the line of the section in the file, 0 for a built-in rule.
	Line int
}

// Match reports whether the rule applies to a mapping of external port ext
// to addr:intPort. IPv4-mapped addresses are taken as IPv4; a zone is
// ignored.
func (r PermRule) Match(ext uint16, addr netip.Addr, intPort uint16) bool {
	addr = addr.Unmap().WithZone("")
	return r.ExtPorts.Contains(ext) && r.IntPorts.Contains(intPort) && r.IntAddr.Contains(addr)
}

// Permitted applies rules as miniupnpd does: the first rule that matches
// decides; when none matches, the mapping is allowed.
func Permitted(rules []PermRule, ext uint16, addr netip.Addr, intPort uint16) bool {
	for _, r := range rules {
		if r.Match(ext, addr, intPort) {
			return r.Allow
		}
	}
	return true
}

func (r PermRule) check() error {
	if r.ExtPorts.Lo > r.ExtPorts.Hi || r.IntPorts.Lo > r.IntPorts.Hi {
		return fmt.Errorf("port range runs backwards")
	}
	if !r.IntAddr.IsValid() {
		return fmt.Errorf("no int_addr")
	}
	return nil
}

// ParsePrefix reads int_addr: an address (a /32 or /128), address/len, or
// an IPv4 address/dotted mask with contiguous bits. The result is masked.
func ParsePrefix(v string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(v); err == nil && a.Zone() == "" {
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	addr, mask, ok := strings.Cut(v, "/")
	if ok && strings.Contains(mask, ".") {
		a, err1 := netip.ParseAddr(addr)
		m, err2 := netip.ParseAddr(mask)
		if err1 == nil && err2 == nil && a.Is4() && m.Is4() {
			bits, ok := maskBits(m.As4())
			if !ok {
				return netip.Prefix{}, fmt.Errorf("%q: mask %s is not contiguous", v, mask)
			}
			return netip.PrefixFrom(a, bits).Masked(), nil
		}
	}
	p, err := netip.ParsePrefix(v)
	if err != nil {
		return p, fmt.Errorf("%q is not an address or prefix", v)
	}
	if p.Addr().Is4In6() {
		if p.Bits() < 96 {
			return p, fmt.Errorf("%q is not an address or prefix", v)
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

func maskBits(m [4]byte) (int, bool) {
	v := uint32(m[0])<<24 | uint32(m[1])<<16 | uint32(m[2])<<8 | uint32(m[3])
	n := 0
	for v&(1<<31) != 0 {
		n++
		v <<= 1
	}
	return n, v == 0
}

// sectionReader walks the options of one section, warning about unknown
// ones.
type sectionReader struct {
	file string
	s    *uci.Section
}

// value returns the option's single value and line, or def and the
// section's line.
func (sr sectionReader) value(name, def string) (string, int, error) {
	o := sr.s.Option(name)
	if o == nil {
		return def, sr.s.Line, nil
	}
	if o.List {
		return "", o.Line(), sr.errorf(o.Line(), "option %s: takes one value, not a list", name)
	}
	return o.Values[0], o.Line(), nil
}

func (sr sectionReader) errorf(line int, format string, args ...any) error {
	return &Error{File: sr.file, Line: line, Msg: sr.s.Type + ": " + fmt.Sprintf(format, args...)}
}

func (sr sectionReader) warnUnknown(known []string, warnf func(int, string, ...any)) {
	for _, o := range sr.s.Options {
		found := false
		for _, k := range known {
			found = found || k == o.Name
		}
		if !found {
			warnf(o.Line(), "unknown option '%s' in section %s", o.Name, sr.s.Type)
		}
	}
}

func parsePermRule(file string, s *uci.Section, warnf func(int, string, ...any)) (PermRule, error) {
	sr := sectionReader{file, s}
	sr.warnUnknown([]string{"action", "ext_ports", "int_addr", "int_ports", "comment"}, warnf)
	r := PermRule{Line: s.Line}
	v, line, err := sr.value("action", "deny")
	if err != nil {
		return r, err
	}
	switch strings.ToLower(v) {
	case "allow":
		r.Allow = true
	case "deny":
	default:
		return r, sr.errorf(line, "option action: %q is neither allow nor deny", v)
	}
	for _, pr := range []struct {
		name string
		dst  *PortRange
	}{{"ext_ports", &r.ExtPorts}, {"int_ports", &r.IntPorts}} {
		v, line, err := sr.value(pr.name, "0-65535")
		if err != nil {
			return r, err
		}
		if *pr.dst, err = ParsePortRange(v); err != nil {
			return r, sr.errorf(line, "option %s: %v", pr.name, err)
		}
	}
	v, line, err = sr.value("int_addr", "0.0.0.0/0")
	if err != nil {
		return r, err
	}
	if r.IntAddr, err = ParsePrefix(v); err != nil {
		return r, sr.errorf(line, "option int_addr: %v", err)
	}
	if r.Comment, _, err = sr.value("comment", ""); err != nil {
		return r, err
	}
	return r, nil
}

func (r PermRule) section() *uci.Section {
	action := "deny"
	if r.Allow {
		action = "allow"
	}
	s := &uci.Section{Type: "perm_rule"}
	add(s, "action", action)
	add(s, "ext_ports", r.ExtPorts.String())
	add(s, "int_addr", r.IntAddr.String())
	add(s, "int_ports", r.IntPorts.String())
	add(s, "comment", r.Comment)
	return s
}

// add appends an option unless v is empty (UCI cannot hold an empty
// option).
func add(s *uci.Section, name, v string) {
	if v != "" {
		s.Options = append(s.Options, &uci.Option{Name: name, Values: []string{v}})
	}
}

// Proto is the protocol(s) of a static forward.
type Proto uint8

const (
	ProtoTCP  Proto = 1
	ProtoUDP  Proto = 2
	ProtoBoth       = ProtoTCP | ProtoUDP
)

// Has reports whether p includes q.
func (p Proto) Has(q Proto) bool { return q != 0 && p&q == q }

// String gives tcp, udp or both.
func (p Proto) String() string {
	switch p {
	case ProtoTCP:
		return "tcp"
	case ProtoUDP:
		return "udp"
	case ProtoBoth:
		return "both"
	}
	return fmt.Sprintf("Proto(%d)", uint8(p))
}

// ParseProto reads tcp, udp, both, or "tcp udp" as fw4 writes it.
func ParseProto(v string) (Proto, error) {
	var p Proto
	for _, w := range strings.FieldsFunc(strings.ToLower(v), func(r rune) bool { return r == ' ' || r == ',' || r == '/' }) {
		switch w {
		case "tcp":
			p |= ProtoTCP
		case "udp":
			p |= ProtoUDP
		case "both", "tcpudp":
			p |= ProtoBoth
		default:
			return 0, fmt.Errorf("%q is not tcp, udp or both", v)
		}
	}
	if p == 0 {
		return 0, fmt.Errorf("%q is not tcp, udp or both", v)
	}
	return p, nil
}

// Forward is a static port forward (a forward section, issue 11): external
// port ExtPort of the provider's address to IntAddr:IntPort, kept alive at
// the provider while configured and enabled.
//
//	config forward
//		option name        'web'            # default: the section's name
//		option proto       'tcp'            # tcp, udp or both; default both
//		option ext_port    '8080'           # required
//		option int_addr    '192.168.1.10'   # required
//		option int_port    '80'             # default: ext_port
//		option enabled     '1'              # default on
//		option description 'NAS web page'
type Forward struct {
	Name        string
	Proto       Proto
	ExtPort     uint16
	IntAddr     netip.Addr
	IntPort     uint16
	Enabled     bool
	Description string
	// Line is the line of the section in the file.
	Line int
}

func (f Forward) check(httpPort int) error {
	switch {
	case f.Proto != ProtoTCP && f.Proto != ProtoUDP && f.Proto != ProtoBoth:
		return fmt.Errorf("no protocol")
	case f.ExtPort == 0:
		return fmt.Errorf("no ext_port")
	case isPCPPort(int(f.ExtPort)):
		return fmt.Errorf("ext_port %d is the NAT-PMP/PCP port", f.ExtPort)
	case httpPort != 0 && int(f.ExtPort) == httpPort:
		return fmt.Errorf("ext_port %d is pcpgw's UPnP HTTP port", f.ExtPort)
	case f.IntPort == 0:
		return fmt.Errorf("no int_port")
	case !f.IntAddr.IsValid():
		return fmt.Errorf("no int_addr")
	case f.IntAddr.IsUnspecified() || f.IntAddr.IsMulticast() || f.IntAddr.IsLoopback() || f.IntAddr.Is4In6():
		return fmt.Errorf("int_addr %s is not a LAN host's address", f.IntAddr)
	}
	return nil
}

func parseForward(file string, s *uci.Section, warnf func(int, string, ...any)) (Forward, error) {
	sr := sectionReader{file, s}
	sr.warnUnknown([]string{"name", "proto", "ext_port", "int_addr", "int_port", "enabled", "description"}, warnf)
	fw := Forward{Line: s.Line}
	var err error
	if fw.Name, _, err = sr.value("name", s.Name); err != nil {
		return fw, err
	}
	v, line, err := sr.value("proto", "both")
	if err != nil {
		return fw, err
	}
	if fw.Proto, err = ParseProto(v); err != nil {
		return fw, sr.errorf(line, "option proto: %v", err)
	}
	v, line, err = sr.value("ext_port", "")
	if err != nil {
		return fw, err
	}
	if v == "" {
		return fw, sr.errorf(line, "option ext_port is missing")
	}
	p, err := parsePort(v, false)
	if err != nil {
		return fw, sr.errorf(line, "option ext_port: %v", err)
	}
	fw.ExtPort = uint16(p)
	if v, line, err = sr.value("int_port", v); err != nil {
		return fw, err
	}
	if p, err = parsePort(v, false); err != nil {
		return fw, sr.errorf(line, "option int_port: %v", err)
	}
	fw.IntPort = uint16(p)
	if v, line, err = sr.value("int_addr", ""); err != nil {
		return fw, err
	}
	if v == "" {
		return fw, sr.errorf(line, "option int_addr is missing")
	}
	if fw.IntAddr, err = netip.ParseAddr(v); err != nil {
		return fw, sr.errorf(line, "option int_addr: %q is not an address", v)
	}
	if v, line, err = sr.value("enabled", "1"); err != nil {
		return fw, err
	}
	if fw.Enabled, err = parseBool(v); err != nil {
		return fw, sr.errorf(line, "option enabled: %v", err)
	}
	if fw.Description, _, err = sr.value("description", ""); err != nil {
		return fw, err
	}
	return fw, nil
}

func (f Forward) section() *uci.Section {
	s := &uci.Section{Type: "forward"}
	add(s, "name", f.Name)
	add(s, "proto", f.Proto.String())
	add(s, "ext_port", strconv.Itoa(int(f.ExtPort)))
	if f.IntAddr.IsValid() {
		add(s, "int_addr", f.IntAddr.String())
	}
	add(s, "int_port", strconv.Itoa(int(f.IntPort)))
	add(s, "enabled", formatBool(f.Enabled))
	add(s, "description", f.Description)
	return s
}
