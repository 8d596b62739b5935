package config

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/pcpgw/pcpgw/config/uci"
	"github.com/pcpgw/pcpgw/portset"
)

// Config is pcpgw's whole configuration, from the UCI file and the flags
// of `pcpgw run`. The comment of each field gives its UCI option, its flag
// and its default (the value Default sets); REFERENCE.md says the same for
// users.
type Config struct {
	// LAN lists the LAN interfaces served (list lan, --lan, repeatable).
	// Default none: Load fails with "no LAN interface".
	LAN []string
	// WAN is the interface toward the provider (option wan, --wan).
	// Required.
	WAN string
	// WAN6 is the IPv6 uplink (option wan6, --wan6). Default: WAN (Load
	// fills it in).
	WAN6 string
	// PCPServers are the provider's PCP servers (list pcp_server,
	// --pcp-server ADDR[:PORT], repeatable; port 5351 when left out; IPv6
	// as [addr]:port or a bare address). Default none: discovery (DHCP
	// option, then the default router).
	PCPServers []netip.AddrPort
	// PCPServersFile is the file the DHCP hooks write the provider's PCP
	// servers to, one per line (option pcp_servers_file). Default
	// /var/run/pcpgw/pcp-servers.
	PCPServersFile string
	// Mode is auto, local, nat444 or dslite (option mode, --mode).
	// Default auto.
	Mode string
	// Upstream is what pcpgw asks to open ports beyond the CPE: auto,
	// pcp, natpmp, upnp or none (option upstream, --upstream). Default
	// auto.
	Upstream string
	// StateDir holds the persisted mapping table (option state_dir,
	// --state-dir). Default /var/lib/pcpgw.
	StateDir string
	// Socket is the control socket `pcpgw status` and `list` use (option
	// socket, --socket). Default /var/run/pcpgw.sock.
	Socket string
	// HTTPPort is the UPnP HTTP port on the LAN addresses (option
	// http_port, --http-port). Default 5000; 0 lets the kernel choose.
	HTTPPort int
	// UPnP, NATPMP and PCP switch the LAN-side services (options upnp,
	// natpmp, pcp; --[no-]upnp, --[no-]natpmp, --[no-]pcp). Default on.
	UPnP, NATPMP, PCP bool
	// IGDv1 and IGDv2 offer each UPnP root device (options igdv1, igdv2).
	// Default on.
	IGDv1, IGDv2 bool
	// IPv6Pinholes lets LAN hosts open IPv6 pinholes (option
	// ipv6_pinholes, --[no-]ipv6-pinholes). Default on.
	IPv6Pinholes bool
	// IPv6Firewall installs the RFC 6092 baseline in pcpgw's own table
	// (option ipv6_firewall). Default off: the router's firewall does it.
	IPv6Firewall bool
	// SecureMode lets a LAN host map ports only to itself (option
	// secure_mode, --[no-]secure-mode). Default on.
	SecureMode bool
	// LogLevel is debug, info, warn or error (option log_level,
	// --log-level). Default info.
	LogLevel slog.Level
	// Syslog sends logs to syslog instead of stderr (option syslog,
	// --syslog). Default off.
	Syslog bool
	// Quota is the number of mappings one LAN host may hold (option
	// quota). Default 128; 0 means no limit.
	Quota int
	// MinLifetime and MaxLifetime bound the lease granted to LAN hosts
	// (options min_lifetime, max_lifetime, in seconds). Default 120 s and
	// 86400 s.
	MinLifetime, MaxLifetime time.Duration
	// LeaseFile, when set, is also written in miniupnpd's lease-file format
	// (PROTO:eport:iaddr:iport:timestamp:desc) for LuCI (option
	// lease_file). Default "": not written.
	LeaseFile string
	// DHCPLeases is dnsmasq's lease file, watched so that the mappings of
	// a host whose lease ended are deleted (option dhcp_leases). Default
	// /tmp/dhcp.leases; "": not watched.
	DHCPLeases string
	// AFTRName is the DS-Lite AFTR's name (option aftr_name; the DHCPv6
	// hook may set it). Default "".
	AFTRName string
	// WANResolvFile lists, in resolv.conf's format, the DNS resolvers
	// learned on the WAN; the AFTR name is looked up with them (option
	// wan_resolv_file). Default /tmp/resolv.conf.d/resolv.conf.auto
	// (OpenWrt's netifd writes it); missing: the system's resolvers.
	WANResolvFile string
	// NAT64Prefixes are the provider's NAT64 prefixes (Pref64::/n, RFC
	// 6052) that NAT64 mappings admit when the provider's PCP answer
	// names none (list nat64_prefix). Default none: RFC 7050 discovery,
	// else 64:ff9b::/96.
	NAT64Prefixes []netip.Prefix
	// PortSetRanges is a port set given as ranges (list portset_ranges).
	// Default none.
	PortSetRanges portset.Set
	// PortSetPSID, PortSetPSIDLen and PortSetOffset give a port set by
	// MAP's parameters (options portset_psid, portset_psid_len,
	// portset_offset; RFC 7597 §5.1). PortSetPSIDLen 0 means none (the
	// default); PortSetOffset defaults to 6, MAP's.
	PortSetPSID, PortSetPSIDLen, PortSetOffset int
	// PortSetAddr is the IPv4 address shared with other customers (option
	// portset_addr). Default: the map interface's, else the WAN's.
	PortSetAddr netip.Addr
	// PortSetShare is the part of the port set kept for mappings; pcpgw
	// gives the rest to the router's outbound flows (option
	// portset_reserve, "25%" or a number of ports; "0": all of it to
	// mappings, and outbound flows are left to the main firewall).
	// Default 25%.
	PortSetShare portset.Share
	// MapRules is OpenWrt's map rules file of the WAN's map interface
	// (option map_rules). Default: /tmp/<WAN>.rules when the WAN device
	// is a map interface's (map-<name>), as map.sh writes it.
	MapRules string
	// Table is pcpgw's own nftables table, family inet (option nft_table).
	// Default "pcpgw".
	Table string
	// PermRules are the perm_rule sections in file order; the first that
	// matches decides. Default (no perm_rule section): miniupnpd's
	// defaults, allow 1024-65535 0.0.0.0/0 1024-65535 then deny
	// 0-65535 0.0.0.0/0 0-65535.
	PermRules []PermRule
	// Forwards are the static port forwards (config forward sections).
	// Default none.
	Forwards []Forward
	// Enabled is read by the init script (option enabled). Default on.
	Enabled bool
	// File is the file the configuration came from, "" for flags only.
	File string
}

