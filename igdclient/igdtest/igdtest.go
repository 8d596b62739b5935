// Package igdtest is a fault-injecting fake UPnP IGD for tests of
// igdclient and of the IGD upstream: an HTTP server on a loopback port
// serving a root description modelled on miniupnpd 2.3.9's (captured in
// igdclient/testdata) and a WANIPConnection:1 or :2 (or WANPPPConnection:1)
// control URL with a port mapping table that behaves like miniupnpd's
// (idempotent re-adds by the same client, 718 for another's, 714 for what
// is missing, AddAnyPortMapping moving up to a free port), and an SSDP
// responder on a loopback UDP port answering unicast M-SEARCHes.
//
// It can be told to misbehave: answer an action with a UPnP error or with
// raw bytes, refuse leases other than 0 (725, IGD:1 boxes), answer 718 to
// a re-add of the same mapping, reboot (empty table, new BOOTID, possibly
// a new HTTP port), change its external address, drop its HTTP service,
// announce NOTIFYs to a listener, or put another LOCATION in its SSDP
// answers. It counts and records what it receives. Its SOAP handling is
// written apart from igdclient's (encoding/xml.Unmarshal in, text
// templates out), so that the two do not share mistakes.
package igdtest

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"

	"github.com/pcpgw/pcpgw/igdclient"
)

// Options configures the fake. Zero values are documented per field.
type Options struct {
	// Version is the WANIPConnection version: 1 or 2. Zero: 2.
	Version int
	// PPP describes a WANPPPConnection:1 instead of WANIPConnection.
	PPP bool
	// Host is the loopback address the fake listens on. Zero:
	// 127.0.0.1.
	Host string
	// External is GetExternalIPAddress's answer (SetExternal changes it).
	// Zero: "203.0.113.1".
	External string
	// OnlyPermanent answers 725 OnlyPermanentLeasesSupported to a lease
	// other than 0 (IGD:1 boxes).
	OnlyPermanent bool
	// ConflictOnReAdd answers 718 to an AddPortMapping of a mapping that
	// exists, even the same client's (boxes that are not idempotent).
	ConflictOnReAdd bool
	// WildcardRemoteOnly answers 726 RemoteHostOnlySupportsWildcard to a
	// NewRemoteHost other than "".
	WildcardRemoteOnly bool
	// MaxLease clamps IGD:2 leases and maps lease 0 to it. Zero: 604800.
	MaxLease uint32
	// BootID is the first BOOTID.UPNP.ORG. Zero: 1.
	BootID uint32
}

// Mapping is one entry of the fake's table.
type Mapping struct {
	RemoteHost   string
	ExternalPort uint16
	Protocol     string
	InternalPort uint16
	Client       string
	Enabled      bool
	Description  string
	Lease        uint32
}

type key struct {
	remote string
	port   uint16
	proto  string
}

// Request is one SOAP request the fake received.
type Request struct {
	Action string
	Args   map[string]string
}

type reply struct {
	status int
	body   string
	code   int // UPnP error, when body is empty
}

// Server is the fake IGD.
type Server struct {
	opt     Options
	svcType string

	ssdp *net.UDPConn

	mu          sync.Mutex
	ln          net.Listener
	srv         *http.Server
	httpPort    int
	location    string
	external    string
	bootID      uint32
	table       map[key]Mapping
	counts      map[string]int
	reqs        []Request
	inject      map[string][]reply
	descHandler http.HandlerFunc
	locOverride string
	searchExtra [][]byte
	searches    int
	down        bool

	wg sync.WaitGroup
}

