package upnpigd

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pcpgw/pcpgw/internal/dnsq"
	"github.com/pcpgw/pcpgw/mapping"
)

// upnpError is a UPnP error decided by the front-end itself (argument
// checks); errors of the core are translated by mapping.UPnPError.
type upnpError struct {
	code int
	desc string
}

func (e *upnpError) Error() string { return fmt.Sprintf("upnp error %d %s", e.code, e.desc) }

// UPnP error codes the front-end decides itself, beside those of
// mapping/translate.go.
const (
	upnpInvalidAction        = 401
	upnpWildCardNotPermitted = 716 // WildCardNotPermittedInExtPort
	upnpReadOnly             = 731 // ReadOnly (WANIPConnection:2 SetConnectionType)
)

func errArgs(format string, a ...any) error {
	return &upnpError{mapping.UPnPInvalidArgs, "Invalid Args: " + fmt.Sprintf(format, a...)}
}

func errCode(code int) error {
	desc := mapping.UPnPDescription(code)
	switch code {
	case upnpWildCardNotPermitted:
		desc = "WildCardNotPermittedInExtPort"
	case mapping.UPnPReservedPort:
		desc = "WildCardNotPermittedInIntPort"
	case upnpReadOnly:
		desc = "ReadOnly"
	}
	return &upnpError{code, desc}
}

func errPinhole(code int) error {
	d := mapping.UPnPDescription(code)
	switch code {
	case mapping.UPnPPinholeNoSuchEntry:
		d = "NoSuchEntry"
	case mapping.UPnPInboundPinholeNotAllowed:
		d = "InboundPinholeNotAllowed"
	case mapping.UPnPProtocolNotSupported:
		d = "ProtocolNotSupported"
	case mapping.UPnPInternalPortWildcard:
		d = "InternalPortWildcardingNotAllowed"
	case mapping.UPnPProtocolWildcard:
		d = "ProtocolWildcardingNotAllowed"
	case mapping.UPnPWildcardNotPermitted:
		d = "WildCardNotPermittedInSrcIP"
	case mapping.UPnPNoPacketSent:
		d = "NoPacketSent"
	case mapping.UPnPNotAuthorized:
		d = "Action not authorized"
	}
	return &upnpError{code, d}
}

// Lease limits.
const (
	igd2MaxLease    = 604800 // IGD:2: 0 and longer leases become 7 days
	pinholeMaxLease = 86400  // WANIPv6FirewallControl:1 LeaseTime range 1-86400
	coreTimeout     = 20 * time.Second
)

// call is one control action being served.
type call struct {
	s    *Server
	sv   *service
	ctx  context.Context
	peer netip.Addr
	args map[string]string
}

func (c *call) arg(name string) (string, error) {
	v, ok := c.args[name]
	if !ok {
		return "", errArgs("missing %s", name)
	}
	return strings.TrimSpace(v), nil
}

func (c *call) ui2(name string) (uint16, error) {
	n, err := c.unsigned(name, "ui2", 16)
	return uint16(n), err
}

func (c *call) ui4(name string) (uint32, error) {
	n, err := c.unsigned(name, "ui4", 32)
	return uint32(n), err
}

// unsigned reads argument name as a UPnP unsigned integer of bits bits.
func (c *call) unsigned(name, typ string, bits int) (uint64, error) {
	v, err := c.arg(name)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(v, 10, bits)
	if err != nil {
		return 0, errArgs("%s: not a %s", name, typ)
	}
	return n, nil
}

func (c *call) boolean(name string) (bool, error) {
	v, err := c.arg(name)
	if err != nil {
		return false, err
	}
	b, err := parseBoolean(v)
	if err != nil {
		return false, errArgs("%s: not a boolean", name)
	}
	return b, nil
}

// proto reads a PortMappingProtocol, in any case. miniupnpd takes every
// value but UDP for TCP; strict refuses what names neither (adding a
// mapping: a TCP port the control point did not name is not opened),
// otherwise (deletes, lookups) such a value is TCP, as in miniupnpd.
func (c *call) proto(name string, strict bool) (mapping.Proto, error) {
	v, err := c.arg(name)
	if err != nil {
		return 0, err
	}
	switch strings.ToUpper(v) {
	case "TCP":
		return mapping.TCP, nil
	case "UDP":
		return mapping.UDP, nil
	}
	if !strict {
		return mapping.TCP, nil
	}
	return 0, errArgs("%s must be TCP or UDP", name)
}

