package igdclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pcpgw/pcpgw/internal/httpd"
)

// Config configures a Client. Zero values are documented per field.
type Config struct {
	// Interface is the WAN interface: M-SEARCHes leave through it only,
	// NOTIFYs are joined on it only, and every socket is bound to it
	// (SO_BINDTODEVICE; without CAP_NET_RAW, to its address only, with a
	// warning). Zero: no interface binding (tests on loopback; then
	// Subnets must be given).
	Interface string
	// Subnets are the WAN subnets: SSDP answers and NOTIFYs are taken
	// only from a source inside them, and the description's and control
	// URLs' host must be that source. Zero: the IPv4 subnets of
	// Interface.
	Subnets []netip.Prefix
	// Local is the source address of M-SEARCHes. Zero: the first IPv4
	// address of Interface inside Subnets, else the kernel's choice.
	Local netip.Addr
	// SSDPAddr is where M-SEARCHes go; its port is also the port of a
	// unicast search at a known device. Zero: 239.255.255.250:1900.
	// Tests: a fake device's unicast address.
	SSDPAddr netip.AddrPort
	// Wait bounds how long a search reads answers, within the caller's
	// context (MX is 1 s); the description of a device that answered in
	// time is fetched within the caller's context and Timeout. Zero: 2 s.
	Wait time.Duration
	// Timeout bounds one HTTP exchange (a description or an action),
	// within the caller's context. Zero: 5 s.
	Timeout time.Duration
	// MaxDescription bounds a description's size in bytes. Zero: 64 KiB.
	MaxDescription int
	// Dial opens the TCP connections, once the address is checked to be
	// inside Subnets. Nil: a TCP connection bound to Interface
	// (internal/sock).
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
	// Logger receives the logs (component=igdclient). Nil: discard.
	Logger *slog.Logger
	// Now is the clock of the log rate limit. Nil: time.Now.
	Now func() time.Time
}

// Defaults.
const (
	DefaultWait           = 2 * time.Second
	DefaultTimeout        = 5 * time.Second
	DefaultMaxDescription = 64 << 10
	maxSOAPBody           = 64 << 10
	searchMX              = 1
	logEvery              = time.Minute // a refusal reason is logged at Warn at most this often
	maxTriedLocations     = 8           // descriptions fetched in one search
	maxCandidates         = 4           // services asked GetStatusInfo in one description
)

// SSDPGroup is the SSDP IPv4 multicast group and port (UDA 1.1 §1.1.1).
var SSDPGroup = netip.MustParseAddrPort("239.255.255.250:1900")

// Stats counts what the client sent and took. Dropped counts every answer
// refused: from outside the WAN subnets (Foreign), malformed (Malformed),
// a LOCATION or URL on another host, a redirect, a body over the limit.
type Stats struct {
	Searches  uint64 // M-SEARCH datagrams sent
	Answers   uint64 // SSDP answers taken
	Notifies  uint64 // NOTIFYs taken
	Requests  uint64 // HTTP requests sent (descriptions and actions)
	Responses uint64 // HTTP responses taken (including UPnP errors)
	Dropped   uint64
	Foreign   uint64
	Malformed uint64
}

// Client is a UPnP IGD control point on the WAN link.
type Client struct {
	cfg     Config
	log     *slog.Logger
	subnets []netip.Prefix
	local   netip.Addr

	searches, answers, notifies, requests, responses atomic.Uint64
	dropped, foreign, malformedN                     atomic.Uint64

	mu         sync.Mutex
	lastLog    map[string]time.Time
	warnedBind bool
}

