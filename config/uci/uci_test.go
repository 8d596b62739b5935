package uci

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

func parse(t *testing.T, src string) *File {
	t.Helper()
	f, err := Parse("t.conf", strings.NewReader(src))
	if err != nil {
		t.Fatalf("Parse(%q): %v", src, err)
	}
	return f
}

func opt(name string, line int, v string) *Option {
	return &Option{Name: name, Values: []string{v}, Lines: []int{line}}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want *File
	}{
		{"empty", "", &File{Name: "t.conf"}},
		{"comments and blanks", "# c\n\n  \t# indented\n", &File{Name: "t.conf"}},
		{"anonymous", "config t\n", &File{Name: "t.conf", Sections: []*Section{{Type: "t", Line: 1}}}},
		{"named bare", "config t n\n option a b\n", &File{Name: "t.conf", Sections: []*Section{
			{Type: "t", Name: "n", Line: 1, Options: []*Option{opt("a", 2, "b")}}}}},
		{"empty name is anonymous", "config t ''\n", &File{Name: "t.conf", Sections: []*Section{{Type: "t", Line: 1}}}},
		{"package kept once", "package a\npackage b\nconfig t\n", &File{Name: "t.conf", Package: "a",
			Sections: []*Section{{Type: "t", Line: 3}}}},
		{"quotes run together", `config t
option a 'x'"y"z`, &File{Name: "t.conf", Sections: []*Section{
			{Type: "t", Line: 1, Options: []*Option{opt("a", 2, "xyz")}}}}},
		{"backslash in bare and double, not single", `config t
option a \'\\\n
option b "\"\n"
option c '\n'
`, &File{Name: "t.conf", Sections: []*Section{{Type: "t", Line: 1, Options: []*Option{
			opt("a", 2, `'\n`), opt("b", 3, `"n`), opt("c", 4, `\n`)}}}}},
		{"hash inside a bare word ends it", "config t\noption a b#c d\n", &File{Name: "t.conf", Sections: []*Section{
			{Type: "t", Line: 1, Options: []*Option{opt("a", 2, "b")}}}}},
		{"semicolons", "config t; option a 1;option b 2 ;\n", &File{Name: "t.conf", Sections: []*Section{
			{Type: "t", Line: 1, Options: []*Option{opt("a", 1, "1"), opt("b", 1, "2")}}}}},
		{"crlf", "config t\r\noption a b\r\n", &File{Name: "t.conf", Sections: []*Section{
			{Type: "t", Line: 1, Options: []*Option{opt("a", 2, "b")}}}}},
		{"continuation", "config t\noption a 'x'\\\ny\noption b c\\\r\nd\n", &File{Name: "t.conf", Sections: []*Section{
			{Type: "t", Line: 1, Options: []*Option{opt("a", 2, "xy"), opt("b", 4, "cd")}}}}},
		{"multi-line single quote keeps newline and counts lines", "config t\noption a 'x\ny'\noption b c\n",
			&File{Name: "t.conf", Sections: []*Section{{Type: "t", Line: 1, Options: []*Option{
				opt("a", 2, "x\ny"), opt("b", 4, "c")}}}}},
		{"backslash at EOF", "config t\noption a b\\", &File{Name: "t.conf", Sections: []*Section{
			{Type: "t", Line: 1, Options: []*Option{opt("a", 2, "b")}}}}},
		{"option to list", "config t\noption a 1\nlist a 2\n", &File{Name: "t.conf", Sections: []*Section{
			{Type: "t", Line: 1, Options: []*Option{{Name: "a", List: true, Values: []string{"1", "2"}, Lines: []int{2, 3}}}}}}},
		{"list to option", "config t\nlist a 1\nlist a 2\noption a 3\n", &File{Name: "t.conf", Sections: []*Section{
			{Type: "t", Line: 1, Options: []*Option{opt("a", 4, "3")}}}}},
		{"empty option removes", "config t\noption a 1\noption b 2\noption a ''\noption c\n", &File{Name: "t.conf", Sections: []*Section{
			{Type: "t", Line: 1, Options: []*Option{opt("b", 3, "2")}}}}},
		{"empty list item kept", "config t\nlist a ''\nlist a\n", &File{Name: "t.conf", Sections: []*Section{
			{Type: "t", Line: 1, Options: []*Option{{Name: "a", List: true, Values: []string{"", ""}, Lines: []int{2, 3}}}}}}},
		{"named section continued", "config t n\noption a 1\nconfig u\nconfig t n\noption b 2\n", &File{Name: "t.conf", Sections: []*Section{
			{Type: "t", Name: "n", Line: 1, Options: []*Option{opt("a", 2, "1"), opt("b", 5, "2")}},
			{Type: "u", Line: 3}}}},
		{"trailing empty argument", "config t n ''\n", &File{Name: "t.conf", Sections: []*Section{{Type: "t", Name: "n", Line: 1}}}},
		{"type with punctuation", "config 'a.b-c:d'\n", &File{Name: "t.conf", Sections: []*Section{{Type: "a.b-c:d", Line: 1}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parse(t, tt.src)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Parse(%q) (-want +got):\n%s", tt.src, diff)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		src  string
		want string
	}{
		{"option a b\n", "t.conf:1: option/list command found before the first section"},
		{"\n\nconfig\n", "t.conf:3: config without type"},
		{"config 'a b'\n", `t.conf:1: invalid character in section type "a b"`},
		{"config t 'a-b'\n", `t.conf:1: invalid character in section name "a-b"`},
		{"config t\n option\n", "t.conf:2: option without name"},
		{"config t\n option a.b c\n", `t.conf:2: invalid character in option name "a.b"`},
		{"config t\n option a b c\n", "t.conf:2: too many arguments"},
		{"config t n x\n", "t.conf:1: too many arguments"},
		{"config t\n option a 'b\n\n", "t.conf:2: EOF with unterminated ' (opened here)"},
		{"config t\n option a \"b\n", "t.conf:2: EOF with unterminated \" (opened here)"},
		{"config t\n options a b\n", `t.conf:2: invalid command "options"`},
		{"config t\n;\n", `t.conf:2: invalid command ";"`},
		{"package\n", "t.conf:1: package without name"},
		{"package a.b\n", `t.conf:1: invalid character in package name "a.b"`},
		{"package a b\n", "t.conf:1: too many arguments"},
		{"config t n\nconfig u n\n", `t.conf:2: section "n" of type "u" overwrites prior section of type "t"`},
		{"config t\n\noption a 'x\x00'\n", "t.conf:3: NUL byte"},
		{"config t\n option a \"multi\nline\" b\n", "t.conf:2: too many arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			f, err := Parse("t.conf", strings.NewReader(tt.src))
			if err == nil {
				t.Fatalf("Parse(%q) = %+v, want error %q", tt.src, f, tt.want)
			}
			var ue *Error
			if !errors.As(err, &ue) {
				t.Fatalf("Parse(%q) error %T is not *Error", tt.src, err)
			}
			if err.Error() != tt.want {
				t.Errorf("Parse(%q) error:\n got %q\nwant %q", tt.src, err, tt.want)
			}
		})
	}
}

func TestParseTooLarge(t *testing.T) {
	src := "config t\n" + strings.Repeat("#", MaxSize)
	_, err := Parse("big", strings.NewReader(src))
	if err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Parse(%d bytes) error = %v, want a size error", len(src), err)
	}
}

