package uci

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// File is a parsed UCI file: what libuci holds after loading it. Comments
// and layout are not kept.
type File struct {
	// Name is the name given to Parse; errors carry it.
	Name string
	// Package is the name of the first `package` statement, "" if none.
	Package string
	// Sections in file order. A named section that appears again is merged
	// into its first appearance, as uci does.
	Sections []*Section
}

// Section is one `config TYPE ['name']` block.
type Section struct {
	Type string
	// Name is "" for an anonymous section.
	Name string
	// Line is the line of the section's first `config` statement.
	Line    int
	Options []*Option
}

// Option is an `option` (one value) or a `list` (one or more values). A
// `list` statement for a name that holds an `option` turns it into a list
// whose first item is the old value; an `option` statement replaces
// whatever the name held; an `option` with an empty value removes it.
type Option struct {
	Name string
	// List is true when the last statement that set it was `list`.
	List bool
	// Values holds exactly one value for an option, one or more for a list.
	Values []string
	// Lines holds the line of each value's statement, parallel to Values.
	Lines []int
}

// Line is the line of the option's first value.
func (o *Option) Line() int {
	if len(o.Lines) == 0 {
		return 0
	}
	return o.Lines[0]
}

// Error is a syntax error at a line of a file.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string {
	if e.File == "" {
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// Option returns the section's option called name, or nil.
func (s *Section) Option(name string) *Option {
	for _, o := range s.Options {
		if o.Name == name {
			return o
		}
	}
	return nil
}

// Section returns the named section, or nil.
func (f *File) Section(name string) *Section {
	if name == "" {
		return nil
	}
	for _, s := range f.Sections {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// OfType returns the sections of the given type, in file order.
func (f *File) OfType(typ string) []*Section {
	var out []*Section
	for _, s := range f.Sections {
		if s.Type == typ {
			out = append(out, s)
		}
	}
	return out
}

// MaxSize is the largest input Parse accepts.
const MaxSize = 1 << 20

// Parse reads a UCI file. name is used in errors (*Error).
func Parse(name string, r io.Reader) (*File, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return nil, &Error{File: name, Msg: err.Error()}
	}
	if len(data) > MaxSize {
		return nil, &Error{File: name, Line: 1, Msg: fmt.Sprintf("file larger than %d bytes", MaxSize)}
	}
	p := &parser{f: &File{Name: name}, buf: data, line: 1}
	if err := p.run(); err != nil {
		return nil, err
	}
	return p.f, nil
}

type parser struct {
	f    *File
	buf  []byte
	pos  int
	line int
	cur  *Section
	// havePackage is set after the first package statement.
	havePackage bool
}

func (p *parser) errorf(format string, args ...any) error {
	return &Error{File: p.f.Name, Line: p.line, Msg: fmt.Sprintf(format, args...)}
}

// isSpace is C's isspace in the C locale.
func isSpace(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\v', '\f', '\r':
		return true
	}
	return false
}

func (p *parser) peek() int {
	if p.pos >= len(p.buf) {
		return -1
	}
	return int(p.buf[p.pos])
}

// next consumes one byte, counting lines.
func (p *parser) next() byte {
	c := p.buf[p.pos]
	p.pos++
	if c == '\n' {
		p.line++
	}
	return c
}

// skipBlank skips whitespace other than newlines.
func (p *parser) skipBlank() {
	for c := p.peek(); c >= 0 && c != '\n' && isSpace(byte(c)); c = p.peek() {
		p.next()
	}
}

// skipLine skips to the end of the line, leaving the newline.
func (p *parser) skipLine() {
	for c := p.peek(); c >= 0 && c != '\n'; c = p.peek() {
		p.next()
	}
}

func (p *parser) run() error {
	if i := bytes.IndexByte(p.buf, 0); i >= 0 {
		p.line = 1 + bytes.Count(p.buf[:i], []byte{'\n'})
		return p.errorf("NUL byte")
	}
	for {
		// Statements start after any whitespace, newlines included.
		for c := p.peek(); c >= 0 && isSpace(byte(c)); c = p.peek() {
			p.next()
		}
		if p.peek() < 0 {
			return nil
		}
		if p.peek() == '#' {
			p.skipLine()
			continue
		}
		line := p.line
		start := p.pos
		for c := p.peek(); c >= 0 && !isSpace(byte(c)); c = p.peek() {
			p.next()
		}
		word := string(p.buf[start:p.pos])
		args, err := p.args()
		if err != nil {
			return err
		}
		// Errors about the statement name its first line.
		end := p.line
		p.line = line
		switch word {
		case "package", "p":
			err = p.pkg(args)
		case "config", "c":
			err = p.config(args)
		case "option", "o":
			err = p.option(args, false)
		case "list", "l":
			err = p.option(args, true)
		default:
			err = p.errorf("invalid command %q", word)
		}
		if err != nil {
			return err
		}
		p.line = end
	}
}

// args reads the arguments of a statement up to the end of the line, a ';'
// or a comment.
func (p *parser) args() ([]string, error) {
	var args []string
	for {
		p.skipBlank()
		switch p.peek() {
		case -1, '\n':
			return args, nil
		case ';':
			p.next()
			return args, nil
		case '#':
			p.skipLine()
			return args, nil
		}
		arg, end, err := p.word()
		if err != nil {
			return nil, err
		}
		args = append(args, arg)
		if end {
			return args, nil
		}
	}
}

// word reads one argument: bare text, '...' and "..." pieces run together
// until whitespace. A backslash outside single quotes takes the next byte
// as it is, or joins the next line when it ends a line. end reports that a
// ';' or a comment ended the statement.
func (p *parser) word() (arg string, end bool, err error) {
	var b strings.Builder
	for {
		c := p.peek()
		switch {
		case c < 0 || isSpace(byte(c)):
			return b.String(), false, nil
		case c == '#':
			p.skipLine()
			return b.String(), true, nil
		case c == ';':
			p.next()
			return b.String(), true, nil
		case c == '\\':
			p.next()
			p.backslash(&b)
		case c == '\'':
			open := p.line
			p.next()
			for {
				if p.peek() < 0 {
					p.line = open
					return "", false, p.errorf("EOF with unterminated ' (opened here)")
				}
				ch := p.next()
				if ch == '\'' {
					break
				}
				b.WriteByte(ch)
			}
		case c == '"':
			open := p.line
			p.next()
			for {
				if p.peek() < 0 {
					p.line = open
					return "", false, p.errorf("EOF with unterminated \" (opened here)")
				}
				ch := p.next()
				if ch == '"' {
					break
				}
				if ch == '\\' {
					p.backslash(&b)
					continue
				}
				b.WriteByte(ch)
			}
		default:
			b.WriteByte(p.next())
		}
	}
}

// backslash handles what follows a backslash: the end of a line (LF, CRLF
// or EOF) is dropped, any other byte is taken literally.
func (p *parser) backslash(b *strings.Builder) {
	switch c := p.peek(); {
	case c < 0:
	case c == '\n':
		p.next()
	case c == '\r' && p.pos+1 < len(p.buf) && p.buf[p.pos+1] == '\n':
		p.next()
		p.next()
	default:
		b.WriteByte(p.next())
	}
}

// extra rejects arguments beyond n that are not empty.
func (p *parser) extra(args []string, n int) error {
	for _, a := range args[min(n, len(args)):] {
		if a != "" {
			return p.errorf("too many arguments")
		}
	}
	return nil
}

func arg(args []string, i int) string {
	if i < len(args) {
		return args[i]
	}
	return ""
}

func (p *parser) pkg(args []string) error {
	name := arg(args, 0)
	if name == "" {
		return p.errorf("package without name")
	}
	if !ValidPackage(name) {
		return p.errorf("invalid character in package name %q", name)
	}
	if err := p.extra(args, 1); err != nil {
		return err
	}
	if !p.havePackage {
		p.f.Package = name
		p.havePackage = true
	}
	return nil
}

func (p *parser) config(args []string) error {
	typ, name := arg(args, 0), arg(args, 1)
	if typ == "" {
		return p.errorf("config without type")
	}
	if !ValidType(typ) {
		return p.errorf("invalid character in section type %q", typ)
	}
	if name != "" && !ValidName(name) {
		return p.errorf("invalid character in section name %q", name)
	}
	if err := p.extra(args, 2); err != nil {
		return err
	}
	if s := p.f.Section(name); s != nil {
		if s.Type != typ {
			return p.errorf("section %q of type %q overwrites prior section of type %q", name, typ, s.Type)
		}
		p.cur = s
		return nil
	}
	p.cur = &Section{Type: typ, Name: name, Line: p.line}
	p.f.Sections = append(p.f.Sections, p.cur)
	return nil
}

func (p *parser) option(args []string, list bool) error {
	if p.cur == nil {
		return p.errorf("option/list command found before the first section")
	}
	name, value := arg(args, 0), arg(args, 1)
	if name == "" {
		return p.errorf("option without name")
	}
	if !ValidName(name) {
		return p.errorf("invalid character in option name %q", name)
	}
	if err := p.extra(args, 2); err != nil {
		return err
	}
	s := p.cur
	i := -1
	for j, o := range s.Options {
		if o.Name == name {
			i = j
			break
		}
	}
	switch {
	case list && i >= 0:
		o := s.Options[i]
		o.List = true
		o.Values = append(o.Values, value)
		o.Lines = append(o.Lines, p.line)
	case list:
		s.Options = append(s.Options, &Option{Name: name, List: true, Values: []string{value}, Lines: []int{p.line}})
	case value == "" && i >= 0:
		s.Options = append(s.Options[:i], s.Options[i+1:]...)
	case value == "":
	case i >= 0:
		s.Options[i] = &Option{Name: name, Values: []string{value}, Lines: []int{p.line}}
	default:
		s.Options = append(s.Options, &Option{Name: name, Values: []string{value}, Lines: []int{p.line}})
	}
	return nil
}

// ValidName reports whether s is a valid section or option name: one or
// more ASCII letters, digits and underscores.
func ValidName(s string) bool { return validStr(s, true, false) }

// ValidPackage reports whether s is a valid package name: a name that may
// also hold '-'.
func ValidPackage(s string) bool { return validStr(s, true, true) }

// ValidType reports whether s is a valid section type: printable ASCII
// without spaces.
func ValidType(s string) bool { return validStr(s, false, false) }

func validStr(s string, name, pkg bool) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_':
		case c == '-' && pkg:
		case name || c < 33 || c > 126:
			return false
		}
	}
	return true
}

