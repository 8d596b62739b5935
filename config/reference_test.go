package config

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// optionTable is the reference table of the pcpgw section's options, made
// from the same table the parser uses, so that it cannot drift.
func optionTable() string {
	var b strings.Builder
	b.WriteString("| Option (config pcpgw) | Flag of pcpgw run | Default | Meaning |\n")
	b.WriteString("| --- | --- | --- | --- |\n")
	for _, st := range settings {
		name := "`" + st.name + "`"
		if st.list {
			name += " (list)"
		}
		flag := ""
		switch {
		case st.flag == "":
		case st.boolean && !st.noNeg:
			flag = "`--" + st.flag + "`, `--no-" + st.flag + "`"
		case st.list:
			flag = "`--" + st.flag + "` (repeatable)"
		default:
			flag = "`--" + st.flag + "`"
		}
		b.WriteString("| " + name + " | " + flag + " | " + st.def + " | " + st.help + " |\n")
	}
	return b.String()
}

const referenceHead = `# pcpgw configuration reference

pcpgw reads one file in OpenWrt's UCI syntax (` + "`pcpgw run -c /etc/config/pcpgw`" + `;
` + "`pcpgw check-config -c FILE`" + ` validates it and prints the effective configuration).
A flag of ` + "`pcpgw run`" + ` wins over the file. Booleans take 1/0, yes/no, on/off,
true/false or enabled/disabled. A list option may also be given as one
` + "`option`" + ` with space-separated values. Unknown options and sections are
reported as warnings (` + "`file:line: unknown option 'x' in section pcpgw`" + `);
errors name the file and line.

## The daemon: ` + "`config pcpgw 'main'`" + ` (one section of type pcpgw)

`

const referenceTail = `
## Port sets (mode portset: MAP-E, MAP-T, lw4o6, A+P)

When the provider shares one IPv4 address among customers with a fixed port set
each and no NAT of its own, its border relay forwards only this router's ports:
a mapping on any other port is useless. pcpgw learns the set, in this order,
from ` + "`portset_ranges`" + ` or ` + "`portset_psid`" + ` / ` + "`portset_psid_len`" + ` / ` + "`portset_offset`" + `
(RFC 7597 §5.1: PSID 1 with length 8 and offset 4 is 4112-4127, 8208-8223, ...,
61456-61471), else from OpenWrt's map rules (` + "`map_rules`" + `, by default
` + "`/tmp/map-<name>.rules`" + ` when the WAN device is ` + "`map-<name>`" + `, as map.sh writes
it: the rule's port sets and IPv4 address), and re-reads the map rules every 2 s.
Mode ` + "`auto`" + ` then picks ` + "`portset`" + `.

Every mapping's external port is in the part of the set kept for mappings
(` + "`portset_reserve`" + `, the upper quarter by default, always with the static
forwards' ports): IGD AddPortMapping of another port fails (718 on IGD:1, 729
ConflictWithOtherMechanisms on IGD:2, CANNOT_PROVIDE_EXTERNAL for PCP with
PREFER_FAILURE), the other requests get the nearest free port of that part, and
a static forward outside the set is refused by ` + "`pcpgw check-config`" + ` (when the
options give the set). The rest of the set goes to the router's outbound
connections: pcpgw SNATs them to the shared address over those ranges in turn,
in its own table at priority -10, before fw4's srcnat (where map.sh's rules would
give every flow the first range only), so that no outbound flow takes a port a
mapping holds. With ` + "`portset_reserve '0'`" + ` pcpgw installs no SNAT and mappings may
take any port of the set.

## Port mapping permissions: ` + "`config perm_rule`" + ` (as in miniupnpd's /etc/config/upnpd)

Rules are tried in file order; the first whose three ranges match a request
(external port, LAN host address, internal port) allows or denies it. A request
that no rule matches is allowed, as in miniupnpd (the rules are IPv4: IPv6
pinholes are governed by ` + "`ipv6_pinholes`" + ` and secure mode). With no perm_rule
section, miniupnpd's defaults apply: allow 1024-65535 0.0.0.0/0 1024-65535,
then deny 0-65535 0.0.0.0/0 0-65535. Secure mode still applies on top of an
allow.

| Option | Default | Meaning |
|---|---|---|
| ` + "`action`" + ` | deny | allow or deny |
| ` + "`ext_ports`" + ` | 0-65535 | external ports: x, x-y or x:y |
| ` + "`int_addr`" + ` | 0.0.0.0/0 | LAN host: address, address/len, or IPv4 address/dotted mask |
| ` + "`int_ports`" + ` | 0-65535 | internal ports: x, x-y or x:y |
| ` + "`comment`" + ` | none | free text |

## Static port forwards: ` + "`config forward`" + `

Kept alive at the provider through PCP for as long as they are configured and
enabled. The external port may not be 5350, 5351 or pcpgw's HTTP port, and
two enabled forwards may not share a protocol and external port.

| Option | Default | Meaning |
|---|---|---|
| ` + "`name`" + ` | the section's name | label, unique among forwards |
| ` + "`proto`" + ` | both | tcp, udp or both |
| ` + "`ext_port`" + ` | required | external port at the provider |
| ` + "`int_addr`" + ` | required | LAN host address (IPv4 or IPv6) |
| ` + "`int_port`" + ` | ext_port | port on the LAN host |
| ` + "`enabled`" + ` | on | off keeps the forward configured but inactive |
| ` + "`description`" + ` | none | free text, sent to the provider as the PCP DESCRIPTION |
`

// TestReference keeps REFERENCE.md and the table in doc.go equal to the
// options the parser knows (go test -update rewrites REFERENCE.md).
func TestReference(t *testing.T) {
	want := referenceHead + optionTable() + referenceTail
	if *update {
		if err := os.WriteFile("REFERENCE.md", []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile("REFERENCE.md")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("REFERENCE.md is stale (-want +got); run go test ./config -update:\n%s", diff)
	}
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		doc = []byte(replaceDocTable(string(doc), optionTable()))
		if err := os.WriteFile("doc.go", doc, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var table strings.Builder
	for _, l := range strings.Split(string(doc), "\n") {
		if rest, ok := strings.CutPrefix(l, "//\t| "); ok {
			table.WriteString("| " + rest + "\n")
		}
	}
	if diff := cmp.Diff(optionTable(), table.String()); diff != "" {
		t.Errorf("doc.go's option table is stale (-want +got):\n%s", diff)
	}
}

// replaceDocTable puts table in place of the "//\t| " lines of doc.
func replaceDocTable(doc, table string) string {
	var out []string
	done := false
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(l, "//\t| ") {
			out = append(out, l)
			continue
		}
		if !done {
			for _, row := range strings.Split(strings.TrimSuffix(table, "\n"), "\n") {
				out = append(out, "//\t"+row)
			}
			done = true
		}
	}
	return strings.Join(out, "\n")
}

// TestReadmeReference: README.md carries the same option table between its
// markers (go test ./config -update rewrites it).
func TestReadmeReference(t *testing.T) {
	const begin, end = "<!-- options:begin -->\n", "<!-- options:end -->"
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatalf("README.md has no %q ... %q section", begin, end)
	}
	got := s[i+len(begin) : j]
	if *update {
		s = s[:i+len(begin)] + optionTable() + s[j:]
		if err := os.WriteFile("../README.md", []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if diff := cmp.Diff(optionTable(), got); diff != "" {
		t.Errorf("README.md's option table is stale (-want +got); run go test ./config -update:\n%s", diff)
	}
}
