package main

import (
	"bytes"
	"io"
	"strings"
	"unicode/utf8"
)

// columns lines up tab-separated cells, two spaces apart, as
// text/tabwriter does for these tables (every line of a table has the
// same cells), without its 9 KB on the router. Write takes whole lines;
// Flush writes them out.
type columns struct {
	w     io.Writer
	lines [][]string
	part  []byte
}

func newColumns(w io.Writer) *columns { return &columns{w: w} }

func (c *columns) Write(b []byte) (int, error) {
	c.part = append(c.part, b...)
	for {
		i := bytes.IndexByte(c.part, '\n')
		if i < 0 {
			return len(b), nil
		}
		c.lines = append(c.lines, strings.Split(string(c.part[:i]), "\t"))
		c.part = c.part[i+1:]
	}
}

// Flush writes the lines: each cell but a line's last padded to the
// widest cell of its column (in characters), then two spaces.
func (c *columns) Flush() error {
	if len(c.part) > 0 {
		c.Write([]byte("\n"))
	}
	var width []int
	for _, l := range c.lines {
		for i, cell := range l[:len(l)-1] {
			if i == len(width) {
				width = append(width, 0)
			}
			width[i] = max(width[i], utf8.RuneCountInString(cell))
		}
	}
	var b strings.Builder
	for _, l := range c.lines {
		for i, cell := range l {
			b.WriteString(cell)
			if i < len(l)-1 {
				b.WriteString(strings.Repeat(" ", width[i]-utf8.RuneCountInString(cell)+2))
			}
		}
		b.WriteByte('\n')
	}
	c.lines = nil
	_, err := io.WriteString(c.w, b.String())
	return err
}
