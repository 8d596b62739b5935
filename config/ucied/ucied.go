// Package ucied edits a UCI file in place: it replaces, inserts and
// deletes whole sections and sets single options while every other line
// (comments, blank lines, the other sections, their layout) stays as it
// was. The uci package parses for meaning and drops comments; this package
// keeps the text and only uses uci to check it.
//
// A section spans from its `config` line to its last line that is neither
// blank nor a comment: comments above a section and blank lines between
// sections belong to no section and are never touched.
//
//	# kept                      <- outside every section
//	config forward 'nas'        <- Start
//		# inside: kept when the section is replaced, goes when it is deleted
//		option ext_port '8443'  <- End
//	                            <- outside
//
// Replacing a section changes only the option lines whose value changes,
// drops the lines of removed options and adds new options after the last
// one; the rest of the section stays line for line.
//
// WriteFile replaces a file atomically (temporary file, fsync, rename).
package ucied

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pcpgw/pcpgw/config/uci"
)

// ErrLayout is returned by Parse for a file whose statements this package
// cannot place on lines (a `config` statement inside a multi-line value or
// after a ';' on another statement's line).
var ErrLayout = errors.New("ucied: the file's layout cannot be edited in place")

// Span is where a section lies in the file: lines Start to End (1-based,
// inclusive).
type Span struct {
	Type, Name string
	Start, End int
}

// Doc is a UCI file being edited. Edits name sections by their Start line
// in the original text; Bytes applies them all.
type Doc struct {
	name  string
	data  []byte
	lines []string // without their "\n"
	final bool     // the text ended with a newline
	spans []Span
	clean []bool // clean[i]: line i+1 begins a statement (not inside a quoted value or after a '\\' continuation); one more entry for the end of the text
	file  *uci.File
	repl  map[int][]string // Start -> replacement lines (nil: delete)
	adds  [][]string       // appended sections
}

// Parse reads a UCI file's text. name is used in errors.
func Parse(name string, data []byte) (*Doc, error) {
	f, err := uci.Parse(name, bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	d := &Doc{name: name, data: data, file: f, repl: map[int][]string{}}
	text := string(data)
	d.final = text == "" || strings.HasSuffix(text, "\n")
	text = strings.TrimSuffix(text, "\n")
	if text != "" {
		d.lines = strings.Split(text, "\n")
	}
	d.clean = statementLines(data, len(d.lines))
	// Find the config statements by their first word. A line inside a
	// multi-line value that reads like a config or package statement
	// would be taken for a section boundary: refused.
	var starts []int
	stops := map[int]bool{} // lines that end a section without starting one
	for i, l := range d.lines {
		w := strings.Fields(l)
		if len(w) == 0 {
			continue
		}
		if !d.clean[i] {
			switch w[0] {
			case "config", "c", "package", "p":
				return nil, fmt.Errorf("%s:%d: %w", name, i+1, ErrLayout)
			}
			continue
		}
		switch w[0] {
		case "config", "c":
			starts = append(starts, i+1)
		case "package", "p":
			stops[i+1] = true
		}
	}
	// Each parsed section must start on one of those lines and each of
	// those lines must start a parsed section (a named section given
	// twice is merged by uci: its second block is found by the scan only).
	for _, s := range f.Sections {
		if !slices.Contains(starts, s.Line) {
			return nil, fmt.Errorf("%s:%d: %w", name, s.Line, ErrLayout)
		}
	}
	for k, st := range starts {
		end := len(d.lines)
		if k+1 < len(starts) {
			end = starts[k+1] - 1
		}
		for l := st + 1; l <= end; l++ {
			if stops[l] {
				// uci keeps adding the options after a package
				// statement to the section before it: lines this
				// package would leave behind at a Delete.
				if !onlyPackage(d.lines[l-1 : end]) {
					return nil, fmt.Errorf("%s:%d: %w", name, l, ErrLayout)
				}
				end = l - 1
				break
			}
		}
		// Trailing blank and comment lines are outside the section, but
		// not the last lines of a multi-line value that look like them.
		for end > st && d.clean[end-1] && blankOrComment(d.lines[end-1]) {
			end--
		}
		typ, sname, err := header(d.lines[st-1])
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, st, ErrLayout)
		}
		d.spans = append(d.spans, Span{Type: typ, Name: sname, Start: st, End: end})
	}
	if len(d.spans) != len(starts) {
		return nil, fmt.Errorf("%s: %w", name, ErrLayout)
	}
	return d, nil
}

