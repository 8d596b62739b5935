package main

import (
	"fmt"
	"strings"
	"testing"
	"text/tabwriter"
)

// TestColumns: the same layout as text/tabwriter (min width 0, padding 2,
// spaces) for tables whose lines have the same cells, multi-byte text
// included, and a last line without its newline.
func TestColumns(t *testing.T) {
	in := "PROTO\tEXTERNAL\tDESCRIPTION\ntcp\t203.0.113.1:18080\tjeu vidéo\nudp\t-\tx\n"
	var want, got strings.Builder
	tw := tabwriter.NewWriter(&want, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, in)
	tw.Flush()
	c := newColumns(&got)
	fmt.Fprint(c, in[:10])
	fmt.Fprint(c, in[10:])
	c.Flush()
	if got.String() != want.String() {
		t.Errorf("got\n%q\nwant\n%q", got.String(), want.String())
	}
	got.Reset()
	c = newColumns(&got)
	fmt.Fprint(c, "a\tb")
	c.Flush()
	if got.String() != "a  b\n" {
		t.Errorf("unterminated line: %q", got.String())
	}
}