// atoi reads v as C's strtol does, the way miniupnpd reads the numbers
// of control requests: leading white space, an optional sign, then the
// digits up to the first other character ("8080abc" and "8080.0" are
// 8080). digits reports whether there was a digit; n saturates far
// beyond any value a caller takes.
func atoi(v string) (n int64, digits bool) {
	v = strings.TrimLeft(v, " \t\n\v\f\r")
	neg := false
	if v != "" && (v[0] == '+' || v[0] == '-') {
		neg = v[0] == '-'
		v = v[1:]
	}
	for i := 0; i < len(v) && v[i] >= '0' && v[i] <= '9'; i++ {
		digits = true
		if n < 1<<40 {
			n = n*10 + int64(v[i]-'0')
		}
	}
	if neg {
		n = -n
	}
	return n, digits
}

// port reads a port argument as miniupnpd does (atoi: missing or without
// digits is 0), but a value outside 0-65535 is refused: miniupnpd takes
// it modulo 65536 (-1 is 65535, 65616 is 80), which would map or delete a
// port the control point did not name.
func (c *call) port(name string) (uint16, error) {
	v := c.args[name]
	n, _ := atoi(v)
	if n < 0 || n > 65535 {
		return 0, errArgs("%s: %.32q is no port", name, v)
	}
	return uint16(n), nil
}

// lease reads NewLeaseDuration as miniupnpd does: missing or without
// digits is 0; a value outside the ui4 range is the longest lease
// (miniupnpd reads -1 as 4294967295).
func (c *call) lease(name string) uint32 {
	n, _ := atoi(c.args[name])
	if n < 0 || n > math.MaxUint32 {
		return igd2MaxLease
	}
	return uint32(n)
}

// isFalse reports whether a boolean argument says false (in any case). A
// missing, empty or unreadable value is not read as false: miniupnpd
// ignores NewEnabled and NewManage.
func (c *call) isFalse(name string) bool {
	switch strings.ToLower(strings.TrimSpace(c.args[name])) {
	case "0", "false", "no":
		return true
	}
	return false
}

// remoteHost parses a RemoteHost: missing, empty, "*" (or the
// unspecified address) is any; an IGD:2 service also takes a host name
// (hostAddr).
func (c *call) remoteHost(name string, v6 bool) (netip.Addr, error) {
	v := strings.TrimSpace(c.args[name])
	if v == "" || v == "*" {
		return netip.Addr{}, nil
	}
	a, err := c.hostAddr(name, v, v6)
	if err != nil {
		return netip.Addr{}, err
	}
	if a.IsUnspecified() {
		return netip.Addr{}, nil
	}
	if a.Is6() != v6 {
		return netip.Addr{}, errArgs("%s: wrong address family", name)
	}
	return a, nil
}

// hostAddr is the address v names: an IP address, or a host name (UPnP
// IGD:2 WANIPConnection RemoteHost and InternalClient, REQUIREMENTS 33;
// on IGD:1 too, as miniupnpd takes names there) looked up with
// Config.Resolve within Config.ResolveTimeout; the first address of the
// family wanted (IPv6 when v6) is taken. A name that does not exist or has no such address is 402;
// a lookup that fails otherwise (timeout, no DNS server) is 501.
func (c *call) hostAddr(name, v string, v6 bool) (netip.Addr, error) {
	if a, err := netip.ParseAddr(v); err == nil {
		if a.Zone() != "" {
			return netip.Addr{}, errArgs("%s: not an IP address", name)
		}
		return a.Unmap(), nil
	}
	if !isHostName(v) {
		return netip.Addr{}, errArgs("%s: not an IP address", name)
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.s.cfg.ResolveTimeout)
	defer cancel()
	as, err := c.s.cfg.Resolve(ctx, v)
	if err != nil && !dnsq.NotFound(err) {
		c.s.log.Info("name lookup failed", "arg", name, "name", v, "err", err)
		return netip.Addr{}, errCode(mapping.UPnPActionFailed)
	}
	for _, a := range as {
		if a = a.Unmap(); a.Is6() == v6 && a.IsValid() && a.Zone() == "" {
			return a, nil
		}
	}
	family := "IPv4"
	if v6 {
		family = "IPv6"
	}
	return netip.Addr{}, errArgs("%s: %s has no %s address", name, v, family)
}