// statementLines reports, for each of the n lines of data and for the end
// of the text, whether a statement can begin there: the newline before it
// was not inside a quoted value, not escaped by a backslash. It follows
// uci's lexer: '...' takes everything literally, "..." and bare text take
// a backslash as an escape of the next byte (a line end after it joins
// the lines), and '#' outside quotes comments out the rest of the line.
func statementLines(data []byte, n int) []bool {
	clean := make([]bool, n+1)
	clean[0] = true
	const (
		plain = iota
		single
		double
		comment
	)
	state, line := plain, 0
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch {
		case c == '\n':
			line++
			if line <= n {
				clean[line] = state == plain || state == comment
			}
			if state == comment {
				state = plain
			}
			continue
		case state == comment:
		case state == single:
			if c == '\'' {
				state = plain
			}
		case c == '\\': // plain or double
			// The escaped byte (CRLF counts as one line end) is never
			// a quote, a comment or a statement boundary.
			if i+2 < len(data) && data[i+1] == '\r' && data[i+2] == '\n' {
				i++
			}
			if i+1 < len(data) {
				i++
				if data[i] == '\n' {
					line++
					// clean[line] stays false: the line continues
					// the statement.
				}
			}
		case state == double:
			if c == '"' {
				state = plain
			}
		case c == '\'':
			state = single
		case c == '"':
			state = double
		case c == '#':
			state = comment
		}
	}
	if n > 0 && len(data) > 0 && data[len(data)-1] != '\n' {
		// The last line has no newline: the end of the text is after it.
		clean[n] = state == plain || state == comment
	}
	return clean
}

// onlyPackage reports whether lines (whole statements) hold nothing but
// package statements, comments and blank lines: they parse on their own,
// outside any section (an option or list statement there is an error,
// even one that only removes an option).
func onlyPackage(lines []string) bool {
	f, err := uci.Parse("", strings.NewReader(strings.Join(lines, "\n")+"\n"))
	return err == nil && len(f.Sections) == 0
}

func blankOrComment(l string) bool {
	t := strings.TrimSpace(l)
	return t == "" || t[0] == '#'
}

// header reads the type and name of a `config` line by parsing it alone.
func header(l string) (typ, name string, err error) {
	f, err := uci.Parse("", strings.NewReader(l+"\n"))
	if err != nil || len(f.Sections) != 1 {
		return "", "", ErrLayout
	}
	return f.Sections[0].Type, f.Sections[0].Name, nil
}

// File is the parsed file (the text as given, edits not applied).
func (d *Doc) File() *uci.File { return d.file }

// Spans lists the sections' places in file order.
func (d *Doc) Spans() []Span { return slices.Clone(d.spans) }

func (d *Doc) span(start int) (Span, error) {
	for _, s := range d.spans {
		if s.Start == start {
			return s, nil
		}
	}
	return Span{}, fmt.Errorf("%s:%d: no section starts on this line", d.name, start)
}

// FormatSection gives the lines of s as uci writes it.
func FormatSection(s *uci.Section) ([]string, error) {
	var b bytes.Buffer
	if err := (&uci.File{Sections: []*uci.Section{s}}).Format(&b); err != nil {
		return nil, err
	}
	return strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n"), nil
}

// Replace puts s in place of the section starting at line start, editing
// it in place: comment and blank lines inside it stay, the options s keeps
// with the same values keep their lines (and their order), a changed
// option's line is rewritten where it stands (with its trailing comment),
// a removed option's line goes, and an option the section lacked is added
// after its last option. A section whose layout is beyond that (several
// statements on a line, a statement that removes an option, options on
// the config line, an option given twice with different values in the
// merged outcome) is written whole as uci writes it.
func (d *Doc) Replace(start int, s *uci.Section) error {
	sp, err := d.span(start)
	if err != nil {
		return err
	}
	lines, err := FormatSection(s)
	if err != nil {
		return err
	}
	if merged, ok := d.merge(sp, s, lines[0]); ok {
		lines = merged
	}
	d.repl[start] = lines
	return nil
}

// unit is a run of a section's lines that begins a statement and holds
// nothing but its continuation: a comment or blank line, or one option or
// list statement (that may go on over several lines).
type unit struct {
	lines   []string
	comment bool
	opt     *uci.Option // what the statement sets (not comment)
}

