package portset

import (
	"os"
	"path/filepath"
	"testing"
)

func FuzzParse(f *testing.F) {
	for _, s := range []string{"4112-4127 8208-8223", "5000", "1-65535", "8208-8223,4112-4127", "0", "3-1", v6plus.String()} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := Parse(in)
		if err != nil {
			return
		}
		again, err := Parse(s.String())
		if err != nil {
			t.Fatalf("reparse of %q: %v", s.String(), err)
		}
		if !again.Equal(s) || again.String() != s.String() {
			t.Fatalf("reparse of %q gives %q", s.String(), again.String())
		}
		if s.Contains(0) {
			t.Fatal("port 0 in a set")
		}
		prev := -1
		for _, r := range s.Ranges() {
			if int(r.Lo) <= prev+1 || r.Hi < r.Lo {
				t.Fatalf("ranges not sorted, disjoint and apart: %v", s.Ranges())
			}
			prev = int(r.Hi)
		}
	})
}

func FuzzParseMapRules(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.rules"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseMapRules(b)
		if err != nil {
			return
		}
		if !r.Addr.Is4() {
			t.Fatalf("address %v", r.Addr)
		}
		if r.Full != r.Ports.Empty() {
			t.Fatalf("full %v with ports %v", r.Full, r.Ports)
		}
		if r.Ports.Contains(0) {
			t.Fatal("port 0 in a set")
		}
	})
}
