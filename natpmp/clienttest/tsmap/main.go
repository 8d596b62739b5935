// Command tsmap runs tailscale.com/net/portmapper against a gateway and
// prints the UDP mapping it gets, for the lab tests of package clienttest.
// It runs as its own process inside the LAN namespace, because the
// portmapper's goroutines open sockets on threads of their own.
//
//	tsmap -gw 192.0.2.1 -self 192.0.2.100 -port 8097 -only pcp
//
// prints "probe: {PCP:true PMP:true UPnP:false}", then "mapped <addr:port>"
// once the mapping exists, and keeps it until SIGTERM or SIGINT;
// closing the client deletes the mapping.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"tailscale.com/net/netmon"
	"tailscale.com/net/portmapper"
	"tailscale.com/util/eventbus"
)

func main() {
	gw := flag.String("gw", "192.0.2.1", "the gateway")
	self := flag.String("self", "192.0.2.100", "this host's address toward the gateway")
	port := flag.Uint("port", 8097, "the local UDP port to map")
	only := flag.String("only", "pcp", "the protocol to use: pcp or pmp")
	wait := flag.Duration("wait", 20*time.Second, "how long to wait for a mapping")
	verbose := flag.Bool("v", false, "verbose portmapper logs")
	flag.Parse()
	gwAddr, err := netip.ParseAddr(*gw)
	if err != nil {
		log.Fatal(err)
	}
	selfAddr, err := netip.ParseAddr(*self)
	if err != nil {
		log.Fatal(err)
	}
	bus := eventbus.New()
	defer bus.Close()
	nm, err := netmon.New(bus, log.Printf)
	if err != nil {
		log.Fatal(err)
	}
	defer nm.Close()
	knobs := &portmapper.DebugKnobs{
		VerboseLogs:     *verbose,
		DisableUPnPFunc: func() bool { return true },
		DisablePMPFunc:  func() bool { return *only != "pmp" },
		DisablePCPFunc:  func() bool { return *only != "pcp" },
	}
	c := portmapper.NewClient(portmapper.Config{EventBus: bus, Logf: log.Printf, NetMon: nm, DebugKnobs: knobs})
	c.SetGatewayLookupFunc(func() (netip.Addr, netip.Addr, bool) { return gwAddr, selfAddr, true })
	c.SetLocalPort(uint16(*port))

	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer cancel()

	pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
	res, err := c.Probe(pctx)
	pcancel()
	fmt.Printf("probe: %+v %v\n", res, err)

	deadline := time.Now().Add(*wait)
	for {
		if ext, ok := c.GetCachedMappingOrStartCreatingOne(); ok {
			fmt.Printf("mapped %v\n", ext)
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			fmt.Println("no mapping")
			c.Close()
			os.Exit(1)
		}
		time.Sleep(100 * time.Millisecond)
	}
	<-ctx.Done()
	c.Close()
	fmt.Println("closed")
}