// New makes a client. It opens no socket.
func New(cfg Config) (*Client, error) {
	if cfg.Wait <= 0 {
		cfg.Wait = DefaultWait
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxDescription <= 0 {
		cfg.MaxDescription = DefaultMaxDescription
	}
	if !cfg.SSDPAddr.IsValid() {
		cfg.SSDPAddr = SSDPGroup
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Client{cfg: cfg, log: log.With("component", "igdclient"), lastLog: map[string]time.Time{}, local: cfg.Local.Unmap()}
	for _, p := range cfg.Subnets {
		if p.Addr().Unmap().Is4() {
			c.subnets = append(c.subnets, netip.PrefixFrom(p.Addr().Unmap(), min(p.Bits(), 32)).Masked())
		}
	}
	if cfg.Interface != "" && len(c.subnets) == 0 || !c.local.IsValid() && cfg.Interface != "" {
		addrs, err := InterfaceSubnets(cfg.Interface)
		if err != nil {
			return nil, err
		}
		if len(c.subnets) == 0 {
			for _, p := range addrs {
				c.subnets = append(c.subnets, p.Masked())
			}
		}
		for _, p := range addrs {
			if !c.local.IsValid() && c.inSubnets(p.Addr()) {
				c.local = p.Addr()
			}
		}
	}
	if len(c.subnets) == 0 {
		return nil, errors.New("igdclient: no WAN subnet (give Subnets, or an Interface with an IPv4 address)")
	}
	return c, nil
}

// InterfaceSubnets returns the IPv4 addresses of an interface with their
// prefix lengths.
func InterfaceSubnets(ifname string) ([]netip.Prefix, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("igdclient: %w", err)
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return nil, fmt.Errorf("igdclient: %s: %w", ifname, err)
	}
	var out []netip.Prefix
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP)
		ones, _ := ipn.Mask.Size()
		if ok && ip.Unmap().Is4() {
			out = append(out, netip.PrefixFrom(ip.Unmap(), min(ones, 32)))
		}
	}
	return out, nil
}

// Subnets returns the WAN subnets in force.
func (c *Client) Subnets() []netip.Prefix { return append([]netip.Prefix(nil), c.subnets...) }

// InSubnets reports whether a is a host address inside the WAN subnets:
// IPv4, neither the network nor the broadcast address of a subnet (up to
// /30), not multicast, loopback only when a subnet is loopback (tests).
func (c *Client) InSubnets(a netip.Addr) bool { return c.inSubnets(a) }

func (c *Client) inSubnets(a netip.Addr) bool {
	a = a.Unmap()
	if !a.Is4() || a.IsUnspecified() || a.IsMulticast() {
		return false
	}
	for _, p := range c.subnets {
		if !p.Contains(a) {
			continue
		}
		if bits := 32 - p.Bits(); bits >= 2 {
			v := a.As4()
			n := uint32(v[0])<<24 | uint32(v[1])<<16 | uint32(v[2])<<8 | uint32(v[3])
			host := n & (1<<bits - 1)
			if host == 0 || host == 1<<bits-1 {
				continue
			}
		}
		return true
	}
	return false
}

// Stats returns the counters.
func (c *Client) Stats() Stats {
	return Stats{
		Searches: c.searches.Load(), Answers: c.answers.Load(), Notifies: c.notifies.Load(),
		Requests: c.requests.Load(), Responses: c.responses.Load(),
		Dropped: c.dropped.Load(), Foreign: c.foreign.Load(), Malformed: c.malformedN.Load(),
	}
}

// refuse counts an answer refused and logs why: at Warn once a minute per
// reason, at Debug otherwise (anything on the WAN link can send them).
func (c *Client) refuse(reason string, attrs ...any) {
	c.dropped.Add(1)
	now := c.cfg.Now()
	c.mu.Lock()
	last, seen := c.lastLog[reason]
	warn := !seen || now.Sub(last) >= logEvery
	if warn {
		if len(c.lastLog) > 64 {
			clear(c.lastLog)
		}
		c.lastLog[reason] = now
	}
	c.mu.Unlock()
	lvl := slog.LevelDebug
	if warn {
		lvl = slog.LevelWarn
	}
	c.log.Log(context.Background(), lvl, reason, attrs...)
}