// Modes lists the valid values of Config.Mode.
var Modes = []string{"auto", "local", "nat444", "dslite", "portset"}

// Upstreams lists the valid values of Config.Upstream.
var Upstreams = []string{"auto", "pcp", "natpmp", "upnp", "none"}

// Default returns the configuration with every default set: what an empty
// file and no flags give, before validation (LAN and WAN are empty).
func Default() Config {
	return Config{
		PCPServersFile: "/var/run/pcpgw/pcp-servers",
		WANResolvFile:  "/tmp/resolv.conf.d/resolv.conf.auto",
		Mode:           "auto",
		Upstream:       "auto",
		DHCPLeases:     "/tmp/dhcp.leases",
		StateDir:       "/var/lib/pcpgw",
		Socket:         "/var/run/pcpgw.sock",
		HTTPPort:       5000,
		UPnP:           true,
		NATPMP:         true,
		PCP:            true,
		IGDv1:          true,
		IGDv2:          true,
		IPv6Pinholes:   true,
		SecureMode:     true,
		LogLevel:       slog.LevelInfo,
		Quota:          128,
		MinLifetime:    120 * time.Second,
		MaxLifetime:    86400 * time.Second,
		Table:          "pcpgw",
		PortSetOffset:  6,
		PortSetShare:   portset.Share{Percent: 25},
		PermRules:      DefaultPermRules(),
		Enabled:        true,
	}
}

// DefaultPermRules returns miniupnpd's default rules: allow ports
// 1024-65535 to any LAN host on ports 1024-65535, deny everything else.
func DefaultPermRules() []PermRule {
	any4 := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	return []PermRule{
		{Allow: true, ExtPorts: PortRange{1024, 65535}, IntAddr: any4, IntPorts: PortRange{1024, 65535}, Comment: "Allow high ports"},
		{Allow: false, ExtPorts: PortRange{0, 65535}, IntAddr: any4, IntPorts: PortRange{0, 65535}, Comment: "Default deny"},
	}
}

// Error is a configuration error. Error() gives "file:line: reason", or
// "file: reason" when no line applies, or the reason alone (naming the
// flag) when the value came from a flag.
type Error struct {
	File string
	Line int
	Msg  string
	// Err is the underlying error, if any (an *os.PathError, say).
	Err error
}