// merge edits the section at sp into s in place (see Replace); ok is false
// when its layout does not allow that. config is s's config line as
// FormatSection writes it.
func (d *Doc) merge(sp Span, s *uci.Section, config string) ([]string, bool) {
	// The config line must be a statement of its own on its own line.
	if !d.clean[sp.Start] {
		return nil, false
	}
	if f, err := uci.Parse("", strings.NewReader(d.lines[sp.Start-1]+"\n")); err != nil ||
		len(f.Sections) != 1 || len(f.Sections[0].Options) != 0 {
		return nil, false
	}
	var units []unit
	for i := sp.Start; i < sp.End; i++ { // i: index in d.lines of the unit's first line
		j := i + 1
		for j < sp.End && !d.clean[j] {
			j++
		}
		u := unit{lines: d.lines[i:j]}
		if j == i+1 && blankOrComment(d.lines[i]) {
			u.comment = true
		} else {
			w := strings.Fields(d.lines[i])
			f, err := uci.Parse("", strings.NewReader("config x\n"+strings.Join(u.lines, "\n")+"\n"))
			if err != nil || len(w) < 2 || len(f.Sections) != 1 || len(f.Sections[0].Options) != 1 {
				return nil, false
			}
			o := f.Sections[0].Options[0]
			kw := w[0]
			if (kw != "option" && kw != "o" && kw != "list" && kw != "l") || strings.Trim(w[1], `'"`) != o.Name {
				return nil, false
			}
			u.opt = o
		}
		units = append(units, u)
		i = j - 1
	}
	// What the section holds now, option by option.
	var body []string
	for _, u := range units {
		body = append(body, u.lines...)
	}
	head := d.lines[sp.Start-1]
	if ht, hn, err := header(head); err != nil || ht != s.Type || hn != s.Name {
		head = config
	}
	orig, err := uci.Parse("", strings.NewReader(d.lines[sp.Start-1]+"\n"+strings.Join(body, "\n")+"\n"))
	if err != nil || len(orig.Sections) != 1 {
		return nil, false
	}
	same := func(a, b *uci.Option) bool {
		return a != nil && b != nil && a.List == b.List && slices.Equal(a.Values, b.Values)
	}
	indent := "\t"
	for _, u := range units {
		if u.opt != nil {
			indent = u.lines[0][:len(u.lines[0])-len(strings.TrimLeft(u.lines[0], " \t"))]
			break
		}
	}
	format := func(o *uci.Option, indent, comment string) []string {
		kw := "option"
		if o.List {
			kw = "list"
		}
		var out []string
		for _, v := range o.Values {
			out = append(out, indent+kw+" "+o.Name+" "+uci.Quote(v))
		}
		if comment != "" && len(out) == 1 {
			out[0] += " " + comment
		}
		return out
	}
	out := []string{head}
	lastOpt := 1 // len(out) after the last option written or dropped
	done := map[string]bool{}
	for _, u := range units {
		if u.comment {
			out = append(out, u.lines...)
			continue
		}
		name := u.opt.Name
		want, have := s.Option(name), orig.Sections[0].Option(name)
		switch {
		case same(want, have):
			out = append(out, u.lines...) // unchanged: every line of it stays
		case want == nil || done[name]:
			// Removed, or already written at its first line: new
			// options still come after where it stood.
			lastOpt = len(out)
			continue
		default:
			// A statement on one line ends on it (units end where
			// the next statement begins): its comment may follow.
			l := u.lines[0]
			comment := ""
			if len(u.lines) == 1 {
				comment = trailingComment(l)
			}
			out = append(out, format(want, l[:len(l)-len(strings.TrimLeft(l, " \t"))], comment)...)
		}
		done[name] = true
		lastOpt = len(out)
	}
	var added []string
	for _, o := range s.Options {
		if !done[o.Name] {
			added = append(added, format(o, indent, "")...)
		}
	}
	out = slices.Insert(out, lastOpt, added...)
	// The outcome must mean s exactly.
	got, err := uci.Parse("", strings.NewReader(strings.Join(out, "\n")+"\n"))
	if err != nil || len(got.Sections) != 1 || got.Sections[0].Type != s.Type || got.Sections[0].Name != s.Name ||
		len(got.Sections[0].Options) != len(s.Options) {
		return nil, false
	}
	for _, o := range s.Options {
		if !same(o, got.Sections[0].Option(o.Name)) {
			return nil, false
		}
	}
	return out, true
}

