package upnpigd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"github.com/pcpgw/pcpgw/internal/httpd"
	"github.com/pcpgw/pcpgw/internal/sock"
	"github.com/pcpgw/pcpgw/mapping"
)

// HTTP limits.
const (
	maxHeaderBytes = 8 << 10
	maxBodyBytes   = 64 << 10
	headerTimeout  = 2 * time.Second  // request line and header
	readTimeout    = 10 * time.Second // whole request
	writeTimeout   = 30 * time.Second // above coreTimeout
	idleTimeout    = 30 * time.Second
)

// serverHeader is the SERVER header of HTTP and SSDP answers (UDA 1.1).
const serverHeader = "Linux UPnP/1.1 pcpgw/1.0"

// Handler returns the HTTP side (descriptions, control, events) as served
// on the LAN address lanAddr. Requests whose Host header does not name
// lanAddr (or another LAN address of pcpgw) with the port the request
// arrived on are refused with 403 (DNS rebinding).
func (s *Server) Handler(lanAddr netip.Addr) httpd.Handler {
	return &handler{s: s, lan: lanAddr.Unmap()}
}

type handler struct {
	s   *Server
	lan netip.Addr
}

// hostOK checks the Host header: an IP literal of pcpgw's LAN side and the
// port of this connection, or the address alone (some control points
// leave the port out; miniupnpd takes any Host: an IP literal cannot be
// rebound).
func (h *handler) hostOK(r *httpd.Request) (netip.AddrPort, bool) {
	if !r.LocalAddr.IsValid() {
		return netip.AddrPort{}, false
	}
	ap, err := netip.ParseAddrPort(r.Host)
	if err != nil {
		a, aerr := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(r.Host, "["), "]"))
		if aerr != nil || (a.Is6() && !strings.HasPrefix(r.Host, "[")) {
			return ap, false
		}
		ap = netip.AddrPortFrom(a, r.LocalAddr.Port())
	}
	if ap.Port() != r.LocalAddr.Port() {
		return ap, false
	}
	a := ap.Addr().Unmap()
	if a.Zone() != "" {
		a = a.WithZone("")
	}
	if a == h.lan {
		return ap, true
	}
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	for _, n := range h.s.lanNets {
		if n.prefix.Addr() == a {
			return ap, true
		}
	}
	return ap, false
}

func peerAddr(r *httpd.Request) (netip.Addr, bool) {
	if !r.RemoteAddr.IsValid() {
		return netip.Addr{}, false
	}
	return r.RemoteAddr.Addr().Unmap().WithZone(""), true
}

func (h *handler) ServeHTTP(w httpd.ResponseWriter, r *httpd.Request) {
	s := h.s
	s.st.httpRequests.Add(1)
	w.Header().Set("Server", serverHeader)
	host, ok := h.hostOK(r)
	if !ok {
		s.st.httpBadHost.Add(1)
		httpd.Error(w, "forbidden host", httpd.StatusForbidden)
		return
	}
	peer, ok := peerAddr(r)
	if !ok {
		httpd.Error(w, "bad peer", httpd.StatusBadRequest)
		return
	}
	base := "http://" + host.String()
	for _, d := range s.devices {
		if r.Path == d.descPath {
			h.serveXML(w, r, d.description(base))
			return
		}
	}
	sv, kind := s.findService(r.Path)
	switch kind {
	case "scpd":
		h.serveXML(w, r, sv.scpd)
	case "ctl":
		if r.Method != "POST" {
			w.Header().Set("Allow", "POST")
			httpd.Error(w, "method not allowed", httpd.StatusMethodNotAllowed)
			return
		}
		h.control(w, r, sv, peer)
	case "evt":
		s.gena.serve(w, r, sv, peer)
	default:
		if s.cfg.Extra != nil {
			s.cfg.Extra.ServeHTTP(w, r)
			return
		}
		httpd.Error(w, "404 page not found", httpd.StatusNotFound)
	}
}

