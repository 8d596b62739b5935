package upnpigd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// HTTP limits.
const (
	maxHeaderBytes    = 8 << 10
	maxBodyBytes      = 64 << 10
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 30 * time.Second // above coreTimeout
	idleTimeout       = 30 * time.Second
)

// serverHeader is the SERVER header of HTTP and SSDP answers (UDA 1.1).
const serverHeader = "Linux UPnP/1.1 pcpgw/1.0"

// Handler returns the HTTP side (descriptions, control, events) as served
// on the LAN address lanAddr. Requests whose Host header does not name
// lanAddr (or another LAN address of pcpgw) with the port the request
// arrived on are refused with 403 (DNS rebinding).
func (s *Server) Handler(lanAddr netip.Addr) http.Handler {
	return &handler{s: s, lan: lanAddr.Unmap()}
}

type handler struct {
	s   *Server
	lan netip.Addr
}

// localPort returns the port a request arrived on.
func localPort(r *http.Request) (uint16, bool) {
	la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return 0, false
	}
	ap, err := netip.ParseAddrPort(la.String())
	if err != nil {
		return 0, false
	}
	return ap.Port(), true
}

// hostOK checks the Host header: an IP literal of pcpgw's LAN side and the
// port of this connection.
func (h *handler) hostOK(r *http.Request) (netip.AddrPort, bool) {
	ap, err := netip.ParseAddrPort(r.Host)
	if err != nil {
		return ap, false
	}
	port, ok := localPort(r)
	if !ok || ap.Port() != port {
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

func peerAddr(r *http.Request) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap().WithZone(""), true
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := h.s
	s.st.httpRequests.Add(1)
	w.Header().Set("Server", serverHeader)
	host, ok := h.hostOK(r)
	if !ok {
		s.st.httpBadHost.Add(1)
		http.Error(w, "forbidden host", http.StatusForbidden)
		return
	}
	peer, ok := peerAddr(r)
	if !ok {
		http.Error(w, "bad peer", http.StatusBadRequest)
		return
	}
	base := "http://" + host.String()
	for _, d := range s.devices {
		if r.URL.Path == d.descPath {
			h.serveXML(w, r, d.description(base))
			return
		}
	}
	sv, kind := s.findService(r.URL.Path)
	switch kind {
	case "scpd":
		h.serveXML(w, r, sv.scpd)
	case "ctl":
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h.control(w, r, sv, peer)
	case "evt":
		s.gena.serve(w, r, sv, peer)
	default:
		http.NotFound(w, r)
	}
}

func (h *handler) serveXML(w http.ResponseWriter, r *http.Request, b []byte) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	if r.Method == http.MethodHead {
		return
	}
	w.Write(b)
}

// control serves one SOAP action.
func (h *handler) control(w http.ResponseWriter, r *http.Request, sv *service, peer netip.Addr) {
	s := h.s
	if r.ContentLength > maxBodyBytes {
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	ns, name, err := parseSOAPAction(r.Header.Get("SOAPACTION"))
	if err != nil {
		s.st.soapMalformed.Add(1)
		h.fault(w, upnpInvalidAction, "Invalid Action")
		return
	}
	req, err := parseEnvelope(body)
	if err != nil {
		s.st.soapMalformed.Add(1)
		s.log.Debug("malformed SOAP request", "client", peer, "err", err)
		h.fault(w, upnpInvalidAction, "Invalid Action")
		return
	}
	if req.action != name || !serviceMatches(sv, ns) || (req.ns != "" && req.ns != ns) {
		s.st.soapMalformed.Add(1)
		h.fault(w, upnpInvalidAction, "Invalid Action")
		return
	}
	act, ok := sv.actions[name]
	if !ok {
		s.st.soapFaults.Add(1)
		h.fault(w, upnpInvalidAction, "Invalid Action")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), coreTimeout)
	defer cancel()
	c := &call{s: s, sv: sv, ctx: ctx, peer: peer, args: req.args}
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
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.Header().Set("Ext", "")
	w.Write(b)
}

func (h *handler) fault(w http.ResponseWriter, code int, desc string) {
	b := appendFault(nil, code, desc)
	w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusInternalServerError)
	w.Write(b)
}

// httpServer is one listener and its server.
type httpServer struct {
	ln  net.Listener
	srv *http.Server
}

// listenHTTP opens one listener per LAN address.
func (s *Server) listenHTTP(lans []lanNet) ([]httpServer, error) {
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
		addr := netip.AddrPortFrom(a, uint16(port)).String()
		if a.Is6() && a.IsLinkLocalUnicast() {
			addr = fmt.Sprintf("[%s%%%s]:%d", a, n.ifname, port)
		}
		lc := net.ListenConfig{Control: freeBind}
		ln, err := lc.Listen(context.Background(), "tcp", addr)
		if err != nil && a.Is6() {
			// IPv4 is what every control point uses; an IPv6 address
			// that cannot be served is not worth stopping for.
			s.log.Warn("HTTP listener on an IPv6 LAN address", "addr", addr, "err", err)
			continue
		}
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("upnpigd: listen %s: %w", addr, err)
		}
		lim := &limitListener{Listener: ln, sem: make(chan struct{}, s.cfg.MaxConns), refused: &s.st.httpConnsRefused}
		srv := &http.Server{
			Handler:           s.Handler(a),
			ReadHeaderTimeout: readHeaderTimeout,
			ReadTimeout:       readTimeout,
			WriteTimeout:      writeTimeout,
			IdleTimeout:       idleTimeout,
			MaxHeaderBytes:    maxHeaderBytes,
			// What a LAN host can provoke (bad requests, TLS probes) is
			// logged at Debug only.
			ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		}
		srv.SetKeepAlivesEnabled(true)
		out = append(out, httpServer{ln: lim, srv: srv})
		ap, _ := netip.ParseAddrPort(ln.Addr().String())
		s.mu.Lock()
		s.addrs = append(s.addrs, netip.AddrPortFrom(ap.Addr().Unmap().WithZone(""), ap.Port()))
		s.mu.Unlock()
	}
	return out, nil
}

// freeBind lets a socket bind an address that is not usable yet (an IPv6
// address still in duplicate address detection when pcpgw starts at boot).
func freeBind(network, address string, c syscall.RawConn) error {
	return c.Control(func(fd uintptr) {
		if strings.HasSuffix(network, "6") || strings.HasPrefix(address, "[") {
			unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_FREEBIND, 1)
		} else {
			unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_FREEBIND, 1)
		}
	})
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

// limitListener closes connections beyond the cap at once instead of
// queueing them, so a flood cannot hold the slots of legitimate clients
// longer than the read timeouts.
type limitListener struct {
	net.Listener
	sem     chan struct{}
	refused interface{ Add(uint64) uint64 }
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.sem <- struct{}{}:
			return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
		default:
			l.refused.Add(1)
			c.Close()
		}
	}
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