// New starts the fake.
func New(opt Options) (*Server, error) {
	if opt.Version == 0 {
		opt.Version = 2
	}
	if opt.Host == "" {
		opt.Host = "127.0.0.1"
	}
	if opt.External == "" {
		opt.External = "203.0.113.1"
	}
	if opt.MaxLease == 0 {
		opt.MaxLease = 604800
	}
	if opt.BootID == 0 {
		opt.BootID = 1
	}
	s := &Server{opt: opt, external: opt.External, bootID: opt.BootID, table: map[key]Mapping{},
		counts: map[string]int{}, inject: map[string][]reply{}}
	s.svcType = fmt.Sprintf("urn:schemas-upnp-org:service:WANIPConnection:%d", opt.Version)
	if opt.PPP {
		s.svcType = igdclient.ServiceWANPPP1
	}
	if err := s.startHTTP(0); err != nil {
		return nil, err
	}
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(opt.Host)})
	if err != nil {
		s.Close()
		return nil, err
	}
	s.ssdp = c
	s.wg.Go(s.serveSSDP)
	return s, nil
}

func (s *Server) startHTTP(port int) error {
	ln, err := net.Listen("tcp4", net.JoinHostPort(s.opt.Host, strconv.Itoa(port)))
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.HandlerFunc(s.serveHTTP)}
	s.mu.Lock()
	s.ln, s.srv = ln, srv
	s.httpPort = ln.Addr().(*net.TCPAddr).Port
	s.location = fmt.Sprintf("http://%s:%d/rootDesc.xml", s.opt.Host, s.httpPort)
	s.mu.Unlock()
	s.wg.Go(func() { srv.Serve(ln) })
	return nil
}

// Close stops the fake and waits for its goroutines.
func (s *Server) Close() error {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
	if s.ssdp != nil {
		s.ssdp.Close()
	}
	s.wg.Wait()
	return nil
}

// Location is the root description URL.
func (s *Server) Location() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.location
}

// Control is the control URL.
func (s *Server) Control() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("http://%s:%d/ctl/IPConn", s.opt.Host, s.httpPort)
}

// ServiceType is the WAN connection service type described.
func (s *Server) ServiceType() string { return s.svcType }

// SSDPAddr is where the fake answers M-SEARCHes.
func (s *Server) SSDPAddr() netip.AddrPort {
	return netip.MustParseAddrPort(s.ssdp.LocalAddr().String())
}

// Count returns how many requests of a kind arrived: an action name, or
// "desc" for the description.
func (s *Server) Count(what string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[what]
}

// Searches returns how many M-SEARCHes arrived.
func (s *Server) Searches() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.searches
}

// Requests returns the SOAP requests received, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.reqs...)
}

// Mappings returns the table.
func (s *Server) Mappings() []Mapping {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Mapping, 0, len(s.table))
	for _, m := range s.table {
		out = append(out, m)
	}
	return out
}

// Mapping returns one entry.
func (s *Server) Mapping(remote string, port uint16, proto string) (Mapping, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.table[key{remote, port, proto}]
	return m, ok
}

// AddMapping puts an entry in the table (another client's, say).
func (s *Server) AddMapping(m Mapping) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.table[key{m.RemoteHost, m.ExternalPort, m.Protocol}] = m
}

// DeleteMapping removes an entry behind the client's back.
func (s *Server) DeleteMapping(remote string, port uint16, proto string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.table, key{remote, port, proto})
}

// SetExternal changes GetExternalIPAddress's answer.
func (s *Server) SetExternal(a string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.external = a
}

// BootID is the current BOOTID.UPNP.ORG.
func (s *Server) BootID() uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bootID
}

// Fail makes the next n requests of action (an action name or "desc")
// answer the UPnP error code (HTTP 500 with a SOAP fault).
func (s *Server) Fail(action string, code, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.inject[action] = append(s.inject[action], reply{code: code})
	}
}

// Raw makes the next n requests of action answer status with body as it
// is.
func (s *Server) Raw(action string, status int, body string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.inject[action] = append(s.inject[action], reply{status: status, body: body})
	}
}

// SetDescription serves the description with h instead (nil: the
// normal one).
func (s *Server) SetDescription(h http.HandlerFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.descHandler = h
}

// SetLocation puts loc in the SSDP answers' LOCATION (""; the fake's
// own).
func (s *Server) SetLocation(loc string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.locOverride = loc
}

// AddSearchAnswer makes the SSDP responder send b (any bytes) before its
// answers to each M-SEARCH.
func (s *Server) AddSearchAnswer(b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.searchExtra = append(s.searchExtra, b)
}

