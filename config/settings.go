package config

import (
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pcpgw/pcpgw/portset"
)

// setting is one option of the pcpgw section and, for some, its flag.
type setting struct {
	name    string // UCI option name
	flag    string // flag name without dashes, "" if none
	list    bool   // a list; its flag is repeatable
	boolean bool   // a boolean; its flag also has a --no- form (unless noNeg)
	noNeg   bool
	def     string // default, for the reference
	help    string // meaning, for the reference and -h
	// set parses one value (one item of a list) into c.
	set func(c *Config, v string) error
	// get gives the value(s) to write; "" or none means nothing to write.
	get func(c *Config) []string
	// clear empties a list before the file's or the flags' items.
	clear func(c *Config)
}

func lookup(name string) *setting {
	for i := range settings {
		if settings[i].name == name {
			return &settings[i]
		}
	}
	return nil
}

func strSetting(name, flag, def, help string, field func(*Config) *string, check func(string) error) setting {
	return setting{name: name, flag: flag, def: def, help: help,
		set: func(c *Config, v string) error {
			if err := check(v); err != nil {
				return err
			}
			*field(c) = v
			return nil
		},
		get: func(c *Config) []string { return []string{*field(c)} },
	}
}

func boolSetting(name, flag string, def bool, help string, field func(*Config) *bool) setting {
	d := "off"
	if def {
		d = "on"
	}
	return setting{name: name, flag: flag, boolean: true, def: d, help: help,
		set: func(c *Config, v string) error {
			b, err := parseBool(v)
			if err != nil {
				return err
			}
			*field(c) = b
			return nil
		},
		get: func(c *Config) []string { return []string{formatBool(*field(c))} },
	}
}

func secondsSetting(name, def, help string, field func(*Config) *time.Duration) setting {
	return setting{name: name, def: def, help: help,
		set: func(c *Config, v string) error {
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return fmt.Errorf("%q is not a number of seconds (1-4294967295)", v)
			}
			*field(c) = time.Duration(n) * time.Second
			return checkLifetime(*field(c))
		},
		get: func(c *Config) []string { return []string{strconv.FormatInt(int64(*field(c)/time.Second), 10)} },
	}
}

