package config_test

import (
	"flag"
	"fmt"
	"os"

	"github.com/pcpgw/pcpgw/config"
)

// How cmd/pcpgw wires `pcpgw run`: register the flags, parse, then Load
// the file (here none) with the flags on top.
func ExampleLoad() {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	file := fs.String("c", "", "configuration file")
	flags := config.RegisterFlags(fs)
	if err := fs.Parse([]string{"--lan", "br-lan", "--wan", "eth1", "--pcp-server", "192.0.2.1", "--no-upnp"}); err != nil {
		fmt.Println(err)
		return
	}
	c, warnings, err := config.Load(*file, flags)
	if err != nil {
		fmt.Println(err) // file:line: reason
		return
	}
	for _, w := range warnings {
		fmt.Fprintln(os.Stderr, w)
	}
	fmt.Println(c.LAN, c.WAN6, c.PCPServers, c.UPnP, c.NATPMP, c.HTTPPort, c.Mode)
	// Output: [br-lan] eth1 [192.0.2.1:5351] false true 5000 auto
}
