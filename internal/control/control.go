// Package control is the local control channel of a running pcpgw: a unix
// socket (mode 0600) on which `pcpgw status`, `pcpgw list` and `pcpgw
// delete` ask the daemon (and, through them, OpenWrt's rpcd plugin).
//
// The protocol is one request line and one JSON document in answer, then
// the daemon closes the connection:
//
//	status               -> Status
//	list                 -> [Row...]
//	delete PROTO PORT    -> {"deleted":N} or {"error":"..."}   (PROTO tcp or udp)
//	delete id ID         -> {"deleted":N} or {"error":"..."}   (Row.ID)
//	anything else        -> {"error":"..."}
package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Status is the answer to "status".
type Status struct {
	Version    string            `json:"version"`
	Started    time.Time         `json:"started"`
	Mode       string            `json:"mode"`
	ModeConfig string            `json:"mode_config"`
	WAN        string            `json:"wan"`
	WANAddr    string            `json:"wan_addr"`
	External   string            `json:"external_addr"`
	Epoch      uint32            `json:"epoch"`
	Upstream   Upstream          `json:"upstream"`
	PortSet    *PortSet          `json:"portset,omitempty"`
	Listeners  []string          `json:"listeners"`
	Mappings   int               `json:"mappings"`
	Pinholes   int               `json:"pinholes"`
	Pending    int               `json:"pending"`
	Failing    int               `json:"failing"`
	Counters   map[string]uint64 `json:"counters,omitempty"`
}

// Upstream is the provider side of the status: what pcpgw asks to open
// ports beyond the CPE, and how it is doing.
type Upstream struct {
	// Kind is the upstream in force: "pcp" (the provider's PCP server),
	// "natpmp" (a NAT-PMP gateway), "upnp" (an ISP box's UPnP IGD),
	// "none" (nothing upstream forwards ports: mappings are made on the
	// CPE only), "local" (a public WAN address: nothing needed upstream)
	// or "detecting".
	Kind string `json:"kind"`
	// KindConfig is the configured choice (option upstream): auto, pcp,
	// natpmp, upnp or none.
	KindConfig string `json:"kind_config,omitempty"`
	// Address is the upstream's address: the PCP server or NAT-PMP
	// gateway (ADDR:PORT), the IGD's control URL host (ADDR:PORT).
	Address string `json:"address,omitempty"`
	// Device describes an upstream UPnP IGD.
	Device *Device `json:"device,omitempty"`
	// External is the external address the upstream reports.
	External string `json:"external_addr,omitempty"`
	// Advice says, for kind none or an upstream whose external address
	// is not public, why the internet cannot reach the mappings and what
	// the user can do.
	Advice string `json:"advice,omitempty"`
	// Detected is when the kind was last chosen.
	Detected time.Time `json:"detected,omitzero"`

	Servers    []string  `json:"servers"`
	Server     string    `json:"server,omitempty"`
	Protocol   string    `json:"protocol,omitempty"`
	Epoch      uint32    `json:"epoch"`
	Reachable  bool      `json:"reachable"`
	LastAnswer time.Time `json:"last_answer,omitzero"`
	LastError  string    `json:"last_error,omitempty"`
	Sent       uint64    `json:"sent"`
	Received   uint64    `json:"received"`
	Dropped    uint64    `json:"dropped"`
}

// PortSet is the provider's port set in portset mode (A+P: MAP-E, MAP-T,
// lw4o6) and how pcpgw shares it between mappings and the router's
// outbound connections.
type PortSet struct {
	// Ranges is the set: every port the provider forwards to the router
	// ("4112-4127"...).
	Ranges []string `json:"ranges"`
	// Usable is the number of ports in Ranges.
	Usable int `json:"usable"`
	// MappingRanges are the ports mappings take; ForMappings their number.
	MappingRanges []string `json:"mapping_ranges"`
	ForMappings   int      `json:"for_mappings"`
	// OutboundRanges are the ports pcpgw's own SNAT gives outbound
	// connections; none when pcpgw leaves outbound NAT to the firewall.
	OutboundRanges []string `json:"outbound_ranges,omitempty"`
	// Mapped is the number of port mappings (each in MappingRanges).
	Mapped int `json:"mapped"`
	// Source says where the set came from: "map rules FILE" or "options".
	Source string `json:"source"`
	// Text says it in one line: "ports 4112-4127, 8208-8223, ...: 240
	// usable, 64 for mappings (...), 176 for outbound connections, 12
	// mapped".
	Text string `json:"text"`
}