type failReader struct{}

func (failReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestParseReadError(t *testing.T) {
	_, err := Parse("x", failReader{})
	var ue *Error
	if !errors.As(err, &ue) || ue.File != "x" || !strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("Parse(failing reader) error = %v, want *Error naming x", err)
	}
	if got := (&Error{Line: 3, Msg: "m"}).Error(); got != "line 3: m" {
		t.Errorf("Error without file = %q", got)
	}
}

// TestGolden parses each testdata/*.conf and compares its canonical form
// with testdata/*.golden (go test -update rewrites them), then checks that
// the canonical form parses back to the same File.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.conf")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, in := range files {
		t.Run(filepath.Base(in), func(t *testing.T) {
			src, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			f, err := Parse(in, bytes.NewReader(src))
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := f.Format(&out); err != nil {
				t.Fatal(err)
			}
			golden := strings.TrimSuffix(in, ".conf") + ".golden"
			if *update {
				if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), out.String()); diff != "" {
				t.Errorf("Format (-want +got):\n%s", diff)
			}
			checkRoundTrip(t, f, out.Bytes())
		})
	}
}

// TestUpnpdDefault pins what the parser makes of OpenWrt's default upnpd
// file, the one a migrating user has.
func TestUpnpdDefault(t *testing.T) {
	f, err := os.Open("testdata/upnpd.conf")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := Parse("upnpd", f)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Sections) != 3 || got.Sections[0].Type != "upnpd" || got.Sections[0].Name != "config" {
		t.Fatalf("sections = %+v", got.Sections)
	}
	if o := got.Sections[0].Option("external_iface"); o != nil {
		t.Errorf("commented-out external_iface parsed: %+v", o)
	}
	rules := got.OfType("perm_rule")
	if len(rules) != 2 {
		t.Fatalf("perm_rules = %d, want 2", len(rules))
	}
	want := &Section{Type: "perm_rule", Line: 20, Options: []*Option{
		opt("action", 21, "allow"), opt("ext_ports", 22, "1024-65535"), opt("int_addr", 23, "0.0.0.0/0"),
		opt("int_ports", 24, "1024-65535"), opt("comment", 25, "Allow high ports")}}
	if diff := cmp.Diff(want, rules[0]); diff != "" {
		t.Errorf("first perm_rule (-want +got):\n%s", diff)
	}
	if got.Section("config") != got.Sections[0] || got.Section("") != nil || got.Section("nope") != nil {
		t.Errorf("Section lookup wrong")
	}
	if o := rules[1].Option("comment"); o == nil || o.Line() != 32 || o.Values[0] != "Default deny" {
		t.Errorf("second comment = %+v", o)
	}
}

