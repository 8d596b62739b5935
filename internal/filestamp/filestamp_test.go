package filestamp

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestOf(t *testing.T) {
	name := filepath.Join(t.TempDir(), "f")
	if !Of(name).Missing() || !Of("").Missing() {
		t.Fatal("a missing file has a stamp")
	}
	if err := os.WriteFile(name, []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	a := Of(name)
	if a.Missing() || Of(name) != a {
		t.Fatal("stamp not stable")
	}
	os.WriteFile(name, []byte("ab"), 0o644) // another size
	if Of(name) == a {
		t.Error("a changed size keeps the stamp")
	}
	b := Of(name)
	os.Chtimes(name, time.Now(), time.Now().Add(time.Hour)) // another time
	if Of(name) == b {
		t.Error("a changed time keeps the stamp")
	}
}