// settings is every option of the pcpgw section, in the order of the
// reference and of WriteUCI.
var settings = []setting{
	boolSetting("enabled", "", true, "Read by the init script: start pcpgw at boot.", func(c *Config) *bool { return &c.Enabled }),
	{name: "lan", flag: "lan", list: true, def: "none (required)",
		help: "LAN interface to serve. Every listener binds to the addresses of these interfaces only.",
		set: func(c *Config, v string) error {
			if err := checkIfname(v); err != nil {
				return err
			}
			c.LAN = append(c.LAN, v)
			return nil
		},
		get:   func(c *Config) []string { return c.LAN },
		clear: func(c *Config) { c.LAN = nil },
	},
	strSetting("wan", "wan", "none (required)", "Interface toward the provider (IPv4 uplink).", func(c *Config) *string { return &c.WAN }, checkIfname),
	strSetting("wan6", "wan6", "the wan interface", "IPv6 uplink interface.", func(c *Config) *string { return &c.WAN6 }, checkIfname),
	{name: "pcp_server", flag: "pcp-server", list: true, def: "none: discovery",
		help: "The provider's PCP server, ADDR[:PORT] (port 5351 if left out; IPv6 as [ADDR]:PORT or a bare ADDR). None: the servers file, then the default router.",
		set: func(c *Config, v string) error {
			ap, err := ParseServer(v)
			if err != nil {
				return err
			}
			c.PCPServers = append(c.PCPServers, ap)
			return nil
		},
		get: func(c *Config) []string {
			out := make([]string, len(c.PCPServers))
			for i, s := range c.PCPServers {
				out[i] = s.String()
			}
			return out
		},
		clear: func(c *Config) { c.PCPServers = nil },
	},
	strSetting("pcp_servers_file", "", "/var/run/pcpgw/pcp-servers",
		"File where the DHCP hooks write the PCP servers learned from DHCPv4 option 158 and DHCPv6 option 86, one per line; re-read when it changes.",
		func(c *Config) *string { return &c.PCPServersFile }, checkPath),
	strSetting("mode", "mode", "auto",
		"auto (pick one at start and on WAN changes), local (public WAN address: the CPE's own NAT only, no PCP), nat444 (CPE NAT behind the provider's NAT, RFC 6970 §5.5), dslite (no CPE NAT; PCP MAP with THIRD_PARTY, RFC 6970 §5.4) or portset (a shared IPv4 address with a port set: MAP-E, MAP-T, lw4o6; auto picks it when the WAN is a map interface or a port set is configured).",
		func(c *Config) *string { return &c.Mode }, checkMode),
	strSetting("upstream", "upstream", "auto",
		"What opens ports beyond the CPE: auto (at start and on WAN changes try the provider's PCP server, then a NAT-PMP gateway, then an ISP box's UPnP IGD on the WAN link; none if nothing answers), pcp, natpmp, upnp, or none (mappings on the CPE only; the status says what to do).",
		func(c *Config) *string { return &c.Upstream }, checkUpstream),
	strSetting("aftr_name", "", "none", "DS-Lite AFTR name (DHCPv6 option 64; the DHCPv6 hook sets it): looked up with the WAN's resolvers, its address is the PCP server unless one is configured or learned from DHCP. A new name takes effect on reload.", func(c *Config) *string { return &c.AFTRName },
		func(v string) error { return checkDNSName(v) }),
	{name: "nat64_prefix", list: true, def: "none: RFC 7050 discovery, else 64:ff9b::/96",
		help: "The provider's NAT64 prefix (Pref64::/n: /32, /40, /48, /56, /64 or /96): an IPv4 port made at its NAT64 for an IPv6 LAN host admits inbound IPv6 from it, when the provider's PCP answer names none (PREFIX64).",
		set: func(c *Config, v string) error {
			p, err := netip.ParsePrefix(v)
			if err != nil || !p.Addr().Is6() || p.Addr().Is4In6() || !slices.Contains([]int{32, 40, 48, 56, 64, 96}, p.Bits()) {
				return fmt.Errorf("%q is not an IPv6 prefix of length 32, 40, 48, 56, 64 or 96", v)
			}
			c.NAT64Prefixes = append(c.NAT64Prefixes, p.Masked())
			return nil
		},
		get: func(c *Config) []string {
			var out []string
			for _, p := range c.NAT64Prefixes {
				out = append(out, p.String())
			}
			return out
		},
		clear: func(c *Config) { c.NAT64Prefixes = nil },
	},
	strSetting("wan_resolv_file", "", "/tmp/resolv.conf.d/resolv.conf.auto",
		"The DNS resolvers learned on the WAN, in resolv.conf's format (OpenWrt's netifd writes this file); the AFTR name is looked up with them, else with the system's.",
		func(c *Config) *string { return &c.WANResolvFile }, checkPath),
	{name: "portset_psid", def: "none",
		help: "The router's PSID (RFC 7597 §5.1, as the provider gives it: right-aligned), with portset_psid_len and portset_offset: the provider's port set for mode portset, when no map interface says it.",
		set:  intSetter(0, 65535, func(c *Config) *int { return &c.PortSetPSID }),
		get: func(c *Config) []string {
			if c.PortSetPSIDLen == 0 {
				return nil
			}
			return []string{strconv.Itoa(c.PortSetPSID)}
		},
	},
	{name: "portset_psid_len", def: "none",
		help: "PSID length in bits (1-16); the set has 2^offset - 1 ranges of 2^(16 - offset - length) ports.",
		set:  intSetter(1, 16, func(c *Config) *int { return &c.PortSetPSIDLen }),
		get: func(c *Config) []string {
			if c.PortSetPSIDLen == 0 {
				return nil
			}
			return []string{strconv.Itoa(c.PortSetPSIDLen)}
		},
	},
	{name: "portset_offset", def: "6",
		help: "PSID offset in bits (0-15; MAP's default 6; lw4o6 and some providers use 0 or 4).",
		set:  intSetter(0, 15, func(c *Config) *int { return &c.PortSetOffset }),
		get:  func(c *Config) []string { return []string{strconv.Itoa(c.PortSetOffset)} },
	},
	{name: "portset_ranges", list: true, def: "none",
		help: "The provider's port set as ranges (4112-4127 8208-8223 ...), instead of the PSID options.",
		set: func(c *Config, v string) error {
			s, err := portset.Parse(v)
			if err != nil {
				return err
			}
			c.PortSetRanges = c.PortSetRanges.Union(s)
			return nil
		},
		get: func(c *Config) []string {
			var out []string
			for _, r := range c.PortSetRanges.Ranges() {
				out = append(out, r.String())
			}
			return out
		},
		clear: func(c *Config) { c.PortSetRanges = portset.Set{} },
	},
	{name: "portset_addr", def: "the map interface's, else the WAN's",
		help: "The IPv4 address the router shares with other customers (mode portset).",
		set: func(c *Config, v string) error {
			a, err := netip.ParseAddr(v)
			if err != nil || !a.Is4() {
				return fmt.Errorf("%q is not an IPv4 address", v)
			}
			c.PortSetAddr = a
			return nil
		},
		get: func(c *Config) []string {
			if !c.PortSetAddr.IsValid() {
				return nil
			}
			return []string{c.PortSetAddr.String()}
		},
	},
	{name: "portset_reserve", def: "25%",
		help: "Part of the port set kept for mappings (a percentage or a number of ports, always with the static forwards' ports); pcpgw gives the rest to the router's outbound connections with its own SNAT, before fw4's. 0: mappings may take any port of the set and outbound NAT is left to the main firewall.",
		set: func(c *Config, v string) error {
			sh, err := portset.ParseShare(v)
			if err != nil {
				return err
			}
			c.PortSetShare = sh
			return nil
		},
		get: func(c *Config) []string { return []string{c.PortSetShare.String()} },
	},
	strSetting("map_rules", "", "/tmp/<WAN device>.rules for a map-<name> WAN",
		"OpenWrt's map rules file of the WAN's map interface (written by map.sh), read for the shared address and the port set.",
		func(c *Config) *string { return &c.MapRules }, checkPath),
	strSetting("state_dir", "state-dir", "/var/lib/pcpgw", "Directory of the persisted mapping table.", func(c *Config) *string { return &c.StateDir }, checkPath),
	strSetting("socket", "socket", "/var/run/pcpgw.sock", "Control socket (mode 0600) used by pcpgw status and pcpgw list.",
		func(c *Config) *string { return &c.Socket }, checkPath),
	{name: "http_port", flag: "http-port", def: "5000",
		help: "TCP port of the UPnP HTTP server on the LAN addresses; 0: any free port.",
		set: func(c *Config, v string) error {
			n, err := parsePort(v, true)
			if err != nil {
				return err
			}
			if isPCPPort(n) {
				return fmt.Errorf("%d is the NAT-PMP/PCP port", n)
			}
			c.HTTPPort = n
			return nil
		},
		get: func(c *Config) []string { return []string{strconv.Itoa(c.HTTPPort)} },
	},
	boolSetting("upnp", "upnp", true, "Serve UPnP IGD (SSDP and HTTP) on the LAN.", func(c *Config) *bool { return &c.UPnP }),
	boolSetting("igdv1", "", true, "Offer the IGD:1 root device (many games and consoles only speak IGD:1).", func(c *Config) *bool { return &c.IGDv1 }),
	boolSetting("igdv2", "", true, "Offer the IGD:2 root device (with WANIPv6FirewallControl).", func(c *Config) *bool { return &c.IGDv2 }),
	boolSetting("natpmp", "natpmp", true, "Serve NAT-PMP (RFC 6886) on UDP 5351 on the LAN.", func(c *Config) *bool { return &c.NATPMP }),
	boolSetting("pcp", "pcp", true, "Serve PCP (RFC 6887, proxied per RFC 7648) on UDP 5351 on the LAN.", func(c *Config) *bool { return &c.PCP }),
	boolSetting("ipv6_pinholes", "ipv6-pinholes", true, "Let LAN hosts open IPv6 pinholes (IGD:2 firewall control, PCP MAP for IPv6).",
		func(c *Config) *bool { return &c.IPv6Pinholes }),
	boolSetting("ipv6_firewall", "", false, "Install the RFC 6092 IPv6 baseline (stateful inbound filter, RFC 4890 ICMPv6) in pcpgw's own table; leave off when the router's firewall does it.",
		func(c *Config) *bool { return &c.IPv6Firewall }),
	boolSetting("secure_mode", "secure-mode", true, "A LAN host may only map ports to itself; off, it may map for other LAN hosts too (UPnP NewInternalClient, PCP THIRD_PARTY).", func(c *Config) *bool { return &c.SecureMode }),
	{name: "quota", def: "128", help: "Mappings one LAN host may hold; 0: no limit.",
		set: func(c *Config, v string) error {
			n, err := strconv.ParseUint(v, 10, 31)
			if err != nil {
				return fmt.Errorf("%q is not a number of mappings", v)
			}
			c.Quota = int(n)
			return nil
		},
		get: func(c *Config) []string { return []string{strconv.Itoa(c.Quota)} },
	},
	secondsSetting("min_lifetime", "120", "Shortest lease granted to a LAN host, in seconds.", func(c *Config) *time.Duration { return &c.MinLifetime }),
	secondsSetting("max_lifetime", "86400", "Longest lease granted to a LAN host, in seconds.", func(c *Config) *time.Duration { return &c.MaxLifetime }),
	strSetting("lease_file", "", "none", "Also write the mappings to this file in miniupnpd's lease format (PROTO:eport:iaddr:iport:timestamp:desc) for LuCI's UPnP page.",
		func(c *Config) *string { return &c.LeaseFile }, checkPath),
	strSetting("dhcp_leases", "", "/tmp/dhcp.leases",
		"dnsmasq's lease file: when a LAN host's DHCP lease ends or is released, its mappings and pinholes are deleted (RFC 6970 §5.10); static forwards stay. '' turns it off (hosts with fixed addresses are never in the file and are left alone).",
		func(c *Config) *string { return &c.DHCPLeases }, func(v string) error {
			if v == "" {
				return nil
			}
			return checkPath(v)
		}),
	strSetting("nft_table", "", "pcpgw", "pcpgw's own nftables table (family inet); created at start, removed at exit. Never fw4's.",
		func(c *Config) *string { return &c.Table }, checkTable),
	{name: "log_level", flag: "log-level", def: "info", help: "debug, info, warn or error.",
		set: func(c *Config, v string) error {
			l, err := parseLevel(v)
			if err != nil {
				return err
			}
			c.LogLevel = l
			return nil
		},
		get: func(c *Config) []string { return []string{levelNames[c.LogLevel]} },
	},
	{name: "password_hash", def: "none: the page is read-only status",
		help: "Hash of the password of the subscriber's page (argon2id, PHC string format), written by pcpgw passwd. Never printed by check-config.",
		set: func(c *Config, v string) error {
			// The page reads the hash from the file itself (a new password
			// takes effect at once); here it is only checked.
			if !strings.HasPrefix(v, "$argon2id$") || strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r > '~' }) {
				return fmt.Errorf("not an argon2id hash as pcpgw passwd writes it")
			}
			return nil
		},
		get: func(c *Config) []string { return nil },
	},
	func() setting {
		s := boolSetting("syslog", "syslog", false, "Log to syslog instead of stderr.", func(c *Config) *bool { return &c.Syslog })
		s.noNeg = true
		return s
	}(),
}