// Format writes f in the canonical form of `uci export`: a package line
// if f has a package, then each section, its options and lists one per
// line, every value single-quoted. Parsing the output gives back f (line
// numbers aside). It fails on names, types or values that UCI cannot hold.
func (f *File) Format(w io.Writer) error {
	bw := bufio.NewWriter(w)
	if err := f.format(bw); err != nil {
		return err
	}
	return bw.Flush()
}

var errNUL = errors.New("value holds a NUL byte")

func (f *File) format(w *bufio.Writer) error {
	sep := ""
	if f.Package != "" {
		if !ValidPackage(f.Package) {
			return fmt.Errorf("uci: invalid package name %q", f.Package)
		}
		fmt.Fprintf(w, "package %s\n", f.Package)
		sep = "\n"
	}
	for _, s := range f.Sections {
		if !ValidType(s.Type) {
			return fmt.Errorf("uci: invalid section type %q", s.Type)
		}
		if s.Name != "" && !ValidName(s.Name) {
			return fmt.Errorf("uci: invalid section name %q", s.Name)
		}
		fmt.Fprintf(w, "%sconfig %s", sep, quoteType(s.Type))
		sep = "\n"
		if s.Name != "" {
			fmt.Fprintf(w, " '%s'", s.Name)
		}
		w.WriteByte('\n')
		seen := make(map[string]bool, len(s.Options))
		for _, o := range s.Options {
			if !ValidName(o.Name) {
				return fmt.Errorf("uci: section %s: invalid option name %q", s.Type, o.Name)
			}
			if seen[o.Name] {
				return fmt.Errorf("uci: section %s: option %q twice", s.Type, o.Name)
			}
			seen[o.Name] = true
			kw := "option"
			switch {
			case o.List && len(o.Values) > 0:
				kw = "list"
			case len(o.Values) != 1 || o.Values[0] == "":
				return fmt.Errorf("uci: section %s: option %q needs exactly one non-empty value", s.Type, o.Name)
			}
			for _, v := range o.Values {
				if strings.IndexByte(v, 0) >= 0 {
					return fmt.Errorf("uci: section %s: option %q: %w", s.Type, o.Name, errNUL)
				}
				fmt.Fprintf(w, "\t%s %s %s\n", kw, o.Name, Quote(v))
			}
		}
	}
	return nil
}

// quoteType writes a section type bare when that is unambiguous.
func quoteType(t string) string {
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return Quote(t)
		}
	}
	return t
}

// Quote single-quotes s for a UCI file. A single quote in s closes the
// quotes, is written escaped with a backslash, and opens them again.
func Quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