// SetDown makes the HTTP service drop every connection unanswered
// (true) or serve again (false).
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

// Reboot empties the table and takes a new BOOTID; with newPort the
// HTTP service moves to another port (a new LOCATION), as boxes with a
// random port do.
func (s *Server) Reboot(newPort bool) error {
	s.mu.Lock()
	s.table = map[key]Mapping{}
	s.bootID++
	srv := s.srv
	s.mu.Unlock()
	if !newPort {
		return nil
	}
	srv.Close()
	return s.startHTTP(0)
}

// Announce sends NOTIFYs of nts for the root device, the IGD and the WAN
// connection service to dst, from the SSDP socket.
func (s *Server) Announce(dst netip.AddrPort, nts igdclient.NTS) error {
	s.mu.Lock()
	loc, boot := s.location, s.bootID
	s.mu.Unlock()
	const uuid = "uuid:3d3cec3a-8cf0-11e0-98ee-001a6bd2d07c"
	for _, nt := range []string{"upnp:rootdevice", s.deviceType(), s.svcType} {
		n := igdclient.Notify{NTS: nts, NT: nt, USN: uuid + "::" + nt, Server: "igdtest UPnP/1.1 fake/1",
			BootID: boot, HasBootID: true, ConfigID: 1337, HasConfigID: true}
		if nts != igdclient.NTSByeBye {
			n.Location, n.MaxAge = loc, 1800
		}
		if _, err := s.ssdp.WriteToUDPAddrPort(n.AppendMarshal(nil, "239.255.255.250:1900"), dst); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) deviceType() string {
	return fmt.Sprintf("urn:schemas-upnp-org:device:InternetGatewayDevice:%d", min(s.opt.Version, 2))
}

func (s *Server) serveSSDP() {
	buf := make([]byte, 4096)
	for {
		n, src, err := s.ssdp.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		msg := string(buf[:n])
		if !strings.HasPrefix(msg, "M-SEARCH * HTTP/1.1\r\n") {
			continue
		}
		st := ""
		for l := range strings.SplitSeq(msg, "\r\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(k, "ST") {
				st = strings.TrimSpace(v)
			}
		}
		s.mu.Lock()
		s.searches++
		loc, boot := s.location, s.bootID
		if s.locOverride != "" {
			loc = s.locOverride
		}
		extra := append([][]byte(nil), s.searchExtra...)
		s.mu.Unlock()
		for _, b := range extra {
			s.ssdp.WriteToUDPAddrPort(b, src)
		}
		switch st {
		case igdclient.DeviceIGD1, igdclient.DeviceIGD2, igdclient.ServiceWANIP1, igdclient.ServiceWANIP2, igdclient.ServiceWANPPP1, "ssdp:all", "upnp:rootdevice":
		default:
			continue
		}
		r := igdclient.SearchResponse{ST: st, USN: "uuid:3d3cec3a-8cf0-11e0-98ee-001a6bd2d07c::" + st, Location: loc,
			Server: "igdtest UPnP/1.1 fake/1", MaxAge: 1800, BootID: boot, HasBootID: true, ConfigID: 1337, HasConfigID: true}
		s.ssdp.WriteToUDPAddrPort(r.AppendMarshal(nil), src)
	}
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	down := s.down
	s.mu.Unlock()
	if down {
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				c.Close()
			}
		}
		return
	}
	switch {
	case r.Method == "GET" && r.URL.Path == "/rootDesc.xml":
		s.mu.Lock()
		s.counts["desc"]++
		h := s.descHandler
		inj := s.take("desc")
		s.mu.Unlock()
		if inj != nil {
			s.write(w, inj, "desc")
			return
		}
		if h != nil {
			h(w, r)
			return
		}
		w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
		io.WriteString(w, s.description())
	case r.Method == "POST" && r.URL.Path == "/ctl/IPConn":
		s.control(w, r)
	default:
		http.NotFound(w, r)
	}
}