// intSetter sets *field from a number from lo to hi.
func intSetter(lo, hi int, field func(*Config) *int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			return fmt.Errorf("%q is not a number from %d to %d", v, lo, hi)
		}
		*field(c) = n
		return nil
	}
}

var levelNames = map[slog.Level]string{
	slog.LevelDebug: "debug",
	slog.LevelInfo:  "info",
	slog.LevelWarn:  "warn",
	slog.LevelError: "error",
}

func parseLevel(v string) (slog.Level, error) {
	for l, n := range levelNames {
		if strings.EqualFold(v, n) {
			return l, nil
		}
	}
	if strings.EqualFold(v, "warning") {
		return slog.LevelWarn, nil
	}
	return 0, fmt.Errorf("%q is not one of debug, info, warn, error", v)
}

func checkUpstream(v string) error {
	if slices.Contains(Upstreams, v) {
		return nil
	}
	return fmt.Errorf("%q is not one of %s", v, strings.Join(Upstreams, ", "))
}

func checkMode(v string) error {
	for _, m := range Modes {
		if v == m {
			return nil
		}
	}
	return fmt.Errorf("%q is not one of %s", v, strings.Join(Modes, ", "))
}

// parseBool reads a boolean the way UCI configurations write them.
func parseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "1", "yes", "on", "true", "enabled":
		return true, nil
	case "0", "no", "off", "false", "disabled":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean (1/0, yes/no, on/off, true/false, enabled/disabled)", v)
}