// Device is an IGD found on the WAN link, with the WAN connection service
// pcpgw drives.
type Device struct {
	Location string // root description URL
	Control  string // the service's control URL, on Location's host
	Service  string // the service type: ServiceWANIP2, ServiceWANIP1 or ServiceWANPPP1
	// Host is the control URL's address and port.
	Host                                                   netip.AddrPort
	DeviceType, FriendlyName, Manufacturer, ModelName, UDN string
	// BootID is BOOTID.UPNP.ORG of the SSDP answer it was found by
	// (valid when HasBootID).
	BootID    uint32
	HasBootID bool

	c *Client
}

// Version is 2 for WANIPConnection:2 (AddAnyPortMapping, lease at most
// 604800 s), 1 otherwise.
func (d *Device) Version() int {
	if d.Service == ServiceWANIP2 {
		return 2
	}
	return 1
}

// Discover searches the WAN link for IGDs (M-SEARCH for SearchTargets to
// SSDPAddr, answers read for Wait) and returns the first one whose
// description holds a usable WAN connection service. Answers from outside
// the WAN subnets, with a LOCATION on another host than their source, or
// whose description does not do are refused and counted.
func (c *Client) Discover(ctx context.Context) (*Device, error) {
	return c.discover(ctx, c.cfg.SSDPAddr, netip.Addr{})
}

// DiscoverHost asks one host of the WAN subnets (unicast M-SEARCH to its
// SSDP port) and returns its IGD: after a reboot a device may serve its
// description on another port.
func (c *Client) DiscoverHost(ctx context.Context, host netip.Addr) (*Device, error) {
	if !c.inSubnets(host) {
		return nil, fmt.Errorf("igdclient: %v is not inside the WAN subnets", host)
	}
	return c.discover(ctx, netip.AddrPortFrom(host.Unmap(), c.cfg.SSDPAddr.Port()), host.Unmap())
}