// isHostName reports whether v is a DNS host name (RFC 1123: labels of
// letters, digits and inner hyphens, 1-63 bytes each, 253 in all; a
// trailing dot allowed).
func isHostName(v string) bool {
	v = strings.TrimSuffix(v, ".")
	if v == "" || len(v) > 253 {
		return false
	}
	for label := range strings.SplitSeq(v, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			ch := label[i]
			if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-') {
				return false
			}
		}
	}
	return true
}

func protoName(p mapping.Proto) string {
	if p == mapping.UDP {
		return "UDP"
	}
	return "TCP"
}

func boolStr(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func itoa[T ~uint16 | ~uint32 | ~uint64 | ~int](v T) string { return strconv.FormatUint(uint64(v), 10) }

func addrStr(a netip.Addr) string {
	if !a.IsValid() || a.IsUnspecified() {
		return ""
	}
	return a.Unmap().String()
}

func (c *call) leaseSecs(m mapping.Mapping) string {
	return itoa(uint64(m.Lease(c.s.now()) / time.Second))
}

// portMappings returns the port mappings (pinholes excluded) in creation
// order.
func (s *Server) portMappings() []mapping.Mapping {
	all := s.core.Find(mapping.Selector{})
	out := all[:0:0]
	for _, m := range all {
		if !m.IsPinhole() {
			out = append(out, m)
		}
	}
	return out
}

// extPort is the external port of m as the control point sees it: the
// port on the external address GetExternalIPAddress reports.
func extPort(m mapping.Mapping) uint16 { return m.External.Port() }

// lookup finds the port mapping of (remote host, external port, proto).
// The core's index by external port answers at once when the control
// point's port is the CPE's WAN port (always, but for a nat444 mapping the
// provider gave another port); only a miss scans the table.
//
// A mapping that moved (the upstream gave it another port after it lost
// its state or was replaced: only AddAnyPortMapping's, NAT-PMP's and
// PCP's, never an exact one) is found by its port now and, failing
// that, by the port its control point was given first (Mapping.Given),
// so that GetSpecificPortMappingEntry and DeletePortMapping of what the
// control point knows still reach it.
func (s *Server) lookup(rh netip.Addr, port uint16, p mapping.Proto) (mapping.Mapping, bool) {
	if m, ok := pick(s.core.Find(mapping.Selector{Proto: p, External: port}), rh, port, p, extPort); ok {
		return m, true
	}
	all := s.portMappings()
	if m, ok := pick(all, rh, port, p, extPort); ok {
		return m, true
	}
	return pick(all, rh, port, p, func(m mapping.Mapping) uint16 { return m.Given })
}

// pick chooses among ms the port mapping of (remote host, port, proto),
// its port read by portOf: an exact remote host first, else any: as in
// miniupnpd, the remote host does not tell mappings apart (a port maps
// one way whatever the remote host, in pcpgw's core too).
func pick(ms []mapping.Mapping, rh netip.Addr, port uint16, p mapping.Proto, portOf func(mapping.Mapping) uint16) (mapping.Mapping, bool) {
	var loose *mapping.Mapping
	for _, m := range ms {
		if m.IsPinhole() {
			continue
		}
		if m.Proto != p || portOf(m) != port {
			continue
		}
		if addrStr(m.RemoteHost) == addrStr(rh) {
			return m, true
		}
		if loose == nil {
			loose = &m
		}
	}
	if loose != nil {
		return *loose, true
	}
	return mapping.Mapping{}, false
}

// setConnectionType: the connection type is IP_Routed and cannot be
// changed: 731 ReadOnly whatever is asked, as miniupnpd answers.
func (c *call) setConnectionType() ([]string, error) {
	return nil, errCode(upnpReadOnly)
}

func (c *call) getConnectionTypeInfo() ([]string, error) {
	return []string{"IP_Routed", "IP_Routed"}, nil
}

// cannot answers RequestTermination: the connection is the provider's,
// pcpgw cannot change it.
func (c *call) cannot() ([]string, error) {
	return nil, errCode(mapping.UPnPActionFailed)
}

// notAuthorized answers RequestConnection and ForceTermination: 606, as
// miniupnpd does (the connection is the provider's).
func (c *call) notAuthorized() ([]string, error) {
	return nil, errCode(mapping.UPnPNotAuthorized)
}

func (c *call) connectionStatus() string {
	if a, err := c.s.externalAddr(c.ctx); err == nil && a.IsValid() {
		return "Connected"
	}
	return "Disconnected"
}

func (c *call) getStatusInfo() ([]string, error) {
	up := c.s.now().Sub(c.s.start) / time.Second
	return []string{c.connectionStatus(), "ERROR_NONE", itoa(uint64(up))}, nil
}

// getNATRSIPStatus: no RSIP; NAT enabled unless the CPE does none
// (dslite: the LAN hosts' own addresses go to the provider's AFTR, which
// translates them).
func (c *call) getNATRSIPStatus() ([]string, error) {
	if c.s.core.Mode() == mapping.ModeDSLite {
		return []string{"0", "0"}, nil
	}
	return []string{"0", "1"}, nil
}

func (c *call) getExternalIPAddress() ([]string, error) {
	a, err := c.s.externalAddr(c.ctx)
	if err != nil {
		if mapping.CodeOf(err) == mapping.CodeNetworkFailure {
			// RFC 6970 §4.1: the empty string until the provider told us.
			return []string{""}, nil
		}
		return nil, err
	}
	return []string{addrStr(a)}, nil
}

func (c *call) mappingValues(m mapping.Mapping) []string {
	return []string{itoa(m.Internal.Port()), addrStr(m.Internal.Addr()), "1", m.Description, c.leaseSecs(m)}
}

func (c *call) getGenericPortMappingEntry() ([]string, error) {
	// strtol, as miniupnpd: no digits is 402, an index out of range 713.
	v, err := c.arg("NewPortMappingIndex")
	if err != nil {
		return nil, err
	}
	i, digits := atoi(v)
	if !digits {
		return nil, errArgs("NewPortMappingIndex: not a number")
	}
	ms := c.s.portMappings()
	if i < 0 || i >= int64(len(ms)) {
		return nil, errCode(mapping.UPnPArrayIndexInvalid)
	}
	m := ms[i]
	return append([]string{addrStr(m.RemoteHost), itoa(extPort(m)), protoName(m.Proto)}, c.mappingValues(m)...), nil
}

// mappingKey reads the external port and protocol naming an existing
// mapping (GetSpecificPortMappingEntry, DeletePortMapping). As in
// miniupnpd the remote host does not matter (a port maps one way) and
// port 0 is 402.
func (c *call) mappingKey() (uint16, mapping.Proto, error) {
	if _, ok := c.args["NewExternalPort"]; !ok {
		return 0, 0, errArgs("missing NewExternalPort")
	}
	port, err := c.port("NewExternalPort")
	if err != nil {
		return 0, 0, err
	}
	if port == 0 {
		return 0, 0, errArgs("NewExternalPort must not be 0")
	}
	p, err := c.proto("NewProtocol", false)
	return port, p, err
}

func (c *call) getSpecificPortMappingEntry() ([]string, error) {
	port, p, err := c.mappingKey()
	if err != nil {
		return nil, err
	}
	m, ok := c.s.lookup(netip.Addr{}, port, p)
	if !ok {
		return nil, errCode(mapping.UPnPNoSuchEntry)
	}
	return c.mappingValues(m), nil
}

func (c *call) addPortMapping() ([]string, error) { return c.add(false) }

func (c *call) addAnyPortMapping() ([]string, error) { return c.add(true) }

// add serves AddPortMapping (exact port, RFC 6970 §5.6.2) and
// AddAnyPortMapping (any port, §5.6.1). It reads its arguments as
// miniupnpd does: a missing NewRemoteHost is any, a missing or empty
// NewInternalClient the requester, a missing description empty, a
// missing lease 0, NewEnabled refused only when it asks for a disabled
// mapping; NewExternalPort, NewProtocol and NewInternalPort must be
// there.
func (c *call) add(anyPort bool) ([]string, error) {
	rh, err := c.remoteHost("NewRemoteHost", false)
	if err != nil {
		return nil, err
	}
	if _, ok := c.args["NewExternalPort"]; !ok {
		return nil, errArgs("missing NewExternalPort")
	}
	port, err := c.port("NewExternalPort")
	if err != nil {
		if !anyPort {
			return nil, err
		}
		port = 0 // only a hint: any port
	}
	p, err := c.proto("NewProtocol", true)
	if err != nil {
		return nil, err
	}
	if _, ok := c.args["NewInternalPort"]; !ok {
		return nil, errArgs("missing NewInternalPort")
	}
	iport, err := c.port("NewInternalPort")
	if err != nil {
		return nil, err
	}
	ic := c.peer
	if icS := strings.TrimSpace(c.args["NewInternalClient"]); icS != "" {
		if ic, err = c.hostAddr("NewInternalClient", icS, false); err != nil {
			return nil, err
		}
	}
	if !ic.Is4() {
		return nil, errArgs("NewInternalClient: not an IPv4 address")
	}
	if c.isFalse("NewEnabled") {
		// RFC 6970 §4.1: only PortMappingEnabled 1 is possible. (miniupnpd
		// opens the port anyway, against what the control point asked.)
		return nil, errArgs("NewEnabled must be 1")
	}
	desc := strings.TrimSpace(c.args["NewPortMappingDescription"])
	lease := c.lease("NewLeaseDuration")
	if port == 0 && !anyPort {
		return nil, errCode(upnpWildCardNotPermitted)
	}
	if iport == 0 {
		if c.sv.igd >= 2 {
			return nil, errCode(mapping.UPnPReservedPort)
		}
		return nil, errArgs("NewInternalPort must not be 0")
	}
	// AddAnyPortMapping is an IGD:2 action, with its lease rule also
	// where the IGD:1 service serves it.
	if (c.sv.igd >= 2 || anyPort) && (lease == 0 || lease > igd2MaxLease) {
		lease = igd2MaxLease
	}
	if !anyPort {
		// The requester's mapping of this port with another remote host
		// is not changed behind its back (miniupnpd: 718); the core
		// would renew it and keep its remote host.
		for _, m := range c.s.core.Find(mapping.Selector{Proto: p, External: port}) {
			if !m.IsPinhole() && m.Client == c.peer && m.Internal.Addr() == ic && m.RemoteHost != rh {
				return nil, errCode(mapping.UPnPConflict)
			}
		}
	}
	req := mapping.Request{
		Origin:       mapping.OriginUPnP,
		Client:       c.peer,
		Proto:        p,
		Internal:     netip.AddrPortFrom(ic, iport),
		ExternalPort: port,
		Lifetime:     time.Duration(lease) * time.Second,
		ExactPort:    !anyPort,
		RemoteHost:   rh,
		Description:  desc,
	}
	m, err := c.s.core.Map(c.ctx, req)
	if err != nil {
		return nil, err
	}
	if !anyPort && extPort(m) != port && m.WANPort != port {
		// The core was asked for this port only; never hand the control
		// point a mapping on another port than the one it asked for.
		c.s.log.Warn("core gave another port to an exact request", "client", c.peer, "external", m.External, "want", port)
		c.s.core.Delete(c.ctx, mapping.Selector{Client: c.peer, ID: m.ID, Proto: p})
		return nil, errCode(mapping.UPnPConflict)
	}
	c.s.log.Debug("port mapping", "client", c.peer, "proto", p, "internal", m.Internal, "external", m.External, "lifetime", req.Lifetime)
	if anyPort {
		return []string{itoa(extPort(m))}, nil
	}
	return nil, nil
}

// deletePortMapping deletes the mapping of an external port and protocol.
// A port no mapping holds succeeds, as in miniupnpd 2.3.9 (its nftables
// backend): the control point's intent, no mapping there, holds.
func (c *call) deletePortMapping() ([]string, error) {
	port, p, err := c.mappingKey()
	if err != nil {
		return nil, err
	}
	m, ok := c.s.lookup(netip.Addr{}, port, p)
	if !ok {
		// 714 NoSuchEntryInArray (RFC 6970 §5.8, REQUIREMENTS 15), as the
		// IGD specification and miniupnpd before its nftables backend say.
		return nil, errCode(mapping.UPnPNoSuchEntry)
	}
	_, err = c.s.core.Delete(c.ctx, mapping.Selector{Client: c.peer, ID: m.ID, Proto: p})
	if mapping.CodeOf(err) == mapping.CodeNotFound {
		return nil, errCode(mapping.UPnPNoSuchEntry) // gone meanwhile
	}
	if err != nil && mapping.CodeOf(err) != mapping.CodeCannotProvideExternal {
		return nil, err
	}
	return nil, nil
}

// rangeArgs parses the arguments of DeletePortMappingRange and
// GetListOfPortMappings and returns the matching port mappings. Start,
// end and protocol must be there; NewManage, which miniupnpd ignores
// (listing and deleting every mapping), is read as 1 unless it says 0.
func (c *call) rangeArgs() ([]mapping.Mapping, error) {
	var ports [2]uint16
	for i, name := range []string{"NewStartPort", "NewEndPort"} {
		if _, ok := c.args[name]; !ok {
			return nil, errArgs("missing %s", name)
		}
		var err error
		if ports[i], err = c.port(name); err != nil {
			return nil, err
		}
	}
	start, end := ports[0], ports[1]
	p, err := c.proto("NewProtocol", false)
	if err != nil {
		return nil, err
	}
	manage := !c.isFalse("NewManage")
	if start > end {
		return nil, errCode(mapping.UPnPInconsistentParams)
	}
	var out []mapping.Mapping
	for _, m := range c.s.portMappings() {
		if m.Proto != p || extPort(m) < start || extPort(m) > end {
			continue
		}
		if !manage && m.Client != c.peer {
			continue
		}
		out = append(out, m)
	}
	return out, nil
}

func (c *call) deletePortMappingRange() ([]string, error) {
	ms, err := c.rangeArgs()
	if err != nil {
		return nil, err
	}
	if len(ms) == 0 {
		return nil, errCode(mapping.UPnPPortMappingNotFound)
	}
	var firstErr error
	deleted := 0
	for _, m := range ms {
		n, err := c.s.core.Delete(c.ctx, mapping.Selector{Client: c.peer, ID: m.ID, Proto: m.Proto})
		if err != nil && firstErr == nil {
			firstErr = err
		}
		deleted += n
	}
	if deleted == 0 {
		if firstErr != nil {
			return nil, firstErr
		}
		return nil, errCode(mapping.UPnPPortMappingNotFound)
	}
	return nil, nil
}

// getListOfPortMappings lists the mappings of a range, at most
// NewNumberOfPorts (0, or a value out of range, is all). An empty range
// is an empty list, as in miniupnpd (WANIPConnection:2 says 730).
func (c *call) getListOfPortMappings() ([]string, error) {
	ms, err := c.rangeArgs()
	if err != nil {
		return nil, err
	}
	v, err := c.arg("NewNumberOfPorts")
	if err != nil {
		return nil, err
	}
	if num, _ := atoi(v); num > 0 && num < int64(len(ms)) {
		ms = ms[:num]
	}
	return []string{string(c.portListing(ms))}, nil
}

// portListing writes the PortMappingList of WANIPConnection:2 (its XML
// schema WANIPConnection-v2.xsd).
func (c *call) portListing(ms []mapping.Mapping) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
		`<p:PortMappingList xmlns:p="urn:schemas-upnp-org:gw:WANIPConnection" ` +
		`xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" ` +
		`xsi:schemaLocation="urn:schemas-upnp-org:gw:WANIPConnection http://www.upnp.org/schemas/gw/WANIPConnection-v2.xsd">` + "\n")
	el := func(name, v string) {
		fmt.Fprintf(&b, "<p:%s>", name)
		xml.EscapeText(&b, []byte(v))
		fmt.Fprintf(&b, "</p:%s>\n", name)
	}
	for _, m := range ms {
		b.WriteString("<p:PortMappingEntry>\n")
		el("NewRemoteHost", addrStr(m.RemoteHost))
		el("NewExternalPort", itoa(extPort(m)))
		el("NewProtocol", protoName(m.Proto))
		el("NewInternalPort", itoa(m.Internal.Port()))
		el("NewInternalClient", addrStr(m.Internal.Addr()))
		el("NewEnabled", "1")
		el("NewDescription", m.Description)
		el("NewLeaseTime", c.leaseSecs(m))
		b.WriteString("</p:PortMappingEntry>\n")
	}
	b.WriteString("</p:PortMappingList>\n")
	return b.Bytes()
}

