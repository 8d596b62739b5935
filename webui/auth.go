package webui

import (
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/pcpgw/pcpgw/internal/crand"
)

// kdfParams are the argon2id parameters of new hashes: RFC 9106 §4's
// second recommended option scaled to a router (19 MiB, 2 passes, as
// OWASP's password storage guidance gives for argon2id).
type kdfParams struct {
	mem     uint32 // KiB
	time    uint32
	threads uint8
}

var defaultKDF = kdfParams{mem: 19 * 1024, time: 2, threads: 1}

// Bounds on the parameters of a hash read from the file, so that a hand
// written hash cannot make every login take the router's memory.
const (
	maxKDFMem     = 64 * 1024
	maxKDFTime    = 10
	maxKDFThreads = 4
	saltLen       = 16
	keyLen        = 32
)

// ErrBadHash is returned for a password_hash that is not an argon2id
// hash in the PHC string format, or has parameters beyond pcpgw's bounds.
var ErrBadHash = errors.New("webui: password_hash is not an argon2id hash pcpgw can check")

// HashPassword hashes pw with argon2id and a random salt, in the PHC
// string format:
//
//	$argon2id$v=19$m=19456,t=2,p=1$<salt, base64 without padding>$<key>
func HashPassword(pw string) (string, error) {
	return hashWith(pw, defaultKDF)
}

func hashWith(pw string, p kdfParams) (string, error) {
	if pw == "" {
		return "", errors.New("webui: empty password")
	}
	salt := make([]byte, saltLen)
	if err := crand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(pw), salt, p.time, p.mem, p.threads, keyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.mem, p.time, p.threads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// CheckPassword reports whether pw matches hash; the error is ErrBadHash
// (wrapped) when hash cannot be read.
func CheckPassword(hash, pw string) (bool, error) {
	f := strings.Split(hash, "$")
	if len(f) != 6 || f[0] != "" || f[1] != "argon2id" || f[2] != "v="+strconv.Itoa(argon2.Version) {
		return false, ErrBadHash
	}
	var p kdfParams
	for _, kv := range strings.Split(f[3], ",") {
		k, v, _ := strings.Cut(kv, "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return false, fmt.Errorf("%w: %s", ErrBadHash, kv)
		}
		switch k {
		case "m":
			p.mem = uint32(n)
		case "t":
			p.time = uint32(n)
		case "p":
			p.threads = uint8(min(n, 255))
		default:
			return false, fmt.Errorf("%w: %s", ErrBadHash, kv)
		}
	}
	if p.mem < 8 || p.mem > maxKDFMem || p.time < 1 || p.time > maxKDFTime || p.threads < 1 || p.threads > maxKDFThreads {
		return false, fmt.Errorf("%w: parameters %s out of bounds", ErrBadHash, f[3])
	}
	b64 := base64.RawStdEncoding
	salt, err1 := b64.DecodeString(f[4])
	key, err2 := b64.DecodeString(f[5])
	if err1 != nil || err2 != nil || len(salt) < 8 || len(key) < 16 || len(key) > 64 {
		return false, fmt.Errorf("%w: bad salt or key", ErrBadHash)
	}
	got := argon2.IDKey([]byte(pw), salt, p.time, p.mem, p.threads, uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1, nil
}

// randomToken is 128 random bits in hex.
func randomToken() string {
	var b [16]byte
	crand.Must(b[:])
	return hex.EncodeToString(b[:])
}

// session is one logged-in browser.
type session struct {
	csrf    string
	hash    string // the password_hash it logged in with: a new password ends it
	created time.Time
	used    time.Time
}

// sessions is the bounded server-side store: beyond max sessions, the
// least recently used one goes.
type sessions struct {
	mu   sync.Mutex
	m    map[string]*session
	max  int
	idle time.Duration // a session unused for this long ends
	life time.Duration // and none lasts longer than this
}

func (s *sessions) create(now time.Time, hash string) (id string, sess session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire(now)
	for len(s.m) >= s.max {
		var oldest string
		for k, v := range s.m {
			if oldest == "" || v.used.Before(s.m[oldest].used) {
				oldest = k
			}
		}
		delete(s.m, oldest)
	}
	id = randomToken()
	ss := &session{csrf: randomToken(), hash: hash, created: now, used: now}
	s.m[id] = ss
	return id, *ss
}

func (s *sessions) get(id string, now time.Time) (session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.m[id]
	if !ok {
		return session{}, false
	}
	if now.Sub(ss.used) > s.idle || now.Sub(ss.created) > s.life {
		delete(s.m, id)
		return session{}, false
	}
	ss.used = now
	return *ss, true
}

func (s *sessions) remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
}

func (s *sessions) expire(now time.Time) {
	for k, v := range s.m {
		if now.Sub(v.used) > s.idle || now.Sub(v.created) > s.life {
			delete(s.m, k)
		}
	}
}

// bucket is a token bucket: burst attempts at once, then one per every.
type bucket struct {
	tokens float64
	last   time.Time
}

func (b *bucket) take(now time.Time, burst int, every time.Duration) bool {
	if b.last.IsZero() {
		b.tokens = float64(burst)
	} else if d := now.Sub(b.last); d > 0 {
		b.tokens = min(float64(burst), b.tokens+float64(d)/float64(every))
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// limiter rate-limits login attempts per source address and over all
// addresses; the per-address table is bounded.
type limiter struct {
	mu          sync.Mutex
	global      bucket
	per         map[netip.Addr]*bucket
	maxAddrs    int
	burst       int // per address
	every       time.Duration
	globalBurst int
	globalEvery time.Duration
}

func (l *limiter) allow(a netip.Addr, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.per[a]
	if !ok {
		if len(l.per) >= l.maxAddrs {
			// Forget the addresses whose buckets have refilled; if none
			// has, refuse newcomers (the global bucket still bounds all).
			for k, v := range l.per {
				if now.Sub(v.last) >= time.Duration(l.burst)*l.every {
					delete(l.per, k)
				}
			}
			if len(l.per) >= l.maxAddrs {
				return false
			}
		}
		b = &bucket{}
		l.per[a] = b
	}
	// Look at the address's bucket first so that one noisy host does
	// not drain the global one beyond its own share.
	if !b.take(now, l.burst, l.every) {
		return false
	}
	return l.global.take(now, l.globalBurst, l.globalEvery)
}
