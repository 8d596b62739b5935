package tolerance

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"testing"
)

// The tables of documented differences: a section "# Differences from
// miniupnpd" of a package doc whose code block rows read
//
//	case | miniupnpd outcome | pcpgw outcome | why the difference is kept
//
// (a row "case | miniupnpd | pcpgw | why" is the heading). UPnP IGD cases
// (ids starting with igd, ifc or fw) belong to upnpigd/doc.go, NAT-PMP and PCP
// cases to natpmp/doc.go.
var docFiles = []string{"../upnpigd/doc.go", "../natpmp/doc.go"}

const docSection = "# Differences from miniupnpd"

// documented is one row of a table.
type documented struct {
	id, miniupnpd, pcpgw, why string
	where                     string // file:line
}

// docFileFor is the file whose table lists case id.
func docFileFor(id string) string {
	if strings.HasPrefix(id, "igd") || strings.HasPrefix(id, "ifc") || strings.HasPrefix(id, "fw") {
		return docFiles[0]
	}
	return docFiles[1]
}

// readDocumented reads the table of file.
func readDocumented(file string) ([]documented, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []documented
	in := false
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		text, isComment := strings.CutPrefix(line, "//")
		switch {
		case !isComment:
			in = false
			continue
		case strings.HasPrefix(text, " # "):
			in = strings.HasPrefix(text, " "+docSection)
			continue
		case !in || !strings.HasPrefix(text, "\t"):
			continue
		}
		f := strings.Split(strings.TrimPrefix(text, "\t"), " | ")
		if len(f) == 1 {
			continue // a code block line that is no row
		}
		if len(f) != 4 {
			return nil, fmt.Errorf("%s:%d: a row has 4 fields separated by \" | \": %q", file, n, text)
		}
		if f[0] == "case" {
			continue
		}
		d := documented{id: f[0], miniupnpd: f[1], pcpgw: f[2], why: f[3], where: fmt.Sprintf("%s:%d", file, n)}
		if d.miniupnpd == d.pcpgw {
			return nil, fmt.Errorf("%s: %q: both outcomes are %q: no difference", d.where, d.id, d.pcpgw)
		}
		if d.why == "" {
			return nil, fmt.Errorf("%s: %q: no reason", d.where, d.id)
		}
		out = append(out, d)
	}
	return out, sc.Err()
}

// readAllDocumented reads every table and checks that each case is
// listed once and in its file.
func readAllDocumented() (map[string]documented, error) {
	all := map[string]documented{}
	for _, file := range docFiles {
		rows, err := readDocumented(file)
		if err != nil {
			return nil, err
		}
		for _, d := range rows {
			if prev, dup := all[d.id]; dup {
				return nil, fmt.Errorf("%s: %q listed again (first at %s)", d.where, d.id, prev.where)
			}
			if want := docFileFor(d.id); want != file {
				return nil, fmt.Errorf("%s: %q belongs to the table of %s", d.where, d.id, want)
			}
			all[d.id] = d
		}
	}
	return all, nil
}

// TestDocumentedDifferences checks the tables without the lab: each row
// parses, names a case of the corpus, is listed once, in the right file,
// and gives a reason.
func TestDocumentedDifferences(t *testing.T) {
	docs, err := readAllDocumented()
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, c := range corpus() {
		if ids[c.id] {
			t.Errorf("case %q twice in the corpus", c.id)
		}
		ids[c.id] = true
	}
	for id, d := range docs {
		if !ids[id] {
			t.Errorf("%s: %q is no case of the corpus", d.where, id)
		}
	}
	t.Logf("%d cases, %d documented differences", len(ids), len(docs))
}
