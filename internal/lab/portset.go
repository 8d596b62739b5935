package lab

import (
	"fmt"
	"os/exec"
	"strings"
)

// borderRelay installs, in isp, the filter of a stateless MAP border
// relay (RFC 7597 §8) for the CPE's port set: packets to MAPShared4 and
// from it pass only on the set's ports (TCP and UDP by port, ICMP echo by
// identifier), and nothing else comes from the CPE's side. Dropped
// packets are counted (BRDrops).
func (l *Lab) borderRelay(ranges []string) error {
	for _, r := range ranges {
		if r == "" || strings.Trim(r, "0123456789-") != "" {
			return fmt.Errorf("port range %q", r)
		}
	}
	set := strings.Join(ranges, ", ")
	ruleset := fmt.Sprintf(`table inet br {
	set ports {
		type inet_service
		flags interval
		elements = { %[1]s }
	}
	set ids {
		typeof icmp id
		flags interval
		elements = { %[1]s }
	}
	chain forward {
		type filter hook forward priority 0; policy accept;
		iifname "%[2]s" ip saddr != %[3]s counter name other drop
		ip daddr %[3]s meta l4proto { tcp, udp } th dport != @ports counter name in drop
		ip saddr %[3]s meta l4proto { tcp, udp } th sport != @ports counter name out drop
		ip daddr %[3]s icmp type echo-reply icmp id != @ids counter name in drop
		ip saddr %[3]s icmp type echo-request icmp id != @ids counter name out drop
	}
	counter other { }
	counter in { }
	counter out { }
}
`, set, l.ISPIf, MAPShared4)
	c := exec.Command("ip", "netns", "exec", l.ISP.Name, "nft", "-f", "-")
	c.Stdin = strings.NewReader(ruleset)
	if out, err := c.CombinedOutput(); err != nil {
		return fmt.Errorf("nft: %v: %s", err, out)
	}
	return nil
}

// BRDrops returns how many packets the border relay of the PortSet
// topology dropped for being outside the port set: inbound (to the
// shared address), outbound (from it) and from other source addresses.
func (l *Lab) BRDrops() (in, out, other uint64, err error) {
	o, err := exec.Command("ip", "netns", "exec", l.ISP.Name, "nft", "list", "counters", "table", "inet", "br").CombinedOutput()
	if err != nil {
		return 0, 0, 0, fmt.Errorf("nft list counters: %v: %s", err, o)
	}
	vals := map[string]uint64{}
	// counter NAME { packets N bytes M }
	fs := strings.Fields(string(o))
	for i := 0; i+4 < len(fs); i++ {
		if fs[i] == "counter" && fs[i+2] == "{" && fs[i+3] == "packets" {
			var n uint64
			fmt.Sscan(fs[i+4], &n)
			vals[fs[i+1]] = n
		}
	}
	return vals["in"], vals["out"], vals["other"], nil
}
