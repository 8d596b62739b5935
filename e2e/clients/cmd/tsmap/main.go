// Command tsmap runs tailscale's port mapping client
// (tailscale.com/net/portmapper) once, as a LAN host's tailscaled would:
// it probes the default gateway for PCP, NAT-PMP and UPnP IGD, asks for a
// mapping of one local UDP port, reports what it got, holds the mapping
// until SIGTERM or SIGINT, and then closes the client, which releases the
// mapping.
//
// The end-to-end tests of this module start it inside the lab's lan
// namespace (`ip netns exec`), so that every socket, the netlink monitor
// and the routing table it reads belong to that namespace, whatever
// threads tailscale's goroutines run on.
//
// Usage:
//
//	tsmap -port 41641 [-protocols pcp,pmp,upnp] [-timeout 20s] [-v]
//
// It writes one JSON object a line to stdout:
//
//	{"event":"probe","gateway":"192.0.2.1","self":"192.0.2.100","pcp":true,"pmp":true,"upnp":true}
//	{"event":"mapping","type":"pcp","external":"203.0.113.1:1024","good_until":"..."}
//	{"event":"closed"}
//
// or {"event":"error","err":"..."} and exit status 1. Tailscale's own log
// goes to stderr (verbose with -v).
//
// The gateway comes from the default IPv4 route of /proc/net/route and
// the host's address from that route's interface, handed to the client
// with SetGatewayLookupFunc: tailscale's built-in lookup only accepts an
// RFC 1918 gateway, and the lab uses the documentation ranges.
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"tailscale.com/net/netmon"
	"tailscale.com/net/portmapper"
	"tailscale.com/net/portmapper/portmappertype"
	"tailscale.com/types/logger"
	"tailscale.com/util/eventbus"
)

// event is one line of output.
type event struct {
	Event     string    `json:"event"`
	Gateway   string    `json:"gateway,omitempty"`
	Self      string    `json:"self,omitempty"`
	PCP       bool      `json:"pcp,omitempty"`
	PMP       bool      `json:"pmp,omitempty"`
	UPnP      bool      `json:"upnp,omitempty"`
	Type      string    `json:"type,omitempty"`
	External  string    `json:"external,omitempty"`
	GoodUntil time.Time `json:"good_until,omitzero"`
	Err       string    `json:"err,omitempty"`
}