// WANCommonInterfaceConfig.

func (s *Server) sysRead(name string) (string, bool) {
	if s.cfg.WAN == "" || strings.ContainsAny(s.cfg.WAN, "/\x00") || s.cfg.WAN == ".." || s.cfg.WAN == "." {
		return "", false
	}
	b, err := os.ReadFile(filepath.Join(s.cfg.SysDir, "class", "net", s.cfg.WAN, name))
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(string(b)), true
}

func (c *call) getCommonLinkProperties() ([]string, error) {
	status := "Down"
	if v, ok := c.s.sysRead("operstate"); ok && (v == "up" || v == "unknown") {
		status = "Up"
	}
	rate := "0"
	if v, ok := c.s.sysRead("speed"); ok {
		if mbit, err := strconv.ParseInt(v, 10, 64); err == nil && mbit > 0 {
			bps := uint64(mbit) * 1000000
			if bps > 1<<32-1 {
				bps = 1<<32 - 1
			}
			rate = itoa(bps)
		}
	}
	return []string{"Ethernet", rate, rate, status}, nil
}

// counter returns the action reading one WAN statistics counter. The
// state variables are ui4: the counters wrap at 2^32 as the spec says.
func counter(name string) func(*call) ([]string, error) {
	return func(c *call) ([]string, error) {
		v, ok := c.s.sysRead(filepath.Join("statistics", name))
		if !ok {
			return []string{"0"}, nil
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return nil, errCode(mapping.UPnPActionFailed)
		}
		return []string{itoa(n & (1<<32 - 1))}, nil
	}
}