func formatBool(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// parsePort reads a port number; zero only when allowZero.
func parsePort(v string, allowZero bool) (int, error) {
	n, err := strconv.ParseUint(v, 10, 16)
	if err != nil || (n == 0 && !allowZero) {
		return 0, fmt.Errorf("%q is not a port", v)
	}
	return int(n), nil
}

// isPCPPort reports the ports NAT-PMP and PCP own on the LAN side.
func isPCPPort(p int) bool { return p == 5350 || p == 5351 }

// ServerPort is the PCP server port used when a server is given without
// one (RFC 6887 §19.1).
const ServerPort = 5351

// ParseServer reads a PCP server as --pcp-server and pcp_server take it:
// ADDR, ADDR:PORT, [IPV6] or [IPV6]:PORT; a bare IPv6 address is taken
// whole. The port defaults to 5351. IPv4-mapped addresses are unmapped.
func ParseServer(v string) (netip.AddrPort, error) {
	var ap netip.AddrPort
	if a, err := netip.ParseAddr(v); err == nil {
		ap = netip.AddrPortFrom(a, ServerPort)
	} else if strings.HasPrefix(v, "[") && strings.HasSuffix(v, "]") {
		a, err := netip.ParseAddr(v[1 : len(v)-1])
		if err != nil || !a.Is6() {
			return ap, fmt.Errorf("%q is not an address or address:port", v)
		}
		ap = netip.AddrPortFrom(a, ServerPort)
	} else {
		host, port, ok := cutLast(v, ':')
		if !ok {
			return ap, fmt.Errorf("%q is not an address or address:port", v)
		}
		p, err := parsePort(port, false)
		if err != nil {
			return ap, fmt.Errorf("%q: port %q is not a port", v, port)
		}
		if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
			host = host[1 : len(host)-1]
		} else if strings.Contains(host, ":") {
			return ap, fmt.Errorf("%q: write an IPv6 address with a port as [address]:port", v)
		}
		a, err := netip.ParseAddr(host)
		if err != nil {
			return ap, fmt.Errorf("%q is not an address or address:port", v)
		}
		ap = netip.AddrPortFrom(a, uint16(p))
	}
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	return ap, checkServer(ap)
}