// take pops an injected reply for what (s.mu held).
func (s *Server) take(what string) *reply {
	q := s.inject[what]
	if len(q) == 0 {
		return nil
	}
	s.inject[what] = q[1:]
	return &q[0]
}

func (s *Server) write(w http.ResponseWriter, r *reply, action string) {
	if r.code != 0 {
		fault(w, r.code, "Injected")
		return
	}
	w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
	w.WriteHeader(r.status)
	io.WriteString(w, r.body)
}

// description is miniupnpd 2.3.9's rootDesc.xml (see
// igdclient/testdata/miniupnpd-2.3.9), cut down to the devices and the
// WAN connection service.
func (s *Server) description() string {
	v := min(s.opt.Version, 2)
	if s.opt.PPP {
		v = 1
	}
	return fmt.Sprintf(`<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0" configId="1337"><specVersion><major>1</major><minor>1</minor></specVersion>`+
		`<device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:%[1]d</deviceType><friendlyName>Fake box</friendlyName>`+
		`<manufacturer>igdtest</manufacturer><modelName>FakeBox</modelName><UDN>uuid:3d3cec3a-8cf0-11e0-98ee-001a6bd2d07c</UDN>`+
		`<serviceList><service><serviceType>urn:schemas-upnp-org:service:Layer3Forwarding:1</serviceType><serviceId>urn:upnp-org:serviceId:L3Forwarding1</serviceId>`+
		`<SCPDURL>/L3F.xml</SCPDURL><controlURL>/ctl/L3F</controlURL><eventSubURL>/evt/L3F</eventSubURL></service></serviceList>`+
		`<deviceList><device><deviceType>urn:schemas-upnp-org:device:WANDevice:%[1]d</deviceType><friendlyName>WANDevice</friendlyName>`+
		`<UDN>uuid:3d3cec3a-8cf0-11e0-98ee-001a6bd2d07d</UDN><deviceList><device>`+
		`<deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:%[1]d</deviceType><friendlyName>WANConnectionDevice</friendlyName>`+
		`<UDN>uuid:3d3cec3a-8cf0-11e0-98ee-001a6bd2d07e</UDN><serviceList><service><serviceType>%[2]s</serviceType>`+
		`<serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId><SCPDURL>/WANIPCn.xml</SCPDURL><controlURL>/ctl/IPConn</controlURL>`+
		`<eventSubURL>/evt/IPConn</eventSubURL></service></serviceList></device></deviceList></device></deviceList>`+
		`</device></root>`, v, s.svcType)
}

// envelope is the part of a SOAP request the fake reads.
type envelope struct {
	Body struct {
		Action struct {
			XMLName xml.Name
			Args    []struct {
				XMLName xml.Name
				Value   string `xml:",chardata"`
			} `xml:",any"`
		} `xml:",any"`
	} `xml:"Body"`
}

func fault(w http.ResponseWriter, code int, desc string) {
	w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
	w.WriteHeader(500)
	fmt.Fprintf(w, `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/">`+
		`<s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail>`+
		`<UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>%d</errorCode><errorDescription>%s</errorDescription>`+
		`</UPnPError></detail></s:Fault></s:Body></s:Envelope>`, code, desc)
}

func (s *Server) respond(w http.ResponseWriter, action string, args ...string) {
	var b bytes.Buffer
	for i := 0; i+1 < len(args); i += 2 {
		fmt.Fprintf(&b, "<%s>", args[i])
		xml.EscapeText(&b, []byte(args[i+1]))
		fmt.Fprintf(&b, "</%s>", args[i])
	}
	w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
	fmt.Fprintf(w, `<?xml version="1.0"?>`+"\r\n"+`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/">`+
		`<s:Body><u:%sResponse xmlns:u="%s">%s</u:%sResponse></s:Body></s:Envelope>`+"\r\n", action, s.svcType, b.String(), action)
}

