package upnpigd

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

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

func (c *call) proto(name string) (mapping.Proto, error) {
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
	return 0, errArgs("%s must be TCP or UDP", name)
}

// remoteHost parses a RemoteHost: empty (or the unspecified address) is
// any; an IGD:2 service also takes a host name (hostAddr).
func (c *call) remoteHost(name string, v6 bool) (netip.Addr, error) {
	v, err := c.arg(name)
	if err != nil {
		return netip.Addr{}, err
	}
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

// hostAddr is the address v names: an IP address, or with IGD:2 a host
// name (UPnP IGD:2 WANIPConnection RemoteHost and InternalClient,
// REQUIREMENTS 33) looked up with Config.Resolve within
// Config.ResolveTimeout; the first address of the family wanted (IPv6 when
// v6) is taken. A name that does not exist or has no such address is 402;
// a lookup that fails otherwise (timeout, no DNS server) is 501.
func (c *call) hostAddr(name, v string, v6 bool) (netip.Addr, error) {
	if a, err := netip.ParseAddr(v); err == nil {
		if a.Zone() != "" {
			return netip.Addr{}, errArgs("%s: not an IP address", name)
		}
		return a.Unmap(), nil
	}
	if c.sv.igd < 2 || !isHostName(v) {
		return netip.Addr{}, errArgs("%s: not an IP address", name)
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.s.cfg.ResolveTimeout)
	defer cancel()
	as, err := c.s.cfg.Resolve(ctx, v)
	var dnsErr *net.DNSError
	if err != nil && !(errors.As(err, &dnsErr) && dnsErr.IsNotFound) {
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
func (s *Server) lookup(rh netip.Addr, port uint16, p mapping.Proto) (mapping.Mapping, bool) {
	if m, ok := pick(s.core.Find(mapping.Selector{Proto: p, External: port}), rh, port, p); ok {
		return m, true
	}
	return pick(s.portMappings(), rh, port, p)
}

// pick chooses among ms the port mapping of (remote host, port, proto): an
// exact remote host first, else (for a wildcard request) any.
func pick(ms []mapping.Mapping, rh netip.Addr, port uint16, p mapping.Proto) (mapping.Mapping, bool) {
	var loose *mapping.Mapping
	for _, m := range ms {
		if m.IsPinhole() {
			continue
		}
		if m.Proto != p || extPort(m) != port {
			continue
		}
		if addrStr(m.RemoteHost) == addrStr(rh) {
			return m, true
		}
		if !rh.IsValid() && loose == nil {
			loose = &m
		}
	}
	if loose != nil {
		return *loose, true
	}
	return mapping.Mapping{}, false
}

func (c *call) setConnectionType() ([]string, error) {
	v, err := c.arg("NewConnectionType")
	if err != nil {
		return nil, err
	}
	if v != "IP_Routed" {
		return nil, errCode(mapping.UPnPActionFailed)
	}
	return nil, nil
}

func (c *call) getConnectionTypeInfo() ([]string, error) {
	return []string{"IP_Routed", "IP_Routed"}, nil
}

// cannot answers RequestConnection, RequestTermination and
// ForceTermination: the connection is the provider's, pcpgw cannot change it.
func (c *call) cannot() ([]string, error) {
	return nil, errCode(mapping.UPnPActionFailed)
}

func (c *call) connectionStatus() string {
	if a, err := c.s.core.ExternalAddr(c.ctx); err == nil && a.IsValid() {
		return "Connected"
	}
	return "Disconnected"
}

func (c *call) getStatusInfo() ([]string, error) {
	up := c.s.now().Sub(c.s.start) / time.Second
	return []string{c.connectionStatus(), "ERROR_NONE", itoa(uint64(up))}, nil
}

func (c *call) getNATRSIPStatus() ([]string, error) {
	return []string{"0", "1"}, nil
}

func (c *call) getExternalIPAddress() ([]string, error) {
	a, err := c.s.core.ExternalAddr(c.ctx)
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
	i, err := c.ui2("NewPortMappingIndex")
	if err != nil {
		return nil, err
	}
	ms := c.s.portMappings()
	if int(i) >= len(ms) {
		return nil, errCode(mapping.UPnPArrayIndexInvalid)
	}
	m := ms[i]
	return append([]string{addrStr(m.RemoteHost), itoa(extPort(m)), protoName(m.Proto)}, c.mappingValues(m)...), nil
}

func (c *call) mappingKey() (netip.Addr, uint16, mapping.Proto, error) {
	rh, err := c.remoteHost("NewRemoteHost", false)
	if err != nil {
		return rh, 0, 0, err
	}
	port, err := c.ui2("NewExternalPort")
	if err != nil {
		return rh, 0, 0, err
	}
	p, err := c.proto("NewProtocol")
	return rh, port, p, err
}

func (c *call) getSpecificPortMappingEntry() ([]string, error) {
	rh, port, p, err := c.mappingKey()
	if err != nil {
		return nil, err
	}
	m, ok := c.s.lookup(rh, port, p)
	if !ok {
		return nil, errCode(mapping.UPnPNoSuchEntry)
	}
	return c.mappingValues(m), nil
}

func (c *call) addPortMapping() ([]string, error) { return c.add(false) }

func (c *call) addAnyPortMapping() ([]string, error) { return c.add(true) }

// add serves AddPortMapping (exact port, RFC 6970 §5.6.2) and
// AddAnyPortMapping (any port, §5.6.1).
func (c *call) add(anyPort bool) ([]string, error) {
	rh, port, p, err := c.mappingKey()
	if err != nil {
		return nil, err
	}
	iport, err := c.ui2("NewInternalPort")
	if err != nil {
		return nil, err
	}
	icS, err := c.arg("NewInternalClient")
	if err != nil {
		return nil, err
	}
	ic, err := c.hostAddr("NewInternalClient", icS, false)
	if err != nil {
		return nil, err
	}
	if !ic.Is4() {
		return nil, errArgs("NewInternalClient: not an IPv4 address")
	}
	enabled, err := c.boolean("NewEnabled")
	if err != nil {
		return nil, err
	}
	if !enabled {
		// RFC 6970 §4.1: only PortMappingEnabled 1 is possible.
		return nil, errArgs("NewEnabled must be 1")
	}
	desc, err := c.arg("NewPortMappingDescription")
	if err != nil {
		return nil, err
	}
	lease, err := c.ui4("NewLeaseDuration")
	if err != nil {
		return nil, err
	}
	if port == 0 && !anyPort {
		return nil, errCode(upnpWildCardNotPermitted)
	}
	if iport == 0 {
		if c.sv.igd >= 2 {
			return nil, errCode(mapping.UPnPReservedPort)
		}
		return nil, errArgs("NewInternalPort must not be 0")
	}
	if c.sv.igd >= 2 && (lease == 0 || lease > igd2MaxLease) {
		lease = igd2MaxLease
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

func (c *call) deletePortMapping() ([]string, error) {
	rh, port, p, err := c.mappingKey()
	if err != nil {
		return nil, err
	}
	m, ok := c.s.lookup(rh, port, p)
	if !ok {
		return nil, errCode(mapping.UPnPNoSuchEntry)
	}
	n, err := c.s.core.Delete(c.ctx, mapping.Selector{Client: c.peer, ID: m.ID, Proto: p})
	if err != nil {
		if mapping.CodeOf(err) == mapping.CodeCannotProvideExternal || mapping.CodeOf(err) == mapping.CodeNotFound {
			return nil, errCode(mapping.UPnPNoSuchEntry) // RFC 6970 §4.3, §5.8
		}
		return nil, err
	}
	if n == 0 {
		return nil, errCode(mapping.UPnPNoSuchEntry)
	}
	return nil, nil
}

// rangeArgs parses the arguments of DeletePortMappingRange and
// GetListOfPortMappings and returns the matching port mappings.
func (c *call) rangeArgs() ([]mapping.Mapping, error) {
	start, err := c.ui2("NewStartPort")
	if err != nil {
		return nil, err
	}
	end, err := c.ui2("NewEndPort")
	if err != nil {
		return nil, err
	}
	p, err := c.proto("NewProtocol")
	if err != nil {
		return nil, err
	}
	manage, err := c.boolean("NewManage")
	if err != nil {
		return nil, err
	}
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

func (c *call) getListOfPortMappings() ([]string, error) {
	ms, err := c.rangeArgs()
	if err != nil {
		return nil, err
	}
	num, err := c.ui2("NewNumberOfPorts")
	if err != nil {
		return nil, err
	}
	if len(ms) == 0 {
		return nil, errCode(mapping.UPnPPortMappingNotFound)
	}
	if num > 0 && int(num) < len(ms) {
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
// and Protocol of a pinhole.
func (c *call) pinholeTuple() (rh netip.Addr, rport uint16, ic netip.Addr, iport uint16, p mapping.Proto, any bool, err error) {
	if rh, err = c.remoteHost("RemoteHost", true); err != nil {
		return
	}
	if rport, err = c.ui2("RemotePort"); err != nil {
		return
	}
	var icS string
	if icS, err = c.arg("InternalClient"); err != nil {
		return
	}
	if icS == "" {
		err = errPinhole(mapping.UPnPWildcardNotPermitted)
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
	if iport, err = c.ui2("InternalPort"); err != nil {
		return
	}
	var proto uint16
	if proto, err = c.ui2("Protocol"); err != nil {
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
	}
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

func (c *call) addPinhole() ([]string, error) {
	rh, rport, ic, iport, p, any, err := c.pinholeTuple()
	if err != nil {
		return nil, err
	}
	lease, err := c.pinholeLease("LeaseTime")
	if err != nil {
		return nil, err
	}
	if any {
		return nil, errPinhole(mapping.UPnPProtocolWildcard)
	}
	if iport == 0 {
		return nil, errPinhole(mapping.UPnPInternalPortWildcard)
	}
	if !c.s.pinholesAllowed() {
		return nil, errPinhole(mapping.UPnPInboundPinholeNotAllowed)
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

// pinhole returns the pinhole of the UniqueID argument.
func (c *call) pinhole() (mapping.Mapping, error) {
	id, err := c.ui2("UniqueID")
	if err != nil {
		return mapping.Mapping{}, err
	}
	m, ok := c.s.core.Get(uint32(id))
	if !ok || !m.IsPinhole() {
		return m, errPinhole(mapping.UPnPPinholeNoSuchEntry)
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