// trailingComment returns the comment that ends line l ("# ..."), or "".
func trailingComment(l string) string {
	var q byte
	for i := 0; i < len(l); i++ {
		c := l[i]
		switch {
		case q == '\'':
			if c == '\'' {
				q = 0
			}
		case c == '\\':
			i++
		case q == '"':
			if c == '"' {
				q = 0
			}
		case c == '\'' || c == '"':
			q = c
		case c == '#':
			return strings.TrimSpace(l[i:])
		}
	}
	return ""
}

// Delete removes the section starting at line start.
func (d *Doc) Delete(start int) error {
	if _, err := d.span(start); err != nil {
		return err
	}
	d.repl[start] = nil
	return nil
}

// Append adds s at the end of the file, after a blank line.
func (d *Doc) Append(s *uci.Section) error {
	lines, err := FormatSection(s)
	if err != nil {
		return err
	}
	d.adds = append(d.adds, lines)
	return nil
}

// SetOption sets option name of the first section of type typ (and name
// sname, if not "") to value, in place of its `option` line when it has
// one on a line of its own, else as a new line at the end of the section;
// without such a section, one is appended.
func (d *Doc) SetOption(typ, sname, name, value string) error {
	if !uci.ValidName(name) || strings.ContainsAny(value, "\x00\n") {
		return fmt.Errorf("ucied: cannot set option %q to %q", name, value)
	}
	line := "\toption " + name + " " + uci.Quote(value)
	for _, s := range d.spans {
		if s.Type != typ || (sname != "" && s.Name != sname) {
			continue
		}
		if _, done := d.repl[s.Start]; done {
			return fmt.Errorf("%s:%d: section already edited", d.name, s.Start)
		}
		lines := slices.Clone(d.lines[s.Start-1 : s.End])
		set := false
		for i := 1; i < len(lines); i++ {
			at := s.Start - 1 + i // index in d.lines
			if !d.clean[at] {
				continue // inside a multi-line value
			}
			w := strings.Fields(lines[i])
			if len(w) >= 2 && (w[0] == "option" || w[0] == "o") && (w[1] == name || strings.Trim(w[1], `'"`) == name) {
				// The line is replaced whole: the statement must end on it.
				if set || strings.Contains(lines[i], ";") || !d.clean[at+1] {
					return fmt.Errorf("%s:%d: option %s: %w", d.name, s.Start+i, name, ErrLayout)
				}
				indent := lines[i][:len(lines[i])-len(strings.TrimLeft(lines[i], " \t"))]
				lines[i] = indent + strings.TrimLeft(line, "\t")
				set = true
			}
		}
		if !set {
			lines = append(lines, line)
		}
		d.repl[s.Start] = lines
		return nil
	}
	sec := &uci.Section{Type: typ, Name: sname, Options: []*uci.Option{{Name: name, Values: []string{value}}}}
	return d.Append(sec)
}

// Bytes gives the edited text.
func (d *Doc) Bytes() []byte {
	if len(d.repl) == 0 && len(d.adds) == 0 {
		return append([]byte(nil), d.data...)
	}
	var out []string
	next := 1 // next original line to copy
	for _, s := range d.spans {
		lines, ok := d.repl[s.Start]
		if !ok {
			continue
		}
		out = append(out, d.lines[next-1:s.Start-1]...)
		next = s.End + 1
		if lines == nil {
			// A deleted section takes the blank line after it along,
			// so that no double blank line is left.
			if next <= len(d.lines) && strings.TrimSpace(d.lines[next-1]) == "" {
				next++
			} else if next > len(d.lines) {
				// The last section: the blank lines above it go.
				for len(out) > 0 && strings.TrimSpace(out[len(out)-1]) == "" {
					out = out[:len(out)-1]
				}
			}
			continue
		}
		out = append(out, lines...)
	}
	out = append(out, d.lines[next-1:]...)
	for _, a := range d.adds {
		if len(out) > 0 && strings.TrimSpace(out[len(out)-1]) != "" {
			out = append(out, "")
		}
		out = append(out, a...)
	}
	if len(out) == 0 {
		return nil
	}
	s := strings.Join(out, "\n")
	if d.final || len(d.adds) > 0 {
		s += "\n"
	}
	return []byte(s)
}

// WriteFile replaces the file at path by data atomically: a temporary
// file in the same directory, written, synced and renamed over path, then
// the directory synced. The file keeps path's permission bits (perm when
// path does not exist).
func WriteFile(path string, data []byte, perm os.FileMode) error {
	if fi, err := os.Stat(path); err == nil {
		perm = fi.Mode().Perm()
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