func (s *Server) control(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		return
	}
	var env envelope
	if err := xml.Unmarshal(body, &env); err != nil {
		fault(w, 402, "Invalid Args")
		return
	}
	action := env.Body.Action.XMLName.Local
	hdr := strings.Trim(r.Header.Get("Soapaction"), `"`)
	if hdr != s.svcType+"#"+action || env.Body.Action.XMLName.Space != s.svcType {
		fault(w, 401, "Invalid Action")
		return
	}
	args := map[string]string{}
	for _, a := range env.Body.Action.Args {
		args[a.XMLName.Local] = a.Value
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts[action]++
	s.reqs = append(s.reqs, Request{Action: action, Args: args})
	if inj := s.take(action); inj != nil {
		s.write(w, inj, action)
		return
	}
	port := func(name string) (uint16, bool) {
		n, err := strconv.ParseUint(args[name], 10, 16)
		return uint16(n), err == nil
	}
	k := key{args["NewRemoteHost"], 0, args["NewProtocol"]}
	ep, okExt := port("NewExternalPort")
	k.port = ep
	switch action {
	case "GetExternalIPAddress":
		s.respond(w, action, "NewExternalIPAddress", s.external)
	case "GetStatusInfo":
		s.respond(w, action, "NewConnectionStatus", "Connected", "NewLastConnectionError", "ERROR_NONE", "NewUptime", "42")
	case "AddPortMapping", "AddAnyPortMapping":
		if action == "AddAnyPortMapping" && s.opt.Version < 2 {
			fault(w, 401, "Invalid Action")
			return
		}
		ip, okInt := port("NewInternalPort")
		lease, err := strconv.ParseUint(args["NewLeaseDuration"], 10, 32)
		if !okExt || !okInt || err != nil || (k.proto != "TCP" && k.proto != "UDP") || args["NewInternalClient"] == "" {
			fault(w, 402, "Invalid Args")
			return
		}
		switch {
		case ep == 0:
			fault(w, 716, "WildCardNotPermittedInExtPort")
			return
		case s.opt.OnlyPermanent && lease != 0:
			fault(w, 725, "OnlyPermanentLeasesSupported")
			return
		case s.opt.WildcardRemoteOnly && k.remote != "":
			fault(w, 726, "RemoteHostOnlySupportsWildcard")
			return
		}
		if s.opt.Version >= 2 && (lease == 0 || lease > uint64(s.opt.MaxLease)) {
			lease = uint64(s.opt.MaxLease)
		}
		m := Mapping{RemoteHost: k.remote, ExternalPort: ep, Protocol: k.proto, InternalPort: ip, Client: args["NewInternalClient"],
			Enabled: args["NewEnabled"] == "1", Description: args["NewPortMappingDescription"], Lease: uint32(lease)}
		free := func(k key) bool {
			old, ok := s.table[k]
			return !ok || old.Client == m.Client && old.InternalPort == m.InternalPort && !s.opt.ConflictOnReAdd
		}
		if action == "AddPortMapping" {
			if !free(k) {
				fault(w, 718, "ConflictInMappingEntry")
				return
			}
			s.table[k] = m
			s.respond(w, action)
			return
		}
		for range 65535 {
			if k.port != 0 && free(k) {
				m.ExternalPort = k.port
				s.table[k] = m
				s.respond(w, action, "NewReservedPort", strconv.Itoa(int(k.port)))
				return
			}
			k.port++
		}
		fault(w, 728, "NoPortMapsAvailable")
	case "DeletePortMapping":
		if _, ok := s.table[k]; !ok {
			fault(w, 714, "NoSuchEntryInArray")
			return
		}
		delete(s.table, k)
		s.respond(w, action)
	case "GetSpecificPortMappingEntry":
		m, ok := s.table[k]
		if !ok {
			fault(w, 714, "NoSuchEntryInArray")
			return
		}
		en := "0"
		if m.Enabled {
			en = "1"
		}
		s.respond(w, action, "NewInternalPort", strconv.Itoa(int(m.InternalPort)), "NewInternalClient", m.Client, "NewEnabled", en,
			"NewPortMappingDescription", m.Description, "NewLeaseDuration", strconv.FormatUint(uint64(m.Lease), 10))
	default:
		fault(w, 401, "Invalid Action")
	}
}