func (c *Client) discover(ctx context.Context, dst netip.AddrPort, only netip.Addr) (*Device, error) {
	// Wait bounds the answers; a description asked for within it gets
	// the caller's ctx (and Timeout).
	sctx, cancel := context.WithTimeout(ctx, c.cfg.Wait)
	defer cancel()
	conn, err := c.openSearch()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(sctx, func() { conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	if deadline, ok := sctx.Deadline(); ok {
		conn.SetReadDeadline(deadline)
	}
	send := func() {
		var b []byte
		for _, st := range SearchTargets {
			b = AppendMSearch(b[:0], dst.String(), st, searchMX)
			if _, err := conn.WriteToUDPAddrPort(b, dst); err != nil {
				c.log.Debug("M-SEARCH", "to", dst, "err", err)
				continue
			}
			c.searches.Add(1)
		}
	}
	send()
	// Once more a little later: UDP is lossy.
	resend := time.AfterFunc(min(c.cfg.Wait/3, 500*time.Millisecond), send)
	defer resend.Stop()

	tried := map[string]bool{}
	var lastErr error
	buf := make([]byte, MaxSSDPSize+1)
	for {
		n, src, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			break
		}
		srcA := src.Addr().Unmap()
		if !c.inSubnets(srcA) {
			c.foreign.Add(1)
			c.refuse("SSDP answer from outside the WAN subnets", "from", src)
			continue
		}
		if only.IsValid() && srcA != only {
			continue // another device of the WAN link
		}
		r, err := ParseSearchResponse(buf[:n])
		if err != nil {
			c.malformedN.Add(1)
			c.refuse("malformed SSDP answer", "from", src, "err", err)
			continue
		}
		if tried[r.Location] || len(tried) >= maxTriedLocations {
			continue
		}
		tried[r.Location] = true
		c.answers.Add(1)
		d, err := c.Describe(ctx, r.Location, srcA)
		if err != nil {
			lastErr = err
			continue
		}
		d.BootID, d.HasBootID = r.BootID, r.HasBootID
		c.log.Info("IGD found", "location", d.Location, "service", d.Service, "control", d.Control, "name", d.FriendlyName)
		return d, nil
	}
	if lastErr != nil {
		return nil, fmt.Errorf("igdclient: no usable IGD on the WAN link: %w", lastErr)
	}
	return nil, fmt.Errorf("igdclient: no IGD answered on the WAN link within %v", c.cfg.Wait)
}

// Describe fetches the description at location, which from announced
// (zero: any host of the WAN subnets), and returns the device with its
// WAN connection service: the first of WANIPConnection:2,
// WANIPConnection:1, WANPPPConnection:1 that the description holds (when
// it holds several, the first whose GetStatusInfo says Connected).
// LOCATION must be on from, and the control URL on LOCATION's host.
func (c *Client) Describe(ctx context.Context, location string, from netip.Addr) (*Device, error) {
	_, host, err := ParseLocation(location)
	if err != nil {
		c.malformedN.Add(1)
		c.refuse("unusable LOCATION", "location", location, "from", from, "err", err)
		return nil, err
	}
	if from.IsValid() && host.Addr() != from.Unmap() || !c.inSubnets(host.Addr()) {
		err := fmt.Errorf("igdclient: LOCATION %s is not on the answering host %v", location, from)
		c.refuse("LOCATION on another host", "location", location, "from", from)
		return nil, err
	}
	resp, err := c.send(ctx, "GET", location, nil, nil, c.cfg.MaxDescription)
	if err != nil {
		return nil, err
	}
	if resp.Status != 200 {
		err := fmt.Errorf("igdclient: description %s: HTTP %d", location, resp.Status)
		if resp.Status >= 300 && resp.Status < 400 {
			c.refuse("description redirected (not followed)", "location", location, "to", resp.Header.Get("Location"))
		}
		return nil, err
	}
	desc, err := ParseDescription(resp.Body)
	if err != nil {
		c.malformedN.Add(1)
		c.refuse("malformed description", "location", location, "err", err)
		return nil, fmt.Errorf("igdclient: description %s: %w", location, err)
	}
	var devs []*Device
	var urlErr error
	for _, s := range desc.Candidates() {
		u, err := ResolveURL(location, desc.URLBase, s.ControlURL)
		if err != nil {
			urlErr = err
			c.refuse("control URL refused", "location", location, "control", s.ControlURL, "err", err)
			continue
		}
		hp, _ := httpHost(u)
		devs = append(devs, &Device{
			Location: location, Control: u.String(), Service: s.ServiceType, Host: hp,
			DeviceType: desc.Root.DeviceType, FriendlyName: desc.Root.FriendlyName,
			Manufacturer: desc.Root.Manufacturer, ModelName: desc.Root.ModelName, UDN: desc.Root.UDN, c: c,
		})
		if len(devs) == maxCandidates {
			break
		}
	}
	switch {
	case len(devs) == 0 && urlErr != nil:
		return nil, fmt.Errorf("igdclient: description %s: %w", location, urlErr)
	case len(devs) == 0:
		return nil, fmt.Errorf("igdclient: description %s holds no WAN connection service", location)
	case len(devs) == 1:
		return devs[0], nil
	}
	for _, d := range devs {
		if st, err := d.GetStatusInfo(ctx); err == nil && st.ConnectionStatus == "Connected" {
			return d, nil
		}
	}
	return devs[0], nil
}

// send makes one HTTP exchange with a host of the WAN subnets.
func (c *Client) send(ctx context.Context, method, rawURL string, h httpd.Header, body []byte, maxBody int) (httpd.ClientResponse, error) {
	_, host, err := ParseLocation(rawURL)
	if err != nil {
		return httpd.ClientResponse{}, err
	}
	if !c.inSubnets(host.Addr()) {
		return httpd.ClientResponse{}, fmt.Errorf("igdclient: %v is not inside the WAN subnets", host.Addr())
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	c.requests.Add(1)
	resp, err := httpd.Send(ctx, httpd.ClientRequest{
		Method: method, URL: rawURL, Header: h, Body: body, MaxBody: maxBody,
		Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
			// Send dials the URL's host:port; check it once more.
			if ap, err := netip.ParseAddrPort(address); err != nil || ap != host {
				return nil, fmt.Errorf("igdclient: refusing to dial %s for %s", address, host)
			}
			return c.dial(ctx, network, address)
		},
	})
	if err != nil {
		if errors.Is(err, httpd.ErrTooLarge) {
			c.refuse("answer over the size limit", "url", rawURL, "limit", maxBody)
			return httpd.ClientResponse{}, fmt.Errorf("igdclient: %s %s: %w", method, rawURL, err)
		}
		return httpd.ClientResponse{}, fmt.Errorf("igdclient: %s %s: %w: %w", method, rawURL, ErrNoAnswer, err)
	}
	c.responses.Add(1)
	return resp, nil
}

// ConnectionStatus is GetStatusInfo's answer.
type ConnectionStatus struct {
	ConnectionStatus    string // "Connected", "Disconnected", ...
	LastConnectionError string
	Uptime              uint32
}

// PortMapping is one port mapping entry of WANIPConnection (IGD:1 §2.2.x,
// IGD:2 §2.3.x).
type PortMapping struct {
	RemoteHost     string // "" is any
	ExternalPort   uint16
	Protocol       string // "TCP" or "UDP"
	InternalPort   uint16
	InternalClient netip.Addr
	Enabled        bool
	Description    string
	LeaseDuration  uint32 // seconds; 0 permanent (IGD:1)
}

// ErrNoAnswer wraps the errors of an exchange that got no HTTP answer
// (connection refused or cut, timeout): the device is unreachable, as
// opposed to one that answers wrongly.
var ErrNoAnswer = errors.New("no answer")

// call runs one action of d's service. A UPnP error comes back as *Error;
// anything else that goes wrong as a plain error: no answer (wrapping
// ErrNoAnswer), an HTTP status other than 200 and 500, or a body that
// does not parse (wrapping ErrMalformed).
func (d *Device) call(ctx context.Context, action string, args []Arg) ([]Arg, error) {
	body := AppendRequest(nil, d.Service, action, args)
	h := httpd.Header{}
	h.Set("Content-Type", `text/xml; charset="utf-8"`)
	h.Set("Soapaction", SOAPAction(d.Service, action))
	resp, err := d.c.send(ctx, "POST", d.Control, h, body, maxSOAPBody)
	if err != nil {
		return nil, err
	}
	switch resp.Status {
	case 200:
		out, err := ParseActionResponse(resp.Body, action)
		if err != nil {
			d.c.malformedN.Add(1)
			d.c.refuse("malformed SOAP answer", "action", action, "err", err)
			return nil, fmt.Errorf("igdclient: %s: %w", action, err)
		}
		return out, nil
	case 500:
		e, err := ParseFault(resp.Body)
		if err != nil {
			d.c.malformedN.Add(1)
			d.c.refuse("malformed SOAP fault", "action", action, "err", err)
			return nil, fmt.Errorf("igdclient: %s: HTTP 500: %w", action, err)
		}
		return nil, e
	}
	return nil, fmt.Errorf("igdclient: %s: HTTP %d", action, resp.Status)
}

// GetExternalIPAddress returns NewExternalIPAddress: the zero Addr when
// the device answers an empty one (not connected, or no public address).
func (d *Device) GetExternalIPAddress(ctx context.Context) (netip.Addr, error) {
	out, err := d.call(ctx, "GetExternalIPAddress", nil)
	if err != nil {
		return netip.Addr{}, err
	}
	v, _ := Value(out, "NewExternalIPAddress")
	v = strings.TrimSpace(v)
	if v == "" {
		return netip.Addr{}, nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, malformed("NewExternalIPAddress %.40q", v)
	}
	return a.Unmap(), nil
}

// GetStatusInfo returns the connection's status.
func (d *Device) GetStatusInfo(ctx context.Context) (ConnectionStatus, error) {
	out, err := d.call(ctx, "GetStatusInfo", nil)
	if err != nil {
		return ConnectionStatus{}, err
	}
	var st ConnectionStatus
	st.ConnectionStatus, _ = Value(out, "NewConnectionStatus")
	st.LastConnectionError, _ = Value(out, "NewLastConnectionError")
	st.ConnectionStatus = strings.TrimSpace(st.ConnectionStatus)
	st.LastConnectionError = strings.TrimSpace(st.LastConnectionError)
	if v, ok := Value(out, "NewUptime"); ok {
		n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
		st.Uptime = uint32(n)
	}
	return st, nil
}

func boolArg(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func u16(v uint16) string { return strconv.FormatUint(uint64(v), 10) }

func mappingArgs(m PortMapping) []Arg {
	client := ""
	if m.InternalClient.IsValid() {
		client = m.InternalClient.String()
	}
	return []Arg{
		{"NewRemoteHost", m.RemoteHost},
		{"NewExternalPort", u16(m.ExternalPort)},
		{"NewProtocol", m.Protocol},
		{"NewInternalPort", u16(m.InternalPort)},
		{"NewInternalClient", client},
		{"NewEnabled", boolArg(m.Enabled)},
		{"NewPortMappingDescription", m.Description},
		{"NewLeaseDuration", strconv.FormatUint(uint64(m.LeaseDuration), 10)},
	}
}

// AddPortMapping asks for m exactly (IGD:1 and IGD:2).
func (d *Device) AddPortMapping(ctx context.Context, m PortMapping) error {
	_, err := d.call(ctx, "AddPortMapping", mappingArgs(m))
	return err
}

// AddAnyPortMapping asks for m with m.ExternalPort as a wish (IGD:2) and
// returns the port the device reserved (NewReservedPort).
func (d *Device) AddAnyPortMapping(ctx context.Context, m PortMapping) (uint16, error) {
	out, err := d.call(ctx, "AddAnyPortMapping", mappingArgs(m))
	if err != nil {
		return 0, err
	}
	v, _ := Value(out, "NewReservedPort")
	p, ok := parsePort(strings.TrimSpace(v))
	if !ok || p == 0 {
		return 0, malformed("NewReservedPort %.20q", v)
	}
	return p, nil
}

// DeletePortMapping removes the mapping of remoteHost, externalPort and
// protocol.
func (d *Device) DeletePortMapping(ctx context.Context, remoteHost string, externalPort uint16, protocol string) error {
	_, err := d.call(ctx, "DeletePortMapping", []Arg{
		{"NewRemoteHost", remoteHost}, {"NewExternalPort", u16(externalPort)}, {"NewProtocol", protocol},
	})
	return err
}

// GetSpecificPortMappingEntry returns the mapping of remoteHost,
// externalPort and protocol (a *Error with CodeNoSuchEntryInArray when
// there is none).
func (d *Device) GetSpecificPortMappingEntry(ctx context.Context, remoteHost string, externalPort uint16, protocol string) (PortMapping, error) {
	out, err := d.call(ctx, "GetSpecificPortMappingEntry", []Arg{
		{"NewRemoteHost", remoteHost}, {"NewExternalPort", u16(externalPort)}, {"NewProtocol", protocol},
	})
	if err != nil {
		return PortMapping{}, err
	}
	m := PortMapping{RemoteHost: remoteHost, ExternalPort: externalPort, Protocol: protocol}
	get := func(name string) string { v, _ := Value(out, name); return strings.TrimSpace(v) }
	var ok bool
	if m.InternalPort, ok = parsePort(get("NewInternalPort")); !ok {
		return PortMapping{}, malformed("NewInternalPort %.20q", get("NewInternalPort"))
	}
	if m.InternalClient, err = netip.ParseAddr(get("NewInternalClient")); err != nil {
		// IGD:2 allows a host name here; pcpgw maps addresses only.
		m.InternalClient = netip.Addr{}
	}
	m.InternalClient = m.InternalClient.Unmap()
	m.Enabled = get("NewEnabled") == "1" || strings.EqualFold(get("NewEnabled"), "true")
	m.Description, _ = Value(out, "NewPortMappingDescription")
	n, _ := strconv.ParseUint(get("NewLeaseDuration"), 10, 32)
	m.LeaseDuration = uint32(n)
	return m, nil
}