// Device is an upstream UPnP IGD as its description names it.
type Device struct {
	FriendlyName string `json:"friendly_name,omitempty"`
	Manufacturer string `json:"manufacturer,omitempty"`
	Model        string `json:"model,omitempty"`
	// Service is the WAN connection service type driven, e.g.
	// urn:schemas-upnp-org:service:WANIPConnection:2.
	Service string `json:"service,omitempty"`
	// Location is the URL of its root description.
	Location string `json:"location,omitempty"`
}

// Row is one mapping in the answer to "list".
type Row struct {
	ID          uint32 `json:"id"`
	Proto       string `json:"proto"`
	External    string `json:"external"`
	WANPort     uint16 `json:"wan_port,omitempty"`
	Internal    string `json:"internal"`
	Client      string `json:"client"`
	LeaseLeft   int64  `json:"lease_left_s"` // -1: no end
	Origin      string `json:"origin"`
	Upstream    string `json:"upstream"`
	Description string `json:"description,omitempty"`
	// Error is why the provider has not made the mapping while Upstream
	// is pending or failing: its refusal ("CANNOT_PROVIDE_EXTERNAL: the
	// provider refused external port 8080") or that it did not answer.
	Error string `json:"error,omitempty"`
	// RetryAt is when the provider is asked again (pending, failing).
	RetryAt time.Time `json:"retry_at,omitzero"`
}

// DeleteRequest selects the mappings an administrator deletes: by
// protocol and external port (the port `pcpgw delete` takes: Row.WANPort,
// or the port of Row.External when the CPE does no NAT), or by Row.ID.
type DeleteRequest struct {
	Proto string // "tcp" or "udp" (with Port)
	Port  uint16
	ID    uint32 // instead of Proto and Port
}

// DeleteAnswer is the answer to "delete": how many mappings went, or why
// none did.
type DeleteAnswer struct {
	Deleted int    `json:"deleted"`
	Error   string `json:"error,omitempty"`
}

// Source answers the requests; the daemon implements it.
type Source interface {
	Status() Status
	List() []Row
	// Delete removes what r selects, as an administrator (not a LAN
	// host): it returns how many mappings it removed, 0 when none matched.
	Delete(ctx context.Context, r DeleteRequest) (int, error)
}

// deleteTimeout bounds a delete: the core's firewall batch (the provider
// is told in the background).
const deleteTimeout = 5 * time.Second

// ParseDelete parses the arguments of a delete request: "PROTO PORT" or
// "id ID".
func ParseDelete(args []string) (DeleteRequest, error) {
	if len(args) != 2 {
		return DeleteRequest{}, errors.New("delete takes PROTO PORT (tcp or udp, 1-65535) or id ID")
	}
	if args[0] == "id" {
		id, err := strconv.ParseUint(args[1], 10, 32)
		if err != nil || id == 0 {
			return DeleteRequest{}, fmt.Errorf("mapping id %q is not a number from 1 to 4294967295", args[1])
		}
		return DeleteRequest{ID: uint32(id)}, nil
	}
	if args[0] != "tcp" && args[0] != "udp" {
		return DeleteRequest{}, fmt.Errorf("protocol %q is neither tcp nor udp", args[0])
	}
	port, err := strconv.ParseUint(args[1], 10, 16)
	if err != nil || port == 0 {
		return DeleteRequest{}, fmt.Errorf("port %q is not a number from 1 to 65535", args[1])
	}
	return DeleteRequest{Proto: args[0], Port: uint16(port)}, nil
}