// serveXML answers GET and HEAD (httpd sends the header of a HEAD answer,
// with the Content-Length of the body, without the body).
func (h *handler) serveXML(w httpd.ResponseWriter, r *httpd.Request, b []byte) {
	if r.Method != "GET" && r.Method != "HEAD" {
		w.Header().Set("Allow", "GET, HEAD")
		httpd.Error(w, "method not allowed", httpd.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
	w.Write(b)
}

// control serves one SOAP action.
func (h *handler) control(w httpd.ResponseWriter, r *httpd.Request, sv *service, peer netip.Addr) {
	s := h.s
	if len(r.Body) > maxBodyBytes {
		// httpd refuses it before; a handler served otherwise still
		// keeps the limit.
		httpd.Error(w, "body too large", httpd.StatusRequestEntityTooLarge)
		return
	}
	ns, name, err := parseSOAPAction(r.Header.Get("SOAPACTION"))
	if err != nil {
		s.st.soapMalformed.Add(1)
		h.fault(w, upnpInvalidAction, "Invalid Action")
		return
	}
	req, err := parseEnvelope(r.Body)
	if err != nil {
		s.st.soapMalformed.Add(1)
		s.log.Debug("malformed SOAP request", "client", peer, "err", err)
		h.fault(w, upnpInvalidAction, "Invalid Action")
		return
	}
	// SOAPACTION names the action. As in miniupnpd, neither its service
	// type nor the body's action element (name, namespace) has to agree:
	// control points that send another version's or another service's
	// type, or another action element, get the action SOAPACTION names.
	asv, act := s.actionFor(sv, name)
	if act == nil {
		s.st.soapFaults.Add(1)
		h.fault(w, upnpInvalidAction, "Invalid Action")
		return
	}
	if req.argErr != nil {
		s.st.soapFaults.Add(1)
		s.log.Debug("invalid SOAP arguments", "client", peer, "action", name, "err", req.argErr)
		h.fault(w, mapping.UPnPInvalidArgs, "Invalid Args")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), coreTimeout)
	defer cancel()
	c := &call{s: s, sv: asv, ctx: ctx, peer: peer, args: req.args}
	vals, err := act.fn(c)
	if err != nil {
		code, desc := c.translate(err)
		s.st.soapFaults.Add(1)
		s.log.Debug("action failed", "client", peer, "action", name, "code", code, "err", err)
		h.fault(w, code, desc)
		return
	}
	s.st.soapActions.Add(1)
	b := appendResponse(nil, ns, name, act.out, vals)
	w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
	w.Header().Set("Ext", "")
	w.Write(b)
}

func (h *handler) fault(w httpd.ResponseWriter, code int, desc string) {
	b := appendFault(nil, code, desc)
	w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
	w.WriteHeader(httpd.StatusInternalServerError)
	w.Write(b)
}

// httpServer is one listener and its server.
type httpServer struct {
	ln  net.Listener
	srv *httpd.Server
}

// listenHTTP opens one listener per LAN address. An IPv4 address that
// cannot be served fails it when strict (at start: a configuration error
// to see), else it is skipped with a warning (an address added later
// whose port another program holds must not take the IGD down on the
// others).
func (s *Server) listenHTTP(lans []lanNet, strict bool) ([]httpServer, error) {
	var out []httpServer
	closeAll := func() {
		for _, hs := range out {
			hs.ln.Close()
		}
	}
	for _, n := range lans {
		port := s.cfg.HTTPPort
		if port == EphemeralPort {
			port = 0
		}
		a := n.prefix.Addr()
		if a.Is6() && a.IsLinkLocalUnicast() {
			a = a.WithZone(n.ifname)
		}
		addr := netip.AddrPortFrom(a, uint16(port))
		var ln net.Listener
		err := s.onDevice(n.ifname, sock.Options{FreeBind: true}, func(o sock.Options) (err error) {
			ln, err = sock.ListenTCP(addr, o)
			return err
		})
		if err != nil && (a.Is6() || !strict) {
			// IPv4 is what every control point uses; an IPv6 address
			// that cannot be served is not worth stopping for.
			s.log.Warn("HTTP listener on a LAN address: skipped", "addr", addr, "err", err)
			continue
		}
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("upnpigd: listen %s: %w", addr, err)
		}
		srv := &httpd.Server{
			Handler:        s.Handler(a),
			MaxHeaderBytes: maxHeaderBytes,
			MaxBodyBytes:   maxBodyBytes,
			HeaderTimeout:  headerTimeout,
			ReadTimeout:    readTimeout,
			WriteTimeout:   writeTimeout,
			IdleTimeout:    idleTimeout,
			MaxConns:       s.cfg.MaxConns,
			ConnRefused:    func() { s.st.httpConnsRefused.Add(1) },
		}
		out = append(out, httpServer{ln: ln, srv: srv})
		ap, _ := netip.ParseAddrPort(ln.Addr().String())
		s.mu.Lock()
		s.addrs = append(s.addrs, netip.AddrPortFrom(ap.Addr().Unmap().WithZone(""), ap.Port()))
		s.mu.Unlock()
	}
	return out, nil
}

// onDevice calls listen with the socket options o and the binding to the
// LAN interface ifname (SO_BINDTODEVICE). Linux takes a packet for any
// local address on any interface (weak host model): a socket bound to a
// LAN address only would also answer connections and datagrams routed to
// that address over the WAN (REQUIREMENTS 30: no management service on the
// WAN, RFC 6092 REC-50). Without the privilege for it (EPERM: no
// CAP_NET_RAW), listen is called again without the device binding and a
// warning is logged once: the firewall is then all that keeps the WAN side
// out.
func (s *Server) onDevice(ifname string, o sock.Options, listen func(sock.Options) error) error {
	o.Device = ifname
	err := listen(o)
	if !errors.Is(err, syscall.EPERM) {
		return err
	}
	s.mu.Lock()
	warn := !s.warnedBind
	s.warnedBind = true
	s.mu.Unlock()
	if warn {
		s.log.Warn("cannot bind sockets to the LAN interface (no CAP_NET_RAW): HTTP and SSDP on a LAN address are kept from the WAN side only by the firewall", "interface", ifname, "err", err)
	}
	o.Device = ""
	return listen(o)
}

// httpPortOf returns the HTTP port serving LAN address a.
func (s *Server) httpPortOf(a netip.Addr) (uint16, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ap := range s.addrs {
		if ap.Addr() == a {
			return ap.Port(), true
		}
	}
	return 0, false
}
