package config

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/pcpgw/pcpgw/portset"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata and REFERENCE.md")

// ignoreOrigin compares configurations without where they came from.
var ignoreOrigin = cmp.Options{
	cmpopts.IgnoreFields(Config{}, "File"),
	cmpopts.IgnoreFields(PermRule{}, "Line"),
	cmpopts.IgnoreFields(Forward{}, "Line"),
	cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{}, netip.AddrPort{}),
}

var cmpNetip = cmp.Options{cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{}, netip.AddrPort{}),
	cmp.Comparer(func(a, b portset.Set) bool { return a.Equal(b) })}

// writeFile writes src to a file named name in a temporary directory.
func writeFile(t *testing.T, name, src string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// flags parses args as `pcpgw run` flags.
func flags(t *testing.T, args ...string) *Flags {
	t.Helper()
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	return f
}

func TestDefault(t *testing.T) {
	c := Default()
	want := Config{
		PCPServersFile: "/var/run/pcpgw/pcp-servers", Mode: "auto", Upstream: "auto", DHCPLeases: "/tmp/dhcp.leases", StateDir: "/var/lib/pcpgw",
		Socket: "/var/run/pcpgw.sock", HTTPPort: 5000, UPnP: true, NATPMP: true, PCP: true,
		IGDv1: true, IGDv2: true, IPv6Pinholes: true, IPv6Firewall: false, SecureMode: true,
		LogLevel: slog.LevelInfo, Quota: 128, MinLifetime: 120 * time.Second, MaxLifetime: 86400 * time.Second,
		Table: "pcpgw", Enabled: true, PortSetOffset: 6, PortSetShare: portset.Share{Percent: 25},
		WANResolvFile: "/tmp/resolv.conf.d/resolv.conf.auto",
		PermRules: []PermRule{
			{Allow: true, ExtPorts: PortRange{1024, 65535}, IntAddr: netip.MustParsePrefix("0.0.0.0/0"), IntPorts: PortRange{1024, 65535}, Comment: "Allow high ports"},
			{ExtPorts: PortRange{0, 65535}, IntAddr: netip.MustParsePrefix("0.0.0.0/0"), IntPorts: PortRange{0, 65535}, Comment: "Default deny"},
		},
	}
	if diff := cmp.Diff(want, c, cmpNetip); diff != "" {
		t.Errorf("Default() (-want +got):\n%s", diff)
	}
	if err := c.Validate(); err == nil || err.Error() != "option lan: no LAN interface (set --lan or list lan in the pcpgw section)" {
		t.Errorf("Default().Validate() = %v, want the no-LAN error", err)
	}
}

// TestLoadFull loads a file that sets every option, checks each field,
// prints it with WriteUCI against a golden file, and loads that output
// again to an equal Config.
func TestLoadFull(t *testing.T) {
	c, warns, err := Load("testdata/full.conf", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 0 {
		t.Errorf("warnings: %q", warns)
	}
	want := &Config{
		Enabled: false, LAN: []string{"br-lan", "br-guest"}, WAN: "eth1", WAN6: "pppoe-wan",
		PCPServers: []netip.AddrPort{
			netip.MustParseAddrPort("192.0.2.1:5351"), netip.MustParseAddrPort("[2001:db8::1]:5352"),
			netip.MustParseAddrPort("[2001:db8::2]:5351")},
		PCPServersFile: "/tmp/pcpgw/servers", Mode: "nat444", Upstream: "auto", DHCPLeases: "/tmp/dhcp.leases", AFTRName: "aftr.example.net",
		StateDir: "/srv/pcpgw", Socket: "/run/pcpgw/ctl.sock", HTTPPort: 5555,
		UPnP: false, IGDv1: false, IGDv2: true, NATPMP: false, PCP: true, IPv6Pinholes: false,
		IPv6Firewall: true, SecureMode: false, Quota: 16, MinLifetime: time.Minute, MaxLifetime: time.Hour,
		LeaseFile: "/var/run/miniupnpd.leases", Table: "pcpgw_test", LogLevel: slog.LevelDebug, Syslog: true,
		WANResolvFile: "/tmp/resolv.wan", NAT64Prefixes: []netip.Prefix{netip.MustParsePrefix("2001:db8:64::/96")},
		PortSetRanges: portset.New(portset.Range{Lo: 8000, Hi: 8999}, portset.Range{Lo: 27000, Hi: 27099}),
		PortSetOffset: 6, PortSetAddr: netip.MustParseAddr("203.0.113.9"), PortSetShare: portset.Share{Ports: 64},
		MapRules: "/tmp/map-wanmap.rules",
		PermRules: []PermRule{
			{Allow: true, ExtPorts: PortRange{8000, 8999}, IntAddr: netip.MustParsePrefix("192.0.2.0/25"), IntPorts: PortRange{80, 80}, Comment: "Web servers", Line: 41},
			{ExtPorts: PortRange{0, 65535}, IntAddr: netip.MustParsePrefix("0.0.0.0/0"), IntPorts: PortRange{0, 65535}, Line: 48},
		},
		Forwards: []Forward{
			{Name: "nas", Proto: ProtoTCP, ExtPort: 8080, IntAddr: netip.MustParseAddr("192.0.2.10"), IntPort: 80, Enabled: true, Description: "NAS web page", Line: 51},
			{Name: "game server", Proto: ProtoBoth, ExtPort: 27015, IntAddr: netip.MustParseAddr("2001:db8:1::10"), IntPort: 27015, Line: 58},
		},
		File: "testdata/full.conf",
	}
	if diff := cmp.Diff(want, c, cmpNetip); diff != "" {
		t.Errorf("Load (-want +got):\n%s", diff)
	}
	var out bytes.Buffer
	if err := c.WriteUCI(&out); err != nil {
		t.Fatal(err)
	}
	golden(t, "testdata/full.golden", out.Bytes())
	checkReload(t, c, out.Bytes())
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s (-want +got):\n%s", path, diff)
	}
}

// checkReload loads the output of WriteUCI and compares it with c.
func checkReload(t *testing.T, c *Config, out []byte) {
	t.Helper()
	c2, warns, err := load("written", bytes.NewReader(out), nil)
	if err != nil {
		t.Fatalf("loading WriteUCI output: %v\n%s", err, out)
	}
	if len(warns) != 0 {
		t.Errorf("warnings on WriteUCI output: %q", warns)
	}
	if diff := cmp.Diff(c, c2, ignoreOrigin); diff != "" {
		t.Errorf("WriteUCI -> Load changed the config (-first +second):\n%s", diff)
	}
}

// TestLoadUpnpd loads OpenWrt's default /etc/config/upnpd: its perm_rules
// are miniupnpd's defaults, the upnpd section is reported as unknown.
func TestLoadUpnpd(t *testing.T) {
	c, warns, err := Load("uci/testdata/upnpd.conf", flags(t, "--lan", "br-lan", "--wan", "eth1"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(DefaultPermRules(), c.PermRules, ignoreOrigin); diff != "" {
		t.Errorf("perm rules (-want +got):\n%s", diff)
	}
	if c.PermRules[0].Line != 20 || c.PermRules[1].Line != 27 {
		t.Errorf("perm rule lines = %d, %d; want 20, 27", c.PermRules[0].Line, c.PermRules[1].Line)
	}
	wantWarns := []string{"uci/testdata/upnpd.conf:5: unknown section type 'upnpd' (ignored)"}
	if diff := cmp.Diff(wantWarns, warns); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
	if c.WAN6 != "eth1" {
		t.Errorf("WAN6 = %q, want the WAN interface", c.WAN6)
	}
}

func TestLoadDefaultsOnly(t *testing.T) {
	c, warns, err := Load("", flags(t, "--lan=br-lan", "--wan=eth0"))
	if err != nil || len(warns) != 0 {
		t.Fatalf("Load = %v, %q", err, warns)
	}
	want := Default()
	want.LAN, want.WAN, want.WAN6 = []string{"br-lan"}, "eth0", "eth0"
	if diff := cmp.Diff(&want, c, cmpNetip); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	var out bytes.Buffer
	if err := c.WriteUCI(&out); err != nil {
		t.Fatal(err)
	}
	golden(t, "testdata/defaults.golden", out.Bytes())
	checkReload(t, c, out.Bytes())
}

func TestWarnings(t *testing.T) {
	src := `config pcpgw 'main'
	list lan 'br-lan'
	option wan 'eth1'
	option colour 'blue'
config perm_rule
	option action 'allow'
	option extra '1'
config forward
	option ext_port '81'
	option int_addr '192.0.2.7'
	option nonsense 'x'
config zone
`
	p := writeFile(t, "pcpgw", src)
	_, warns, err := Load(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		p + ":4: unknown option 'colour' in section pcpgw",
		p + ":7: unknown option 'extra' in section perm_rule",
		p + ":11: unknown option 'nonsense' in section forward",
		p + ":12: unknown section type 'zone' (ignored)",
	}
	if diff := cmp.Diff(want, warns); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

func TestLoadErrors(t *testing.T) {
	const head = "config pcpgw 'main'\n\tlist lan 'br-lan'\n\toption wan 'eth1'\n"
	tests := []struct {
		name string
		src  string
		want string // after "FILE:"
	}{
		{"http port range", head + "\toption http_port '70000'\n", `4: option http_port: "70000" is not a port`},
		{"http port pcp", head + "\toption http_port '5351'\n", `4: option http_port: 5351 is the NAT-PMP/PCP port`},
		{"syntax", head + "\toption wan 'eth1\n", `4: EOF with unterminated ' (opened here)`},
		{"no lan", "config pcpgw 'main'\n\toption wan 'eth1'\n", `1: option lan: no LAN interface (set --lan or list lan in the pcpgw section)`},
		{"no lan no section", "config perm_rule\n", ` option lan: no LAN interface (set --lan or list lan in the pcpgw section)`},
		{"no wan", "config pcpgw\n\tlist lan br-lan\n", `1: option wan: no WAN interface (set --wan or option wan in the pcpgw section)`},
		{"two sections", head + "config pcpgw 'other'\n", `4: a second pcpgw section (the first is at line 1): only one is allowed`},
		{"bool", head + "\toption upnp 'maybe'\n", `4: option upnp: "maybe" is not a boolean (1/0, yes/no, on/off, true/false, enabled/disabled)`},
		{"mode", head + "\toption mode 'nat64'\n", `4: option mode: "nat64" is not one of auto, local, nat444, dslite, portset`},
		{"list for single", head + "\tlist wan 'eth2'\n", `3: option wan: takes one value, not a list`},
		{"bad lan item", "config pcpgw\n\tlist lan 'br-lan'\n\tlist lan 'a/b'\n", `3: option lan: "a/b" is not an interface name`},
		{"long ifname", head + "\toption wan6 'abcdefghijklmnop'\n", `4: option wan6: interface name "abcdefghijklmnop" is longer than 15 bytes`},
		{"lan is wan", "config pcpgw\n\toption lan 'br-lan eth1'\n\toption wan eth1\n", `2: option lan: interface "eth1" is also the WAN interface: pcpgw never serves the WAN side`},
		{"lan twice", "config pcpgw\n\toption lan 'br-lan br-lan'\n\toption wan eth1\n", `2: option lan: interface "br-lan" listed twice`},
		{"pcp server", head + "\tlist pcp_server '192.0.2.1:0'\n", `4: option pcp_server: "192.0.2.1:0": port "0" is not a port`},
		{"pcp server twice", head + "\tlist pcp_server '192.0.2.1'\n\tlist pcp_server '192.0.2.1:5351'\n", `5: option pcp_server: 192.0.2.1:5351 listed twice`},
		{"pcp server list item line", head + "\tlist pcp_server '192.0.2.1'\n\tlist pcp_server 'x'\n", `5: option pcp_server: "x" is not an address or address:port`},
		{"quota", head + "\toption quota '-1'\n", `4: option quota: "-1" is not a number of mappings`},
		{"lifetime", head + "\toption min_lifetime '0'\n", `4: option min_lifetime: 0s is not a whole number of seconds from 1 to 4294967295`},
		{"lifetime text", head + "\toption max_lifetime '1h'\n", `4: option max_lifetime: "1h" is not a number of seconds (1-4294967295)`},
		{"min over max", head + "\toption min_lifetime '600'\n\toption max_lifetime '300'\n", `4: option min_lifetime: 600 s is more than max_lifetime 300 s`},
		{"level", head + "\toption log_level 'loud'\n", `4: option log_level: "loud" is not one of debug, info, warn, error`},
		{"table fw4", head + "\toption nft_table 'fw4'\n", `4: option nft_table: "fw4" belongs to another firewall; pcpgw needs a table of its own`},
		{"table chars", head + "\toption nft_table '1x'\n", `4: option nft_table: "1x" is not a table name (a letter or _, then letters, digits, _)`},
		{"aftr", head + "\toption aftr_name 'a..b'\n", `4: option aftr_name: "a..b" is not a DNS name`},
		{"upstream", head + "\toption upstream 'stun'\n", `4: option upstream: "stun" is not one of auto, pcp, natpmp, upnp, none`},
		{"igd both off", head + "\toption igdv1 0\n\toption igdv2 0\n", `5: option igdv2: upnp is on but igdv1 and igdv2 are both off`},
		{"socket long", head + "\toption socket '/" + strings.Repeat("s", 120) + "'\n", `4: option socket: "/` + strings.Repeat("s", 120) + `" is longer than a unix socket path may be (107 bytes)`},
		{"perm action", head + "config perm_rule\n\toption action 'maybe'\n", `5: perm_rule: option action: "maybe" is neither allow nor deny`},
		{"perm ports", head + "config perm_rule\n\toption ext_ports '10-5'\n", `5: perm_rule: option ext_ports: port range "10-5" runs backwards`},
		{"perm ports text", head + "config perm_rule\n\toption int_ports 'high'\n", `5: perm_rule: option int_ports: "high" is not a port or port range (x, x-y)`},
		{"perm addr", head + "config perm_rule\n\toption int_addr '192.0.2.0/255.0.255.0'\n", `5: perm_rule: option int_addr: "192.0.2.0/255.0.255.0": mask 255.0.255.0 is not contiguous`},
		{"perm addr text", head + "config perm_rule\n\toption int_addr 'lan'\n", `5: perm_rule: option int_addr: "lan" is not an address or prefix`},
		{"perm list", head + "config perm_rule\n\tlist comment 'a'\n", `5: perm_rule: option comment: takes one value, not a list`},
		{"forward http port", head + "config forward 'web'\n\toption ext_port '5000'\n\toption int_addr '192.0.2.5'\n", `4: forward "web": ext_port 5000 is pcpgw's UPnP HTTP port`},
		{"forward pcp port", head + "config forward 'x'\n\toption ext_port '5350'\n\toption int_addr '192.0.2.5'\n", `4: forward "x": ext_port 5350 is the NAT-PMP/PCP port`},
		{"forward no ext", head + "config forward 'x'\n\toption int_addr '192.0.2.5'\n", `4: forward: option ext_port is missing`},
		{"forward no addr", head + "config forward 'x'\n\toption ext_port '80'\n", `4: forward: option int_addr is missing`},
		{"forward bad port", head + "config forward 'x'\n\toption ext_port '0'\n", `5: forward: option ext_port: "0" is not a port`},
		{"forward bad int port", head + "config forward 'x'\n\toption ext_port '80'\n\toption int_port 'http'\n", `6: forward: option int_port: "http" is not a port`},
		{"forward bad addr", head + "config forward 'x'\n\toption ext_port '80'\n\toption int_addr '192.0.2'\n", `6: forward: option int_addr: "192.0.2" is not an address`},
		{"forward multicast", head + "config forward 'x'\n\toption ext_port '80'\n\toption int_addr '224.0.0.1'\n", `4: forward "x": int_addr 224.0.0.1 is not a LAN host's address`},
		{"forward proto", head + "config forward 'x'\n\toption proto 'sctp'\n", `5: forward: option proto: "sctp" is not tcp, udp or both`},
		{"forward enabled", head + "config forward 'x'\n\toption ext_port '80'\n\toption int_addr '192.0.2.5'\n\toption enabled 'sometimes'\n", `7: forward: option enabled: "sometimes" is not a boolean (1/0, yes/no, on/off, true/false, enabled/disabled)`},
		{"forward name list", head + "config forward\n\tlist name 'a'\n", `5: forward: option name: takes one value, not a list`},
		{"forward dup port", head + "config forward 'a'\n\toption proto 'tcp'\n\toption ext_port '80'\n\toption int_addr '192.0.2.5'\n" +
			"config forward 'b'\n\toption proto 'udp'\n\toption ext_port '80'\n\toption int_addr '192.0.2.6'\n" +
			"config forward 'c'\n\toption ext_port '80'\n\toption int_addr '192.0.2.7'\n",
			`12: forward "c": external port tcp/80 already forwarded by "a"`},
		{"nat64 prefix", head + "\tlist nat64_prefix '2001:db8:64::/80'\n", `4: option nat64_prefix: "2001:db8:64::/80" is not an IPv6 prefix of length 32, 40, 48, 56, 64 or 96`},
		{"portset psid without length", head + "\toption portset_psid '3'\n", `4: option portset_psid: portset_psid needs portset_psid_len`},
		{"portset psid too big", head + "\toption portset_psid '300'\n\toption portset_psid_len '8'\n", `4: option portset_psid: portset: PSID 300 does not fit in 8 bits`},
		{"portset psid over 16 bits", head + "\toption portset_psid '1'\n\toption portset_psid_len '12'\n\toption portset_offset '6'\n", `4: option portset_psid: portset: PSID offset 6 and length 12 exceed 16 bits`},
		{"portset both", head + "\toption portset_psid '1'\n\toption portset_psid_len '8'\n\tlist portset_ranges '4112-4127'\n", `6: option portset_ranges: give the port set either as portset_ranges or as portset_psid and portset_psid_len, not both`},
		{"portset ranges", head + "\tlist portset_ranges '4127-4112'\n", `4: option portset_ranges: portset: not a list of ports and ranges: "4127-4112": the range ends before it starts`},
		{"portset reserve", head + "\toption portset_reserve '100%'\n", `4: option portset_reserve: "100%" is not a percentage from 0% to 99%`},
		{"portset addr", head + "\toption portset_addr '2001:db8::1'\n", `4: option portset_addr: "2001:db8::1" is not an IPv4 address`},
		// A static forward outside the port set is refused where it is.
		{"forward outside port set", head + "\toption portset_psid '1'\n\toption portset_psid_len '8'\n\toption portset_offset '4'\n" +
			"config forward 'in'\n\toption ext_port '4112'\n\toption int_addr '192.0.2.5'\n" +
			"config forward 'out'\n\toption ext_port '8080'\n\toption int_addr '192.0.2.5'\n",
			`10: forward "out": external port 8080 is outside the port set (4112-4127, 8208-8223, 12304-12319, ...): the provider forwards no other port to this router`},
		{"forward dup name", head + "config forward\n\toption name 'a'\n\toption ext_port '80'\n\toption int_addr '192.0.2.5'\n" +
			"config forward\n\toption name 'a'\n\toption ext_port '81'\n\toption int_addr '192.0.2.5'\n",
			`8: forward "a": name already used at line 4`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeFile(t, "pcpgw", tt.src)
			c, _, err := Load(p, nil)
			if err == nil {
				t.Fatalf("Load = %+v, want error %q", c, tt.want)
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %T %v is not a *config.Error", err, err)
			}
			want := p + ":" + tt.want
			if err.Error() != want {
				t.Errorf("error:\n got %q\nwant %q", err, want)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "nope")
	_, _, err := Load(p, nil)
	var ce *Error
	if !errors.As(err, &ce) || ce.File != p || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load(missing) = %v, want an *Error wrapping fs.ErrNotExist", err)
	}
	if got, want := err.Error(), p+": open: no such file or directory"; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
	_, _, err = Load(t.TempDir(), nil)
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("Load(directory) = %v", err)
	}
}

func TestFlagsOverFile(t *testing.T) {
	f := flags(t, "--lan", "eth9", "--lan", "eth10", "--wan6", "wan6x", "--pcp-server", "198.51.100.1:6000",
		"--pcp-server", "[2001:db8::9]", "--mode", "dslite", "--state-dir", "/s", "--socket", "/x.sock",
		"--http-port", "0", "--upnp", "--no-natpmp", "--pcp=false", "--no-ipv6-pinholes=false",
		"--secure-mode", "--no-secure-mode", "--log-level", "WARN", "--syslog")
	c, _, err := Load("testdata/full.conf", f)
	if err != nil {
		t.Fatal(err)
	}
	got := struct {
		LAN                                      []string
		WAN, WAN6, Mode, StateDir, Socket        string
		PCPServers                               []netip.AddrPort
		HTTPPort                                 int
		UPnP, NATPMP, PCP, Pinholes, Secure, Log bool
		Level                                    slog.Level
		Quota                                    int
	}{c.LAN, c.WAN, c.WAN6, c.Mode, c.StateDir, c.Socket, c.PCPServers, c.HTTPPort,
		c.UPnP, c.NATPMP, c.PCP, c.IPv6Pinholes, c.SecureMode, c.Syslog, c.LogLevel, c.Quota}
	want := got
	want.LAN = []string{"eth9", "eth10"}
	want.WAN, want.WAN6, want.Mode, want.StateDir, want.Socket = "eth1", "wan6x", "dslite", "/s", "/x.sock"
	want.PCPServers = []netip.AddrPort{netip.MustParseAddrPort("198.51.100.1:6000"), netip.MustParseAddrPort("[2001:db8::9]:5351")}
	want.HTTPPort = 0
	want.UPnP, want.NATPMP, want.PCP, want.Pinholes, want.Secure, want.Log = true, false, false, true, false, true
	want.Level, want.Quota = slog.LevelWarn, 16
	if diff := cmp.Diff(want, got, cmpNetip); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for name, set := range map[string]bool{"lan": true, "upnp": true, "no-natpmp": true, "natpmp": true, "wan": false, "quota": false} {
		if f.IsSet(name) != set {
			t.Errorf("IsSet(%q) = %v, want %v", name, !set, set)
		}
	}
	if (*Flags)(nil).IsSet("lan") {
		t.Errorf("nil Flags reports a flag set")
	}
}

func TestFlagErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--http-port", "70000"}, `invalid value "70000" for flag -http-port: "70000" is not a port`},
		{[]string{"--http-port", "5350"}, `invalid value "5350" for flag -http-port: 5350 is the NAT-PMP/PCP port`},
		{[]string{"--mode", "x"}, `invalid value "x" for flag -mode: "x" is not one of auto, local, nat444, dslite, portset`},
		{[]string{"--upnp=perhaps"}, `invalid boolean value "perhaps" for -upnp: "perhaps" is not a boolean (1/0, yes/no, on/off, true/false, enabled/disabled)`},
		{[]string{"--pcp-server", "2001:db8::1:99"}, ``},
		{[]string{"--pcp-server", "host.example:5351"}, `invalid value "host.example:5351" for flag -pcp-server: "host.example:5351" is not an address or address:port`},
		{[]string{"--lan", ""}, `invalid value "" for flag -lan: empty interface name`},
	}
	for _, tt := range tests {
		fs := flag.NewFlagSet("run", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		RegisterFlags(fs)
		err := fs.Parse(tt.args)
		if tt.want == "" {
			if err != nil {
				t.Errorf("Parse(%q) = %v, want success", tt.args, err)
			}
			continue
		}
		if err == nil || err.Error() != tt.want {
			t.Errorf("Parse(%q) error:\n got %v\nwant %s", tt.args, err, tt.want)
		}
	}
	// A flag value is checked again against the rest at Load, and named.
	_, _, err := Load("", flags(t, "--lan", "eth0", "--wan", "eth0"))
	if err == nil || err.Error() != `--lan: interface "eth0" is also the WAN interface: pcpgw never serves the WAN side` {
		t.Errorf("Load(lan = wan) = %v", err)
	}
	_, _, err = Load("", flags(t, "--wan", "eth0"))
	if err == nil || err.Error() != `option lan: no LAN interface (set --lan or list lan in the pcpgw section)` {
		t.Errorf("Load(no lan) = %v", err)
	}
}

func TestFlagUsage(t *testing.T) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var out bytes.Buffer
	fs.SetOutput(&out)
	RegisterFlags(fs)
	fs.PrintDefaults()
	for _, want := range []string{"-lan IFNAME", "-no-upnp", "-http-port PORT", "-pcp-server ADDR[:PORT]", "default 5000", "-syslog", "repeatable"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("usage lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "-no-syslog") {
		t.Errorf("usage has -no-syslog")
	}
}

func TestParseServer(t *testing.T) {
	tests := []struct {
		in   string
		want string // "" for an error
	}{
		{"192.0.2.1", "192.0.2.1:5351"},
		{"192.0.2.1:1", "192.0.2.1:1"},
		{"2001:db8::1", "[2001:db8::1]:5351"},
		{"[2001:db8::1]", "[2001:db8::1]:5351"},
		{"[2001:db8::1]:65535", "[2001:db8::1]:65535"},
		{"::ffff:192.0.2.1", "192.0.2.1:5351"},
		{"[::ffff:192.0.2.1]:7", "192.0.2.1:7"},
		{"fe80::1%eth0", "[fe80::1%eth0]:5351"},
		{"0.0.0.0", ""},
		{"224.0.0.1", ""},
		{"[::]:5351", ""},
		{"[192.0.2.1]", ""},
		{"192.0.2.1:65536", ""},
		{"192.0.2.1:", ""},
		{"[2001:db8::1]x", ""},
		{"", ""},
		{"example.net", ""},
	}
	for _, tt := range tests {
		got, err := ParseServer(tt.in)
		switch {
		case tt.want == "" && err == nil:
			t.Errorf("ParseServer(%q) = %v, want an error", tt.in, got)
		case tt.want != "" && err != nil:
			t.Errorf("ParseServer(%q): %v", tt.in, err)
		case tt.want != "" && got.String() != tt.want:
			t.Errorf("ParseServer(%q) = %v, want %s", tt.in, got, tt.want)
		}
	}
}

func TestPermRuleMatch(t *testing.T) {
	r := PermRule{Allow: true, ExtPorts: PortRange{1024, 2048}, IntAddr: netip.MustParsePrefix("192.0.2.0/25"), IntPorts: PortRange{80, 80}}
	tests := []struct {
		ext  uint16
		addr string
		in   uint16
		want bool
	}{
		{1024, "192.0.2.1", 80, true},
		{2048, "192.0.2.127", 80, true},
		{1023, "192.0.2.1", 80, false},
		{2049, "192.0.2.1", 80, false},
		{1500, "192.0.2.128", 80, false},
		{1500, "192.0.2.1", 81, false},
		{1500, "::ffff:192.0.2.1", 80, true},
		{1500, "2001:db8::1", 80, false},
	}
	for _, tt := range tests {
		if got := r.Match(tt.ext, netip.MustParseAddr(tt.addr), tt.in); got != tt.want {
			t.Errorf("Match(%d, %s, %d) = %v, want %v", tt.ext, tt.addr, tt.in, got, tt.want)
		}
	}
	// miniupnpd's defaults: the first match decides.
	decide := func(ext uint16, addr string, in uint16) bool {
		return Permitted(DefaultPermRules(), ext, netip.MustParseAddr(addr), in)
	}
	if !decide(8080, "192.168.1.10", 8080) || decide(80, "192.168.1.10", 8080) || decide(8080, "192.168.1.10", 22) {
		t.Errorf("default rules decide wrongly")
	}
	// No rule matches: allowed, as miniupnpd's "accept by default".
	if !decide(80, "2001:db8::1", 80) || !Permitted(nil, 1, netip.MustParseAddr("192.0.2.1"), 1) {
		t.Errorf("a request no rule matches is not allowed")
	}
	// First match wins even when a later rule would allow.
	rules := []PermRule{{ExtPorts: PortRange{80, 80}, IntAddr: netip.MustParsePrefix("0.0.0.0/0"), IntPorts: PortRange{0, 65535}},
		{Allow: true, ExtPorts: PortRange{0, 65535}, IntAddr: netip.MustParsePrefix("0.0.0.0/0"), IntPorts: PortRange{0, 65535}}}
	if Permitted(rules, 80, netip.MustParseAddr("192.0.2.1"), 80) || !Permitted(rules, 81, netip.MustParseAddr("192.0.2.1"), 80) {
		t.Errorf("first match does not win")
	}
	v6 := PermRule{ExtPorts: PortRange{0, 65535}, IntAddr: netip.MustParsePrefix("2001:db8::/32"), IntPorts: PortRange{0, 65535}}
	if !v6.Match(1, netip.MustParseAddr("2001:db8::1%br-lan"), 1) {
		t.Errorf("zoned IPv6 address does not match its prefix")
	}
}

func TestParsePrefix(t *testing.T) {
	tests := []struct{ in, want string }{
		{"192.0.2.7", "192.0.2.7/32"},
		{"192.0.2.7/24", "192.0.2.0/24"},
		{"192.0.2.7/255.255.255.0", "192.0.2.0/24"},
		{"10.0.0.0/0.0.0.0", "0.0.0.0/0"},
		{"2001:db8::1", "2001:db8::1/128"},
		{"2001:db8::1/32", "2001:db8::/32"},
		{"::ffff:192.0.2.7", "192.0.2.7/32"},
		{"::ffff:192.0.2.0/120", "192.0.2.0/24"},
		{"::ffff:0.0.0.0/64", ""},
		{"192.0.2.0/255.0.255.0", ""},
		{"192.0.2.0/33", ""},
		{"fe80::1%eth0", ""},
		{"lan", ""},
	}
	for _, tt := range tests {
		got, err := ParsePrefix(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("ParsePrefix(%q) = %v, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got.String() != tt.want {
			t.Errorf("ParsePrefix(%q) = %v, %v; want %s", tt.in, got, err, tt.want)
		}
	}
}

func TestPortRangeAndProto(t *testing.T) {
	for in, want := range map[string]PortRange{"80": {80, 80}, "1-2": {1, 2}, "1:2": {1, 2}, "0-65535": {0, 65535}, " 5 - 6 ": {5, 6}} {
		if got, err := ParsePortRange(in); err != nil || got != want {
			t.Errorf("ParsePortRange(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "a", "1-", "65536", "2-1", "1-2-3"} {
		if got, err := ParsePortRange(in); err == nil {
			t.Errorf("ParsePortRange(%q) = %v, want an error", in, got)
		}
	}
	if s := (PortRange{7, 7}).String() + " " + (PortRange{1, 9}).String(); s != "7 1-9" {
		t.Errorf("PortRange.String = %q", s)
	}
	for in, want := range map[string]Proto{"tcp": ProtoTCP, "UDP": ProtoUDP, "both": ProtoBoth, "tcp udp": ProtoBoth, "tcpudp": ProtoBoth, "tcp,udp": ProtoBoth} {
		if got, err := ParseProto(in); err != nil || got != want {
			t.Errorf("ParseProto(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "icmp", " "} {
		if _, err := ParseProto(in); err == nil {
			t.Errorf("ParseProto(%q) succeeded", in)
		}
	}
	if ProtoBoth.String() != "both" || Proto(9).String() != "Proto(9)" || !ProtoBoth.Has(ProtoUDP) || ProtoTCP.Has(ProtoUDP) || ProtoTCP.Has(0) {
		t.Errorf("Proto methods wrong")
	}
}

// TestValidate checks configurations built by hand, as the lead's page
// (issue 11) will build forwards.
func TestValidate(t *testing.T) {
	base := func() Config {
		c := Default()
		c.LAN, c.WAN, c.WAN6, c.File = []string{"br-lan"}, "eth1", "eth1", "/etc/config/pcpgw"
		return c
	}
	if c := base(); c.Validate() != nil {
		t.Fatalf("base config invalid: %v", c.Validate())
	}
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"http port", func(c *Config) { c.HTTPPort = 70000 }, "/etc/config/pcpgw: option http_port: 70000 is not a port"},
		{"http port pcp", func(c *Config) { c.HTTPPort = 5350 }, "/etc/config/pcpgw: option http_port: 5350 is the NAT-PMP/PCP port"},
		{"mode", func(c *Config) { c.Mode = "" }, `/etc/config/pcpgw: option mode: "" is not one of auto, local, nat444, dslite, portset`},
		{"level", func(c *Config) { c.LogLevel = 3 }, "/etc/config/pcpgw: option log_level: INFO+3 is not one of debug, info, warn, error"},
		{"quota", func(c *Config) { c.Quota = -1 }, "/etc/config/pcpgw: option quota: -1 is negative"},
		{"lifetime", func(c *Config) { c.MaxLifetime = 1500 * time.Millisecond }, "/etc/config/pcpgw: option max_lifetime: 1.5s is not a whole number of seconds from 1 to 4294967295"},
		{"state dir", func(c *Config) { c.StateDir = "" }, "/etc/config/pcpgw: option state_dir: empty path"},
		{"lease file", func(c *Config) { c.LeaseFile = "a\x00b" }, "/etc/config/pcpgw: option lease_file: path holds a NUL byte"},
		{"wan", func(c *Config) { c.WAN = "a b" }, `/etc/config/pcpgw: option wan: "a b" is not an interface name`},
		{"lan", func(c *Config) { c.LAN = []string{".."} }, `/etc/config/pcpgw: option lan: ".." is not an interface name`},
		{"server", func(c *Config) { c.PCPServers = []netip.AddrPort{{}} }, "/etc/config/pcpgw: option pcp_server: no address"},
		{"server port", func(c *Config) { c.PCPServers = []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:0")} }, "/etc/config/pcpgw: option pcp_server: 192.0.2.1:0: port 0"},
		{"rule", func(c *Config) { c.PermRules = []PermRule{{ExtPorts: PortRange{2, 1}, Line: 9}} }, "/etc/config/pcpgw:9: perm_rule: port range runs backwards"},
		{"rule addr", func(c *Config) { c.PermRules = []PermRule{{Line: 9}} }, "/etc/config/pcpgw:9: perm_rule: no int_addr"},
		{"forward proto", func(c *Config) {
			c.Forwards = []Forward{{Name: "f", ExtPort: 1, IntPort: 1, IntAddr: netip.MustParseAddr("192.0.2.1")}}
		}, `/etc/config/pcpgw: forward "f": no protocol`},
		{"forward ext", func(c *Config) { c.Forwards = []Forward{{Name: "f", Proto: ProtoTCP}} }, `/etc/config/pcpgw: forward "f": no ext_port`},
		{"forward int", func(c *Config) { c.Forwards = []Forward{{Name: "f", Proto: ProtoTCP, ExtPort: 1}} }, `/etc/config/pcpgw: forward "f": no int_port`},
		{"forward addr", func(c *Config) { c.Forwards = []Forward{{Name: "f", Proto: ProtoTCP, ExtPort: 1, IntPort: 1}} }, `/etc/config/pcpgw: forward "f": no int_addr`},
		{"forward mapped addr", func(c *Config) {
			c.Forwards = []Forward{{Name: "f", Proto: ProtoTCP, ExtPort: 1, IntPort: 1, IntAddr: netip.MustParseAddr("::ffff:192.0.2.1")}}
		}, `/etc/config/pcpgw: forward "f": int_addr ::ffff:192.0.2.1 is not a LAN host's address`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.mod(&c)
			err := c.Validate()
			if err == nil || err.Error() != tt.want {
				t.Errorf("Validate() =\n %v\nwant\n %s", err, tt.want)
			}
		})
	}
	// Disabled forwards may share a port with an enabled one; HTTP port 0
	// reserves nothing.
	c := base()
	c.HTTPPort = 0
	a := netip.MustParseAddr("192.0.2.1")
	c.Forwards = []Forward{
		{Name: "a", Proto: ProtoTCP, ExtPort: 5000, IntPort: 1, IntAddr: a, Enabled: true},
		{Name: "b", Proto: ProtoBoth, ExtPort: 5000, IntPort: 1, IntAddr: a},
		{Name: "c", Proto: ProtoUDP, ExtPort: 5000, IntPort: 1, IntAddr: a, Enabled: true},
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	var out bytes.Buffer
	if err := c.WriteUCI(&out); err != nil {
		t.Fatal(err)
	}
	checkReload(t, &c, out.Bytes())
}

func TestErrorString(t *testing.T) {
	for _, tt := range []struct {
		e    Error
		want string
	}{
		{Error{File: "f", Line: 2, Msg: "m"}, "f:2: m"},
		{Error{File: "f", Msg: "m"}, "f: m"},
		{Error{Msg: "m"}, "m"},
	} {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("%+v.Error() = %q, want %q", tt.e, got, tt.want)
		}
	}
}

type errWriter struct{}

func (errWriter) Write([]byte) (int, error) { return 0, errors.New("full") }

func TestWriteUCIErrors(t *testing.T) {
	c := Default()
	if err := c.WriteUCI(errWriter{}); err == nil {
		t.Errorf("WriteUCI to a failing writer succeeded")
	}
	c.PermRules[0].Comment = "a\x00"
	if err := c.WriteUCI(io.Discard); err == nil {
		t.Errorf("WriteUCI of a NUL byte succeeded")
	}
}

// FuzzLoad: any input either fails with a *config.Error, or loads to a
// valid Config whose WriteUCI output loads back to an equal Config.
func FuzzLoad(f *testing.F) {
	for _, p := range []string{"testdata/full.conf", "uci/testdata/upnpd.conf", "testdata/full.golden"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("config pcpgw\n\toption lan 'a b'\n\toption wan c\nconfig forward\n\toption ext_port 1\n\toption int_addr ::2\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, _, err := load("fuzz", bytes.NewReader(b), nil)
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) || ce.File != "fuzz" {
				t.Fatalf("error %v is not a *config.Error naming the file", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("loaded config does not validate: %v", err)
		}
		var out bytes.Buffer
		if err := c.WriteUCI(&out); err != nil {
			t.Fatalf("WriteUCI: %v", err)
		}
		checkReload(t, c, out.Bytes())
	})
}

// TestPortSetOptions: the PSID options give RFC 7597's set, the ranges
// option the ranges; WriteUCI writes them back.
func TestPortSetOptions(t *testing.T) {
	head := "config pcpgw 'main'\n\tlist lan 'br-lan'\n\toption wan 'map-wan'\n"
	c, _, err := Load(writeFile(t, "pcpgw", head+"\toption mode 'portset'\n\toption portset_psid '1'\n\toption portset_psid_len '8'\n\toption portset_offset '4'\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	set, err := c.PortSet()
	if err != nil || set.Len() != 240 || set.Summary(2) != "4112-4127, 8208-8223, ..." {
		t.Fatalf("PortSet = %v (%d ports), %v", set, set.Len(), err)
	}
	var out bytes.Buffer
	if err := c.WriteUCI(&out); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"option portset_psid '1'", "option portset_psid_len '8'", "option portset_offset '4'", "option portset_reserve '25%'"} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("WriteUCI lacks %q:\n%s", line, out.String())
		}
	}
	c, _, err = Load(writeFile(t, "pcpgw", head+"\toption portset_ranges '3072-4095 8000'\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if set, err := c.PortSet(); err != nil || set.String() != "3072-4095, 8000" {
		t.Errorf("PortSet = %v, %v", set, err)
	}
}