// String is the request line of r.
func (r DeleteRequest) String() string {
	if r.ID != 0 {
		return fmt.Sprintf("delete id %d", r.ID)
	}
	return fmt.Sprintf("delete %s %d", r.Proto, r.Port)
}

// Server serves a Source on a unix socket.
type Server struct {
	path string
	ln   net.Listener
	src  Source
	log  *slog.Logger
	wg   sync.WaitGroup
	once sync.Once
}

// Listen creates the socket at path (mode 0600), replacing a stale one left
// by a dead daemon but refusing to take over a live one.
func Listen(path string, src Source, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	addr := &net.UnixAddr{Name: path, Net: "unix"}
	if c, err := net.DialUnix("unix", nil, addr); err == nil {
		c.Close()
		return nil, fmt.Errorf("control: %s: another pcpgw is running", path)
	}
	os.Remove(path)
	old := umask(0o177)
	ln, err := net.ListenUnix("unix", addr)
	umask(old)
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control: %w", err)
	}
	ln.SetUnlinkOnClose(true)
	return &Server{path: path, ln: ln, src: src, log: log.With("component", "control")}, nil
}

// Serve answers until ctx ends or Close is called.
func (s *Server) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				s.wg.Wait()
				return nil
			}
			return err
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(ctx, c)
		}()
	}
}

func (s *Server) handle(ctx context.Context, c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(5*time.Second + deleteTimeout))
	line, err := bufio.NewReader(io.LimitReader(c, 256)).ReadString('\n')
	if err != nil {
		return
	}
	var v any
	switch f := strings.Fields(line); {
	case len(f) == 1 && f[0] == "status":
		v = s.src.Status()
	case len(f) == 1 && f[0] == "list":
		rows := s.src.List()
		if rows == nil {
			rows = []Row{}
		}
		v = rows
	case len(f) > 0 && f[0] == "delete":
		v = s.delete(ctx, f[1:])
	default:
		v = map[string]string{"error": "unknown request"}
	}
	if err := json.NewEncoder(c).Encode(v); err != nil {
		s.log.Debug("answer", "err", err)
	}
}

func (s *Server) delete(ctx context.Context, args []string) DeleteAnswer {
	r, err := ParseDelete(args)
	if err != nil {
		return DeleteAnswer{Error: err.Error()}
	}
	ctx, cancel := context.WithTimeout(ctx, deleteTimeout)
	defer cancel()
	n, err := s.src.Delete(ctx, r)
	if err != nil {
		s.log.Info("delete refused", "request", r.String(), "err", err)
		return DeleteAnswer{Deleted: n, Error: err.Error()}
	}
	s.log.Info("deleted", "request", r.String(), "mappings", n)
	return DeleteAnswer{Deleted: n}
}

// Close stops the server and removes the socket; idempotent.
func (s *Server) Close() error {
	s.once.Do(func() { s.ln.Close() })
	return nil
}

// Delete asks the daemon at path to delete what r selects and returns how
// many mappings it deleted; the daemon's refusal is the error.
func Delete(ctx context.Context, path string, r DeleteRequest) (int, error) {
	var a DeleteAnswer
	if err := Ask(ctx, path, r.String(), &a); err != nil {
		return 0, err
	}
	if a.Error != "" {
		return a.Deleted, errors.New(a.Error)
	}
	return a.Deleted, nil
}

// Ask sends one request to the daemon at path and decodes its answer into v.
func Ask(ctx context.Context, path, req string, v any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return fmt.Errorf("is pcpgw running? %w", err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	defer context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })()
	if _, err := io.WriteString(c, req+"\n"); err != nil {
		return err
	}
	if err := json.NewDecoder(c).Decode(v); err != nil {
		return fmt.Errorf("control: reading the answer: %w", err)
	}
	return nil
}