// config is what the flags select.
type config struct {
	port      uint16
	pcp, pmp  bool
	upnp      bool
	timeout   time.Duration
	verbose   bool
	routeFile string
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("tsmap: ")
	port := flag.Uint("port", 0, "local UDP `port` to map (required)")
	protocols := flag.String("protocols", "pcp,pmp,upnp", "comma-separated protocols the client may use: pcp, pmp, upnp")
	timeout := flag.Duration("timeout", 20*time.Second, "give up when no mapping is made within this time")
	verbose := flag.Bool("v", false, "tailscale's verbose logs on stderr")
	flag.Parse()
	if flag.NArg() > 0 {
		log.Fatalf("unexpected arguments %q", flag.Args())
	}
	if *port == 0 || *port > 65535 {
		log.Fatalf("-port: want 1 to 65535, got %d", *port)
	}
	cfg := config{port: uint16(*port), timeout: *timeout, verbose: *verbose, routeFile: "/proc/net/route"}
	for p := range strings.SplitSeq(*protocols, ",") {
		switch strings.TrimSpace(p) {
		case "pcp":
			cfg.pcp = true
		case "pmp":
			cfg.pmp = true
		case "upnp":
			cfg.upnp = true
		default:
			log.Fatalf("-protocols: unknown protocol %q (want pcp, pmp, upnp)", p)
		}
	}
	if !cfg.pcp && !cfg.pmp && !cfg.upnp {
		log.Fatal("-protocols: none selected")
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	enc := json.NewEncoder(os.Stdout)
	if err := run(ctx, cfg, enc); err != nil {
		enc.Encode(event{Event: "error", Err: err.Error()})
		stop()
		os.Exit(1)
	}
}

// run makes the client, probes, maps cfg.port, reports the mapping and
// holds it until stop is done, then closes the client.
func run(stop context.Context, cfg config, enc *json.Encoder) error {
	f, err := os.Open(cfg.routeFile)
	if err != nil {
		return err
	}
	ifname, gw, err := defaultRoute(f)
	f.Close()
	if err != nil {
		return err
	}
	self, err := interfaceAddr4(ifname)
	if err != nil {
		return err
	}

	logf := logger.Logf(log.Printf)
	bus := eventbus.New()
	defer bus.Close()
	mon, err := netmon.New(bus, logf)
	if err != nil {
		return fmt.Errorf("netmon: %w", err)
	}
	mon.Start()
	defer mon.Close()

	// Subscribe before the client exists so no mapping event is missed.
	sub := eventbus.Subscribe[portmappertype.Mapping](bus.Client("tsmap"))
	off := func(on bool) func() bool { return func() bool { return !on } }
	c := portmapper.NewClient(portmapper.Config{
		EventBus: bus,
		Logf:     logf,
		NetMon:   mon,
		DebugKnobs: &portmapper.DebugKnobs{
			VerboseLogs:     cfg.verbose,
			DisablePCPFunc:  off(cfg.pcp),
			DisablePMPFunc:  off(cfg.pmp),
			DisableUPnPFunc: off(cfg.upnp),
		},
	})
	c.SetGatewayLookupFunc(func() (netip.Addr, netip.Addr, bool) { return gw, self, true })
	c.SetLocalPort(cfg.port)

	ctx, cancel := context.WithTimeout(stop, cfg.timeout)
	defer cancel()

	// Probe as tailscaled's periodic checks do: each probe waits 250 ms
	// for answers, and the client remembers what answered (a later probe
	// sends only to services not yet seen). Probe until every permitted
	// service answered, or, after five probes 500 ms apart, until at least
	// one did (the gateway may still be starting).
	var res portmappertype.ProbeResult
	for try := 1; ; try++ {
		res, err = c.Probe(ctx)
		all := (res.PCP || !cfg.pcp) && (res.PMP || !cfg.pmp) && (res.UPnP || !cfg.upnp)
		some := res.PCP && cfg.pcp || res.PMP && cfg.pmp || res.UPnP && cfg.upnp
		if err == nil && (all || some && try >= 5) {
			break
		}
		select {
		case <-ctx.Done():
			c.Close()
			return fmt.Errorf("probe of %v: no permitted service answered (last %+v, %v)", gw, res, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
	enc.Encode(event{Event: "probe", Gateway: gw.String(), Self: self.String(), PCP: res.PCP, PMP: res.PMP, UPnP: res.UPnP})

	// Ask for a mapping; the client makes it in the background and
	// publishes it. Ask again every second while none comes, as
	// tailscaled's endpoint updates do.
	var m portmappertype.Mapping
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	c.GetCachedMappingOrStartCreatingOne()
wait:
	for {
		select {
		case m = <-sub.Events():
			break wait
		case <-tick.C:
			c.GetCachedMappingOrStartCreatingOne()
		case <-ctx.Done():
			c.Close()
			return fmt.Errorf("no mapping of UDP port %d through %v within %v", cfg.port, gw, cfg.timeout)
		}
	}
	if !c.HaveMapping() {
		c.Close()
		return errors.New("mapping published but HaveMapping is false")
	}
	ext, ok := c.GetCachedMappingOrStartCreatingOne()
	if !ok || ext != m.External {
		c.Close()
		return fmt.Errorf("cached mapping %v (ok %v) differs from the published %v", ext, ok, m.External)
	}
	enc.Encode(event{Event: "mapping", Type: m.Type, External: m.External.String(), GoodUntil: m.GoodUntil})

	// Hold the mapping until told to stop (the timeout no longer applies).
	<-stop.Done()
	if err := c.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	enc.Encode(event{Event: "closed"})
	return nil
}

// defaultRoute returns the interface and gateway of the first IPv4
// default route with a gateway in a /proc/net/route table.
func defaultRoute(r io.Reader) (ifname string, gw netip.Addr, err error) {
	s := bufio.NewScanner(r)
	for line := 0; s.Scan(); line++ {
		f := strings.Fields(s.Text())
		if line == 0 {
			if len(f) < 4 || f[0] != "Iface" || f[1] != "Destination" || f[2] != "Gateway" || f[3] != "Flags" {
				return "", netip.Addr{}, fmt.Errorf("route table: unexpected header %q", s.Text())
			}
			continue
		}
		if len(f) < 8 {
			continue
		}
		dst, err1 := strconv.ParseUint(f[1], 16, 32)
		hop, err2 := strconv.ParseUint(f[2], 16, 32)
		flags, err3 := strconv.ParseUint(f[3], 16, 16)
		mask, err4 := strconv.ParseUint(f[7], 16, 32)
		if err := errors.Join(err1, err2, err3, err4); err != nil {
			return "", netip.Addr{}, fmt.Errorf("route table line %d: %w", line+1, err)
		}
		const up, gateway = 0x1, 0x2 // RTF_UP, RTF_GATEWAY
		if dst != 0 || mask != 0 || flags&(up|gateway) != up|gateway {
			continue
		}
		// The kernel prints the address's 32 bits as a number in the
		// host's byte order: 0100000A is 10.0.0.1 on a little-endian host.
		var a [4]byte
		binary.NativeEndian.PutUint32(a[:], uint32(hop))
		return f[0], netip.AddrFrom4(a), nil
	}
	if err := s.Err(); err != nil {
		return "", netip.Addr{}, err
	}
	return "", netip.Addr{}, errors.New("route table: no IPv4 default route with a gateway")
}

// interfaceAddr4 returns the first IPv4 address of the interface.
func interfaceAddr4(name string) (netip.Addr, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return netip.Addr{}, err
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%s: %w", name, err)
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() {
			return p.Addr(), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("%s: no IPv4 address", name)
}
