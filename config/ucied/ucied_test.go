package ucied

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/pcpgw/pcpgw/config/uci"
)

const sample = `# pcpgw configuration
config pcpgw 'main'
	# the uplink
	option wan 'eth1'
	list lan 'br-lan'

# the NAS
config forward 'nas'
	option ext_port '8443'
	option int_addr '192.0.2.100'

config perm_rule
	option action 'allow'   # trailing comment
# last words
`

func sec(typ, name string, kv ...string) *uci.Section {
	s := &uci.Section{Type: typ, Name: name}
	for i := 0; i+1 < len(kv); i += 2 {
		s.Options = append(s.Options, &uci.Option{Name: kv[i], Values: []string{kv[i+1]}})
	}
	return s
}

func TestEdit(t *testing.T) {
	tests := []struct {
		name string
		edit func(d *Doc) error
		want string
	}{
		{"nothing", func(d *Doc) error { return nil }, sample},
		{"replace", func(d *Doc) error {
			return d.Replace(8, sec("forward", "nas", "ext_port", "9000", "int_addr", "192.0.2.7"))
		}, `# pcpgw configuration
config pcpgw 'main'
	# the uplink
	option wan 'eth1'
	list lan 'br-lan'

# the NAS
config forward 'nas'
	option ext_port '9000'
	option int_addr '192.0.2.7'

config perm_rule
	option action 'allow'   # trailing comment
# last words
`},
		{"delete", func(d *Doc) error { return d.Delete(8) }, `# pcpgw configuration
config pcpgw 'main'
	# the uplink
	option wan 'eth1'
	list lan 'br-lan'

# the NAS
config perm_rule
	option action 'allow'   # trailing comment
# last words
`},
		{"append", func(d *Doc) error { return d.Append(sec("forward", "", "ext_port", "1", "description", "it's")) }, sample + `
config forward
	option ext_port '1'
	option description 'it'\''s'
`},
		{"set new option", func(d *Doc) error { return d.SetOption("pcpgw", "", "password_hash", "$x$y") }, `# pcpgw configuration
config pcpgw 'main'
	# the uplink
	option wan 'eth1'
	list lan 'br-lan'
	option password_hash '$x$y'

# the NAS
config forward 'nas'
	option ext_port '8443'
	option int_addr '192.0.2.100'

config perm_rule
	option action 'allow'   # trailing comment
# last words
`},
		{"set existing option", func(d *Doc) error { return d.SetOption("pcpgw", "main", "wan", "eth2") }, `# pcpgw configuration
config pcpgw 'main'
	# the uplink
	option wan 'eth2'
	list lan 'br-lan'

# the NAS
config forward 'nas'
	option ext_port '8443'
	option int_addr '192.0.2.100'

config perm_rule
	option action 'allow'   # trailing comment
# last words
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Parse("f", []byte(sample))
			if err != nil {
				t.Fatal(err)
			}
			if err := tt.edit(d); err != nil {
				t.Fatal(err)
			}
			got := string(d.Bytes())
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
			if _, err := uci.Parse("out", strings.NewReader(got)); err != nil {
				t.Errorf("output does not parse: %v", err)
			}
		})
	}
}

// Replace edits a section in place: comments before, inside and after it
// stay, unchanged options keep their lines and order, a changed option is
// rewritten where it stands, a removed one goes, a new one comes after the
// section's last option. Layouts it cannot edit so are written whole.
func TestReplaceInPlace(t *testing.T) {
	const in = `# before everything
config pcpgw 'main'
	option wan 'eth1'

# the NAS
config forward 'nas'
	# its name
	option name 'nas'
	option proto 'tcp'   # TCP only
	# the port at the provider
	o ext_port 8443
	option int_addr '192.0.2.100'
	list tag 'a'
	list tag 'b'
	# nothing below this
# after the NAS

config forward 'web'
	option ext_port '80'
# last words
`
	nas := func(kv ...string) *uci.Section { return sec("forward", "nas", kv...) }
	tests := []struct {
		name string
		s    *uci.Section
		want string // the nas section as it comes out (lines 6 to 15 of in)
	}{
		{"unchanged", func() *uci.Section {
			s := nas("name", "nas", "proto", "tcp", "ext_port", "8443", "int_addr", "192.0.2.100")
			s.Options = append(s.Options, &uci.Option{Name: "tag", List: true, Values: []string{"a", "b"}})
			return s
		}(), `config forward 'nas'
	# its name
	option name 'nas'
	option proto 'tcp'   # TCP only
	# the port at the provider
	o ext_port 8443
	option int_addr '192.0.2.100'
	list tag 'a'
	list tag 'b'
	# nothing below this
`},
		{"change, remove, add", nas("ext_port", "9000", "proto", "udp", "int_addr", "192.0.2.100", "int_port", "80", "enabled", "1"),
			`config forward 'nas'
	# its name
	option proto 'udp' # TCP only
	# the port at the provider
	option ext_port '9000'
	option int_addr '192.0.2.100'
	option int_port '80'
	option enabled '1'
	# nothing below this
`},
		{"list changed", func() *uci.Section {
			s := nas("name", "nas", "proto", "tcp", "ext_port", "8443", "int_addr", "192.0.2.100")
			s.Options = append(s.Options, &uci.Option{Name: "tag", List: true, Values: []string{"b", "c", "d"}})
			return s
		}(), `config forward 'nas'
	# its name
	option name 'nas'
	option proto 'tcp'   # TCP only
	# the port at the provider
	o ext_port 8443
	option int_addr '192.0.2.100'
	list tag 'b'
	list tag 'c'
	list tag 'd'
	# nothing below this
`},
		{"everything removed", nas("description", "it's new"), `config forward 'nas'
	# its name
	# the port at the provider
	option description 'it'\''s new'
	# nothing below this
`},
		{"renamed", sec("forward", "", "name", "nas", "proto", "tcp", "ext_port", "8443", "int_addr", "192.0.2.100"), `config forward
	# its name
	option name 'nas'
	option proto 'tcp'   # TCP only
	# the port at the provider
	o ext_port 8443
	option int_addr '192.0.2.100'
	# nothing below this
`},
	}
	lines := strings.SplitAfter(in, "\n")
	before, after := strings.Join(lines[:5], ""), strings.Join(lines[15:], "")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Parse("f", []byte(in))
			if err != nil {
				t.Fatal(err)
			}
			if err := d.Replace(6, tt.s); err != nil {
				t.Fatal(err)
			}
			got := string(d.Bytes())
			if diff := cmp.Diff(before+tt.want+after, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
			f, err := uci.Parse("out", strings.NewReader(got))
			if err != nil {
				t.Fatalf("output does not parse: %v", err)
			}
			// It means what was asked (option order aside).
			s := f.OfType("forward")[0]
			if s.Name != tt.s.Name || len(s.Options) != len(tt.s.Options) {
				t.Fatalf("section %+v, want %+v", s, tt.s)
			}
			for _, o := range tt.s.Options {
				g := s.Option(o.Name)
				if g == nil || g.List != o.List || !slices.Equal(g.Values, o.Values) {
					t.Errorf("option %s: %+v, want %+v", o.Name, g, o)
				}
			}
		})
	}
}

// A section whose statements do not stand one to a line is written whole.
func TestReplaceWhole(t *testing.T) {
	for _, in := range []string{
		"config a\n\t# c\n\toption x 1; option y 2\n",
		"config a; option x 1\n\t# c\n\toption y 1\n",
		"config a\n\t# c\n\toption x 1\n\toption x ''\n",
		"config a\n\t# c\n\toption x 'multi\nline'\n\toption y ''\n",
	} {
		d, err := Parse("f", []byte(in))
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if err := d.Replace(1, sec("a", "", "x", "2")); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff("config a\n\toption x '2'\n", string(d.Bytes())); diff != "" {
			t.Errorf("%q (-want +got)\n%s", in, diff)
		}
	}
	// A multi-line value on its own statement is kept or replaced whole.
	d, err := Parse("f", []byte("config a\n\t# c\n\toption x 'multi\nline'\n\toption y 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Replace(1, sec("a", "", "x", "multi\nline", "y", "2")); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("config a\n\t# c\n\toption x 'multi\nline'\n\toption y '2'\n", string(d.Bytes())); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
}

func TestSetOptionNoSection(t *testing.T) {
	d, err := Parse("f", []byte("# only a comment\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.SetOption("pcpgw", "main", "password_hash", "h"); err != nil {
		t.Fatal(err)
	}
	want := "# only a comment\n\nconfig pcpgw 'main'\n\toption password_hash 'h'\n"
	if diff := cmp.Diff(want, string(d.Bytes())); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
}

func TestSpans(t *testing.T) {
	d, err := Parse("f", []byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	want := []Span{{"pcpgw", "main", 2, 5}, {"forward", "nas", 8, 10}, {"perm_rule", "", 12, 13}}
	if diff := cmp.Diff(want, d.Spans()); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
	if err := d.Delete(3); err == nil {
		t.Error("Delete of a line that starts no section: no error")
	}
}

func TestLayoutRefused(t *testing.T) {
	for _, in := range []string{
		"config a; config b\n",
		"config a\n\toption x 'one\nconfig b'\n",
		// The fuzz crasher's shape: "config" on a line of a multi-line
		// value, itself ending inside the next quoted value.
		"config k\nlist n 'v# c\nconfig forward 'nas'\n'\n",
		"config a\n\toption x \"one\\\nconfig b\"\n",
		"config a\n\toption x one\\\nconfig\n",
		"config a\n\toption x 'one\npackage p'\n",
		// Options after a package statement stay in the section
		// before it (uci), where a Delete would leave them behind.
		"c '0'\np 0\nl 0",
		"config a\npackage p; option x 1\n",
		"c '0'\np 0\no p", // an option without value still needs a section
	} {
		if _, err := Parse("f", []byte(in)); !errors.Is(err, ErrLayout) {
			t.Errorf("Parse(%q) = %v, want ErrLayout", in, err)
		}
	}
	if _, err := Parse("f", []byte("bogus\n")); err == nil {
		t.Error("Parse of a bad file: no error")
	}
}

func TestWriteFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "pcpgw")
	if err := os.WriteFile(p, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(p, []byte("new\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil || string(b) != "new\n" {
		t.Fatalf("read back %q, %v", b, err)
	}
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600 kept", fi.Mode().Perm())
	}
	ents, _ := os.ReadDir(filepath.Dir(p))
	if len(ents) != 1 {
		t.Errorf("left behind: %v", ents)
	}
}

func TestDeleteLast(t *testing.T) {
	d, err := Parse("f", []byte("config a\n\toption x '1'\n\nconfig b\n\toption y '2'\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(4); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("config a\n\toption x '1'\n", string(d.Bytes())); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
}

// A multi-line value whose last lines look like blank or comment lines
// stays whole with its section, and an option line is not replaced when
// its value goes on to the next lines or starts inside another value.
func TestMultiLineValue(t *testing.T) {
	in := "config a\n\toption x 'one\n\n# two'\n\nconfig b\n\toption y '2'\n"
	d, err := Parse("f", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Span{{"a", "", 1, 4}, {"b", "", 6, 7}}
	if diff := cmp.Diff(want, d.Spans()); diff != "" {
		t.Fatalf("spans (-want +got)\n%s", diff)
	}
	if err := d.Delete(1); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("config b\n\toption y '2'\n", string(d.Bytes())); diff != "" {
		t.Errorf("after Delete (-want +got)\n%s", diff)
	}

	d, err = Parse("f", []byte("config a\n\toption x 'one\n\toption x two'\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.SetOption("a", "", "x", "3"); !errors.Is(err, ErrLayout) {
		t.Errorf("SetOption on a multi-line value = %v, want ErrLayout", err)
	}

	d, err = Parse("f", []byte("config a\n\toption y 'one\n\toption x two'\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.SetOption("a", "", "x", "3"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("config a\n\toption y 'one\n\toption x two'\n\toption x '3'\n", string(d.Bytes())); diff != "" {
		t.Errorf("SetOption beside a value that reads like the option (-want +got)\n%s", diff)
	}
}

// FuzzEdit: no panic; a parsed file comes back unchanged without edits,
// and deleting, replacing or appending sections, or setting an option,
// gives a file uci still parses with the expected sections.
func FuzzEdit(f *testing.F) {
	f.Add(sample)
	f.Add("config a\n\toption x '1'\n\nconfig b\n\toption y '2'\n")
	f.Add("package p\nconfig a 'n'\n# c\n\tlist l 'v'\n\tlist l 'w'\n")
	f.Add("config a; config b\n")
	f.Add("config a\n\t# c\n\toption x '1' # d\n\tlist l 'v'\n\t# e\n\toption ext_port 2\n")
	f.Fuzz(func(t *testing.T, in string) {
		d, err := Parse("f", []byte(in))
		if err != nil {
			return
		}
		if got := string(d.Bytes()); got != in {
			t.Fatalf("no edit changed the text:\n%q\n%q", in, got)
		}
		spans := d.Spans()
		for i, s := range spans {
			switch i % 3 {
			case 0:
				err = d.Delete(s.Start)
			case 1:
				err = d.Replace(s.Start, sec("forward", "", "ext_port", "1"))
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := d.Append(sec("forward", "", "name", "x")); err != nil {
			t.Fatal(err)
		}
		out := d.Bytes()
		pf, err := uci.Parse("out", strings.NewReader(string(out)))
		if err != nil {
			t.Fatalf("edited file does not parse: %v\n%s", err, out)
		}
		if len(pf.OfType("forward")) == 0 {
			t.Fatalf("appended section lost:\n%s", out)
		}
		d2, err := Parse("out", out)
		if err != nil {
			t.Fatalf("edited file cannot be edited again: %v\n%s", err, out)
		}
		if err := d2.SetOption("pcpgw", "main", "password_hash", "$h"); err != nil {
			return // a pcpgw section with an option on a shared line
		}
		if _, err := uci.Parse("out2", strings.NewReader(string(d2.Bytes()))); err != nil {
			t.Fatalf("after SetOption: %v\n%s", err, d2.Bytes())
		}
	})
}
