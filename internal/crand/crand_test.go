package crand

import (
	"bytes"
	"testing"
)

func TestRead(t *testing.T) {
	for _, n := range []int{0, 1, 12, 32, 300, 1 << 16} {
		a, b := make([]byte, n), make([]byte, n)
		if err := Read(a); err != nil {
			t.Fatal(err)
		}
		Must(b)
		if n >= 12 && bytes.Equal(a, b) {
			t.Errorf("%d bytes: two reads gave the same bytes", n)
		}
		if n >= 32 && bytes.Equal(a, make([]byte, n)) {
			t.Errorf("%d bytes: all zero", n)
		}
	}
}