// WANIPv6FirewallControl:1.

func (s *Server) pinholesAllowed() bool { return s.cfg.Pinholes && s.core.PinholesEnabled() }

func (c *call) getFirewallStatus() ([]string, error) {
	return []string{"1", boolStr(c.s.pinholesAllowed())}, nil
}

// pinholeTuple parses RemoteHost, RemotePort, InternalClient, InternalPort
// and Protocol of a pinhole, as miniupnpd reads them (upnpsoap.c
// AddPinhole): numbers as strtol (missing or without digits is 0; a port
// outside 0-65535, or a protocol missing or outside 0-65535, is 402), in
// miniupnpd's order of checks: protocol range (402), internal port 0
// (706), no internal client or "*" (708), the remote host, the protocol
// (707, 705).
func (c *call) pinholeTuple() (rh netip.Addr, rport uint16, ic netip.Addr, iport uint16, p mapping.Proto, any bool, err error) {
	protoS, ok := c.args["Protocol"]
	proto, _ := atoi(protoS)
	if !ok || proto < 0 || proto > 65535 {
		err = errArgs("Protocol: %.32q is no protocol", c.args["Protocol"])
		return
	}
	if rport, err = c.port("RemotePort"); err != nil {
		return
	}
	if iport, err = c.port("InternalPort"); err != nil {
		return
	}
	if iport == 0 {
		err = errPinhole(mapping.UPnPInternalPortWildcard)
		return
	}
	icS := strings.TrimSpace(c.args["InternalClient"])
	if icS == "" || icS == "*" {
		err = errPinhole(mapping.UPnPWildcardNotPermitted)
		return
	}
	if rh, err = c.remoteHost("RemoteHost", true); err != nil {
		return
	}
	switch proto {
	case 6:
		p = mapping.TCP
	case 17:
		p = mapping.UDP
	case 65535:
		any = true
	default:
		err = errPinhole(mapping.UPnPProtocolNotSupported)
		return
	}
	a, herr := c.hostAddr("InternalClient", icS, true)
	if herr != nil {
		err = herr
		return
	}
	if !a.Is6() || a.IsLinkLocalUnicast() || a.IsMulticast() {
		err = errArgs("InternalClient: not a global IPv6 address")
		return
	}
	ic = a
	return
}