func TestFormatErrors(t *testing.T) {
	tests := []struct {
		name string
		f    *File
	}{
		{"package", &File{Package: "a b"}},
		{"type", &File{Sections: []*Section{{Type: "a b"}}}},
		{"section name", &File{Sections: []*Section{{Type: "t", Name: "a-b"}}}},
		{"option name", &File{Sections: []*Section{{Type: "t", Options: []*Option{{Name: "", Values: []string{"x"}}}}}}},
		{"twice", &File{Sections: []*Section{{Type: "t", Options: []*Option{opt("a", 0, "x"), opt("a", 0, "y")}}}}},
		{"no value", &File{Sections: []*Section{{Type: "t", Options: []*Option{{Name: "a"}}}}}},
		{"empty value", &File{Sections: []*Section{{Type: "t", Options: []*Option{opt("a", 0, "")}}}}},
		{"two values", &File{Sections: []*Section{{Type: "t", Options: []*Option{{Name: "a", Values: []string{"x", "y"}}}}}}},
		{"NUL", &File{Sections: []*Section{{Type: "t", Options: []*Option{opt("a", 0, "x\x00")}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tt.f.Format(&b); err == nil {
				t.Errorf("Format(%+v) = nil error, wrote %q", tt.f, b.String())
			}
		})
	}
	if (&Option{}).Line() != 0 {
		t.Errorf("Line of an empty option != 0")
	}
}

func TestQuote(t *testing.T) {
	for _, s := range []string{"", "plain", "it's", "''", `\`, "a\nb", "#;\"", " lead"} {
		f := &File{Sections: []*Section{{Type: "t", Options: []*Option{{Name: "a", List: true, Values: []string{s}}}}}}
		var b bytes.Buffer
		if err := f.Format(&b); err != nil {
			t.Fatal(err)
		}
		g := parse(t, b.String())
		if got := g.Sections[0].Options[0].Values[0]; got != s {
			t.Errorf("Quote(%q) read back as %q (file %q)", s, got, b.String())
		}
	}
}

// stripLines returns a copy of f without line numbers, for comparing a
// file with its formatted and re-parsed self.
func stripLines(f *File) *File {
	g := &File{Name: f.Name, Package: f.Package}
	for _, s := range f.Sections {
		ns := &Section{Type: s.Type, Name: s.Name}
		for _, o := range s.Options {
			ns.Options = append(ns.Options, &Option{Name: o.Name, List: o.List, Values: o.Values})
		}
		g.Sections = append(g.Sections, ns)
	}
	return g
}

func checkRoundTrip(t *testing.T, f *File, formatted []byte) {
	t.Helper()
	g, err := Parse(f.Name, bytes.NewReader(formatted))
	if err != nil {
		t.Fatalf("re-parse of formatted output failed: %v\n%s", err, formatted)
	}
	if diff := cmp.Diff(stripLines(f), stripLines(g)); diff != "" {
		t.Fatalf("format -> parse changed the file (-first +second):\n%s\nformatted:\n%s", diff, formatted)
	}
	var again bytes.Buffer
	if err := g.Format(&again); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Bytes(), formatted) {
		t.Fatalf("formatting twice differs:\n%q\n%q", formatted, again.Bytes())
	}
}

func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.conf")
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{"config t\noption a 'x\ny'\n", "c t;o a \\\n'b'\"c\";l a d#e\n", "config t n\nlist a ''\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := Parse("fuzz", bytes.NewReader(b))
		if err != nil {
			var ue *Error
			if !errors.As(err, &ue) || ue.Line < 1 {
				t.Fatalf("error %v is not an *Error with a line", err)
			}
			return
		}
		var out bytes.Buffer
		if err := file.Format(&out); err != nil {
			t.Fatalf("Format of a parsed file: %v", err)
		}
		checkRoundTrip(t, file, out.Bytes())
	})
}