func cutLast(s string, sep byte) (before, after string, ok bool) {
	i := strings.LastIndexByte(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+1:], true
}

func checkServer(ap netip.AddrPort) error {
	a := ap.Addr()
	switch {
	case !a.IsValid():
		return fmt.Errorf("no address")
	case a.IsUnspecified() || a.IsMulticast():
		return fmt.Errorf("%s is not a unicast address", a)
	case ap.Port() == 0:
		return fmt.Errorf("%s: port 0", ap)
	}
	return nil
}

// checkIfname checks a Linux interface name (dev_valid_name).
func checkIfname(v string) error {
	switch {
	case v == "":
		return fmt.Errorf("empty interface name")
	case len(v) > 15:
		return fmt.Errorf("interface name %q is longer than 15 bytes", v)
	case v == "." || v == "..":
		return fmt.Errorf("%q is not an interface name", v)
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == '/' || c == ':' || c <= ' ' || c == 0x7f {
			return fmt.Errorf("%q is not an interface name", v)
		}
	}
	return nil
}

// checkPath checks a file or directory name.
func checkPath(v string) error {
	switch {
	case v == "":
		return fmt.Errorf("empty path")
	case strings.IndexByte(v, 0) >= 0:
		return fmt.Errorf("path holds a NUL byte")
	}
	return nil
}

// maxSocketPath is the longest unix socket path (sun_path less its NUL).
const maxSocketPath = 107

func checkLifetime(d time.Duration) error {
	if d < time.Second || d > (1<<32-1)*time.Second || d%time.Second != 0 {
		return fmt.Errorf("%v is not a whole number of seconds from 1 to 4294967295", d)
	}
	return nil
}

// checkTable checks an nftables table name that nft's command line takes
// unquoted, and refuses the tables of OpenWrt's and other firewalls: pcpgw
// deletes its table when it exits.
func checkTable(v string) error {
	if v == "" || len(v) > 64 {
		return fmt.Errorf("%q is not a table name (1-64 letters, digits, _)", v)
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
		if !letter && (i == 0 || c < '0' || c > '9') {
			return fmt.Errorf("%q is not a table name (a letter or _, then letters, digits, _)", v)
		}
	}
	switch strings.ToLower(v) {
	case "fw4", "firewalld", "filter", "nat", "mangle", "raw", "security":
		return fmt.Errorf("%q belongs to another firewall; pcpgw needs a table of its own", v)
	}
	return nil
}

// checkDNSName checks a host name (RFC 1123 labels; a final dot is
// allowed).
func checkDNSName(v string) error {
	n := strings.TrimSuffix(v, ".")
	if n == "" || len(n) > 253 {
		return fmt.Errorf("%q is not a DNS name", v)
	}
	for _, label := range strings.Split(n, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("%q is not a DNS name", v)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("%q is not a DNS name", v)
			}
		}
	}
	return nil
}