// Default conntrack timeouts (Linux) when /proc cannot tell.
const (
	defaultTCPTimeout = 432000
	defaultUDPTimeout = 120
)

func (s *Server) conntrackTimeout(name string, def uint64) uint64 {
	b, err := os.ReadFile(filepath.Join("/proc/sys/net/netfilter", name))
	if err != nil {
		return def
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
	if err != nil {
		return def
	}
	return n
}

func (c *call) getOutboundPinholeTimeout() ([]string, error) {
	_, _, _, _, p, any, err := c.pinholeTuple()
	if err != nil {
		return nil, err
	}
	tcp := c.s.conntrackTimeout("nf_conntrack_tcp_timeout_established", defaultTCPTimeout)
	udp := c.s.conntrackTimeout("nf_conntrack_udp_timeout_stream", defaultUDPTimeout)
	switch {
	case any:
		return []string{itoa(min(tcp, udp))}, nil
	case p == mapping.UDP:
		return []string{itoa(udp)}, nil
	}
	return []string{itoa(tcp)}, nil
}

func (c *call) pinholeLease(name string) (time.Duration, error) {
	l, err := c.ui4(name)
	if err != nil {
		return 0, err
	}
	if l < 1 || l > pinholeMaxLease {
		return 0, errArgs("%s must be 1-%d", name, pinholeMaxLease)
	}
	return time.Duration(l) * time.Second, nil
}

// addPinhole opens a pinhole. As miniupnpd (and as WANIPv6FirewallControl
// recommends for control points that are not authenticated), pinholes
// lead to ports 1024 and up only: 606 otherwise. (A host opens pinholes
// to itself only with secure mode, which the core checks.)
func (c *call) addPinhole() ([]string, error) {
	if !c.s.pinholesAllowed() {
		return nil, errPinhole(mapping.UPnPInboundPinholeNotAllowed)
	}
	rh, rport, ic, iport, p, any, err := c.pinholeTuple()
	if err != nil {
		return nil, err
	}
	if any {
		return nil, errPinhole(mapping.UPnPProtocolWildcard)
	}
	lease, err := c.pinholeLease("LeaseTime")
	if err != nil {
		return nil, err
	}
	if iport < 1024 {
		return nil, errPinhole(mapping.UPnPNotAuthorized)
	}
	m, err := c.s.core.Map(c.ctx, mapping.Request{
		Origin:     mapping.OriginUPnP,
		Client:     c.peer,
		Proto:      p,
		Internal:   netip.AddrPortFrom(ic, iport),
		Lifetime:   lease,
		RemoteHost: rh,
		RemotePort: rport,
	})
	if err != nil {
		return nil, err
	}
	if m.ID > 0xffff {
		c.s.core.Delete(c.ctx, mapping.Selector{Client: c.peer, ID: m.ID})
		return nil, errPinhole(mapping.UPnPPinholeSpaceExhausted)
	}
	return []string{itoa(uint64(m.ID))}, nil
}

// pinhole returns the pinhole of the UniqueID argument. Only the host
// that opened it may change, delete or read it (606), whatever secure
// mode says (miniupnpd: only the host it leads to).
func (c *call) pinhole() (mapping.Mapping, error) {
	id, err := c.ui2("UniqueID")
	if err != nil {
		return mapping.Mapping{}, err
	}
	m, ok := c.s.core.Get(uint32(id))
	if !ok || !m.IsPinhole() {
		return m, errPinhole(mapping.UPnPPinholeNoSuchEntry)
	}
	if m.Client != c.peer {
		return m, errPinhole(mapping.UPnPNotAuthorized)
	}
	return m, nil
}

func (c *call) updatePinhole() ([]string, error) {
	m, err := c.pinhole()
	if err != nil {
		return nil, err
	}
	lease, err := c.pinholeLease("NewLeaseTime")
	if err != nil {
		return nil, err
	}
	if _, err := c.s.core.Renew(c.ctx, c.peer, m.ID, lease); err != nil {
		return nil, err
	}
	return nil, nil
}

func (c *call) deletePinhole() ([]string, error) {
	m, err := c.pinhole()
	if err != nil {
		return nil, err
	}
	n, err := c.s.core.Delete(c.ctx, mapping.Selector{Client: c.peer, ID: m.ID})
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, errPinhole(mapping.UPnPPinholeNoSuchEntry)
	}
	return nil, nil
}

func (c *call) packets() (uint64, error) {
	m, err := c.pinhole()
	if err != nil {
		return 0, err
	}
	return c.s.core.Packets(c.ctx, m.ID)
}

func (c *call) getPinholePackets() ([]string, error) {
	n, err := c.packets()
	if err != nil {
		return nil, err
	}
	return []string{itoa(min(n, 1<<32-1))}, nil
}

func (c *call) checkPinholeWorking() ([]string, error) {
	n, err := c.packets()
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, errPinhole(mapping.UPnPNoPacketSent)
	}
	return []string{"1"}, nil
}

// translate turns an action's error into a UPnP code and description.
func (c *call) translate(err error) (int, string) {
	var ue *upnpError
	if errors.As(err, &ue) {
		return ue.code, ue.desc
	}
	if c.sv.kind == svcWANIPv6FC {
		return mapping.UPnPPinholeError(err)
	}
	return mapping.UPnPError(err, c.sv.igd)
}