func (e *Error) Error() string {
	switch {
	case e.File != "" && e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	case e.File != "":
		return e.File + ": " + e.Msg
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// Load reads the UCI file at path ("" for none; a file named but missing
// is an error), applies the flags on top (a flag that was set wins; f may
// be nil), validates the result and returns it with the warnings (unknown
// sections and options, each "file:line: ..."). Every error is an *Error.
func Load(path string, f *Flags) (*Config, []string, error) {
	if path == "" {
		return load("", nil, f)
	}
	fh, err := os.Open(path)
	if err != nil {
		return nil, nil, &Error{File: path, Msg: errMsg(err), Err: err}
	}
	defer fh.Close()
	return load(path, fh, f)
}

// load is Load on an open file (r nil: no file).
func load(path string, r io.Reader, f *Flags) (*Config, []string, error) {
	c := Default()
	o := origins{}
	var warns []string
	if r != nil {
		c.File = path
		file, err := uci.Parse(path, r)
		if err != nil {
			var ue *uci.Error
			if errors.As(err, &ue) {
				return nil, nil, &Error{File: path, Line: ue.Line, Msg: ue.Msg, Err: err}
			}
			return nil, nil, &Error{File: path, Msg: err.Error(), Err: err}
		}
		if warns, err = c.apply(file, o); err != nil {
			return nil, nil, err
		}
	}
	if f != nil {
		if err := f.apply(&c, o); err != nil {
			return nil, nil, err
		}
	}
	if c.WAN6 == "" {
		c.WAN6 = c.WAN
	}
	if err := c.validate(o); err != nil {
		return nil, nil, err
	}
	return &c, warns, nil
}

// errMsg turns an os error into a short reason: the path is already in
// the Error.
func errMsg(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Op + ": " + pe.Err.Error()
	}
	return err.Error()
}

// origin says where a daemon option's value came from, for errors.
type origin struct {
	line  int    // line in the file, 0 if not from the file
	lines []int  // for a list from the file, the line of each item
	flag  string // flag name if a flag set it
}

// origins maps UCI option names to where their values came from; the
// pcpgw section's own line is under "".
type origins map[string]origin

// errorf makes an error about option name of c.
func (o origins) errorf(c *Config, name, format string, args ...any) error {
	return o.itemErrorf(c, name, -1, format, args...)
}

// itemErrorf makes an error about item i of list option name of c.
func (o origins) itemErrorf(c *Config, name string, i int, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	src := o[name]
	if src.flag != "" {
		return &Error{Msg: "--" + src.flag + ": " + msg}
	}
	line := src.line
	if i >= 0 && i < len(src.lines) {
		line = src.lines[i]
	}
	if line == 0 {
		line = o[""].line
	}
	return &Error{File: c.File, Line: line, Msg: "option " + name + ": " + msg}
}

// apply sets c from the sections of a parsed file.
func (c *Config) apply(file *uci.File, o origins) ([]string, error) {
	var warns []string
	warnf := func(line int, format string, args ...any) {
		warns = append(warns, fmt.Sprintf("%s:%d: ", file.Name, line)+fmt.Sprintf(format, args...))
	}
	var main *uci.Section
	var rules []PermRule
	for _, s := range file.Sections {
		switch s.Type {
		case "pcpgw":
			if main != nil {
				return nil, &Error{File: file.Name, Line: s.Line,
					Msg: fmt.Sprintf("a second pcpgw section (the first is at line %d): only one is allowed", main.Line)}
			}
			main = s
			o[""] = origin{line: s.Line}
			for _, opt := range s.Options {
				st := lookup(opt.Name)
				if st == nil {
					warnf(opt.Line(), "unknown option '%s' in section pcpgw", opt.Name)
					continue
				}
				lines, err := st.fromFile(c, file.Name, opt)
				if err != nil {
					return nil, err
				}
				o[opt.Name] = origin{line: opt.Line(), lines: lines}
			}
		case "perm_rule":
			r, err := parsePermRule(file.Name, s, warnf)
			if err != nil {
				return nil, err
			}
			rules = append(rules, r)
		case "forward":
			fw, err := parseForward(file.Name, s, warnf)
			if err != nil {
				return nil, err
			}
			c.Forwards = append(c.Forwards, fw)
		default:
			warnf(s.Line, "unknown section type '%s' (ignored)", s.Type)
		}
	}
	if rules != nil {
		c.PermRules = rules
	}
	return warns, nil
}

// fromFile sets the option from the file's values and returns the line
// of each value.
func (st *setting) fromFile(c *Config, file string, opt *uci.Option) ([]int, error) {
	vals, lines := opt.Values, opt.Lines
	if st.list {
		if !opt.List {
			vals = strings.Fields(opt.Values[0])
			lines = make([]int, len(vals))
			for i := range lines {
				lines[i] = opt.Line()
			}
		}
		st.clear(c)
	} else if opt.List {
		return nil, &Error{File: file, Line: opt.Line(), Msg: fmt.Sprintf("option %s: takes one value, not a list", st.name)}
	}
	for i, v := range vals {
		if err := st.set(c, v); err != nil {
			return nil, &Error{File: file, Line: lines[i], Msg: fmt.Sprintf("option %s: %v", st.name, err)}
		}
	}
	return lines, nil
}

// Validate checks a configuration made by hand (Load validates what it
// returns). Its errors name the file and the line of perm_rule and forward
// sections, and the file alone for the daemon's options.
func (c *Config) Validate() error {
	return c.validate(origins{})
}

func (c *Config) validate(o origins) error {
	if len(c.LAN) == 0 {
		return o.errorf(c, "lan", "no LAN interface (set --lan or list lan in the pcpgw section)")
	}
	if c.WAN == "" {
		return o.errorf(c, "wan", "no WAN interface (set --wan or option wan in the pcpgw section)")
	}
	for _, nv := range []struct{ name, v string }{{"wan", c.WAN}, {"wan6", c.WAN6}} {
		if err := checkIfname(nv.v); nv.v != "" && err != nil {
			return o.errorf(c, nv.name, "%v", err)
		}
	}
	for i, l := range c.LAN {
		if err := checkIfname(l); err != nil {
			return o.itemErrorf(c, "lan", i, "%v", err)
		}
		if slices.Contains(c.LAN[:i], l) {
			return o.itemErrorf(c, "lan", i, "interface %q listed twice", l)
		}
		if l == c.WAN || l == c.WAN6 {
			return o.itemErrorf(c, "lan", i, "interface %q is also the WAN interface: pcpgw never serves the WAN side", l)
		}
	}
	for i, s := range c.PCPServers {
		if err := checkServer(s); err != nil {
			return o.itemErrorf(c, "pcp_server", i, "%v", err)
		}
		if slices.Contains(c.PCPServers[:i], s) {
			return o.itemErrorf(c, "pcp_server", i, "%s listed twice", s)
		}
	}
	if !slices.Contains(Modes, c.Mode) {
		return o.errorf(c, "mode", "%q is not one of %s", c.Mode, strings.Join(Modes, ", "))
	}
	if !slices.Contains(Upstreams, c.Upstream) {
		return o.errorf(c, "upstream", "%q is not one of %s", c.Upstream, strings.Join(Upstreams, ", "))
	}
	for _, nv := range []struct{ name, v string }{{"pcp_servers_file", c.PCPServersFile}, {"state_dir", c.StateDir}, {"socket", c.Socket}, {"wan_resolv_file", c.WANResolvFile}} {
		if err := checkPath(nv.v); err != nil {
			return o.errorf(c, nv.name, "%v", err)
		}
	}
	if len(c.Socket) > maxSocketPath {
		return o.errorf(c, "socket", "%q is longer than a unix socket path may be (%d bytes)", c.Socket, maxSocketPath)
	}
	if c.HTTPPort < 0 || c.HTTPPort > 65535 {
		return o.errorf(c, "http_port", "%d is not a port", c.HTTPPort)
	}
	if isPCPPort(c.HTTPPort) {
		return o.errorf(c, "http_port", "%d is the NAT-PMP/PCP port", c.HTTPPort)
	}
	if c.UPnP && !c.IGDv1 && !c.IGDv2 {
		return o.errorf(c, "igdv2", "upnp is on but igdv1 and igdv2 are both off")
	}
	if _, ok := levelNames[c.LogLevel]; !ok {
		return o.errorf(c, "log_level", "%v is not one of debug, info, warn, error", c.LogLevel)
	}
	if c.Quota < 0 {
		return o.errorf(c, "quota", "%d is negative", c.Quota)
	}
	for _, nd := range []struct {
		name string
		d    time.Duration
	}{{"min_lifetime", c.MinLifetime}, {"max_lifetime", c.MaxLifetime}} {
		if err := checkLifetime(nd.d); err != nil {
			return o.errorf(c, nd.name, "%v", err)
		}
	}
	if c.MinLifetime > c.MaxLifetime {
		return o.errorf(c, "min_lifetime", "%d s is more than max_lifetime %d s", c.MinLifetime/time.Second, c.MaxLifetime/time.Second)
	}
	if c.LeaseFile != "" {
		if err := checkPath(c.LeaseFile); err != nil {
			return o.errorf(c, "lease_file", "%v", err)
		}
	}
	if c.AFTRName != "" {
		if err := checkDNSName(c.AFTRName); err != nil {
			return o.errorf(c, "aftr_name", "%v", err)
		}
	}
	if err := checkTable(c.Table); err != nil {
		return o.errorf(c, "nft_table", "%v", err)
	}
	set, err := c.PortSet()
	if err != nil {
		name := "portset_psid"
		if !c.PortSetRanges.Empty() {
			name = "portset_ranges"
		}
		return o.errorf(c, name, "%v", err)
	}
	if c.PortSetAddr.IsValid() && (!c.PortSetAddr.Is4() || c.PortSetAddr.IsUnspecified() || c.PortSetAddr.IsMulticast()) {
		return o.errorf(c, "portset_addr", "%s is not a unicast IPv4 address", c.PortSetAddr)
	}
	if c.MapRules != "" {
		if err := checkPath(c.MapRules); err != nil {
			return o.errorf(c, "map_rules", "%v", err)
		}
	}
	for _, r := range c.PermRules {
		if err := r.check(); err != nil {
			return &Error{File: c.File, Line: r.Line, Msg: "perm_rule: " + err.Error()}
		}
	}
	names := map[string]int{}
	type key struct {
		proto Proto
		port  uint16
	}
	used := map[key]int{}
	for i, fw := range c.Forwards {
		if err := fw.check(c.HTTPPort); err != nil {
			return &Error{File: c.File, Line: fw.Line, Msg: fmt.Sprintf("forward %q: %v", fw.Name, err)}
		}
		if j, dup := names[fw.Name]; dup && fw.Name != "" {
			return &Error{File: c.File, Line: fw.Line, Msg: fmt.Sprintf("forward %q: name already used at line %d", fw.Name, c.Forwards[j].Line)}
		}
		names[fw.Name] = i
		if !fw.Enabled {
			continue
		}
		if !set.Empty() && !set.Contains(fw.ExtPort) {
			return &Error{File: c.File, Line: fw.Line, Msg: fmt.Sprintf("forward %q: external port %d is outside the port set (%s): the provider forwards no other port to this router",
				fw.Name, fw.ExtPort, set.Summary(3))}
		}
		for _, p := range []Proto{ProtoTCP, ProtoUDP} {
			if !fw.Proto.Has(p) {
				continue
			}
			k := key{p, fw.ExtPort}
			if j, dup := used[k]; dup {
				return &Error{File: c.File, Line: fw.Line, Msg: fmt.Sprintf("forward %q: external port %s/%d already forwarded by %q",
					fw.Name, p, fw.ExtPort, c.Forwards[j].Name)}
			}
			used[k] = i
		}
	}
	return nil
}

// PortSet is the port set the options give (portset_ranges, or
// portset_psid with portset_psid_len and portset_offset); empty when they
// give none (portset mode then learns it from the map interface).
func (c *Config) PortSet() (portset.Set, error) {
	hasPSID := c.PortSetPSIDLen > 0
	switch {
	case hasPSID && !c.PortSetRanges.Empty():
		return portset.Set{}, fmt.Errorf("give the port set either as portset_ranges or as portset_psid and portset_psid_len, not both")
	case !c.PortSetRanges.Empty():
		return c.PortSetRanges, nil
	case !hasPSID:
		if c.PortSetPSID != 0 {
			return portset.Set{}, fmt.Errorf("portset_psid needs portset_psid_len")
		}
		return portset.Set{}, nil
	case c.PortSetPSID < 0 || c.PortSetPSIDLen > 16 || c.PortSetOffset < 0 || c.PortSetOffset > 15:
		return portset.Set{}, fmt.Errorf("PSID %d, length %d, offset %d: out of range", c.PortSetPSID, c.PortSetPSIDLen, c.PortSetOffset)
	}
	return portset.PSID{Offset: uint8(c.PortSetOffset), Len: uint8(c.PortSetPSIDLen), ID: uint16(c.PortSetPSID)}.Set()
}

// WriteUCI writes the configuration in UCI syntax, every option spelled
// out: what `pcpgw check-config` prints. Loading the output gives back an
// equal Config, apart from File and the Line fields.
func (c *Config) WriteUCI(w io.Writer) error {
	main := &uci.Section{Type: "pcpgw", Name: "main"}
	for i := range settings {
		st := &settings[i]
		vals := st.get(c)
		if len(vals) == 0 || (!st.list && vals[0] == "") {
			continue
		}
		main.Options = append(main.Options, &uci.Option{Name: st.name, List: st.list, Values: vals})
	}
	f := &uci.File{Sections: []*uci.Section{main}}
	for _, r := range c.PermRules {
		f.Sections = append(f.Sections, r.section())
	}
	for _, fw := range c.Forwards {
		f.Sections = append(f.Sections, fw.section())
	}
	return f.Format(w)
}
