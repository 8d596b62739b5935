// Package crand fills buffers with random bytes from the kernel
// (getrandom(2), the same source crypto/rand reads on Linux): PCP nonces,
// GENA subscription IDs, session tokens and password salts. It exists to
// keep crypto/rand out of the daemon: crypto/rand links the FIPS 140 DRBG
// (AES, GCM, SHA-3, SHA-512, HMAC) and math/big, about 70 KB on MIPS,
// for what one system call does (the router's flash budget, issue 15).
package crand

import (
	"errors"

	"golang.org/x/sys/unix"
)

// Read fills b with random bytes. getrandom blocks only until the
// kernel's pool is first seeded (early at boot); it then never fails for
// a buffer this size, but an error is returned rather than a buffer left
// partly zero.
func Read(b []byte) error {
	for len(b) > 0 {
		n, err := unix.Getrandom(b, 0)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return err
		case n <= 0:
			return errors.New("crand: getrandom returned no bytes")
		}
		b = b[n:]
	}
	return nil
}

// Must is Read for callers that cannot go on without randomness (a
// nonce): it panics when the kernel gives none, which it does not.
func Must(b []byte) {
	if err := Read(b); err != nil {
		panic("crand: " + err.Error())
	}
}
