package mapping

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pcpgw/pcpgw/internal/crand"
	"github.com/pcpgw/pcpgw/pcp"
)

// The journal: every change of the table is appended to
// StateDir/journal.<generation> before the answer to the request that
// made it goes out (see doc.go, "Persistence"). A record is one line:
//
//	crc32 (8 hex digits, IEEE, of the JSON) SP JSON LF
//
// with the JSON one of
//
//	{"op":"put","m":{...}}       a mapping's whole state (as in the state file)
//	{"op":"exp","id":5,"exp":T}  only its lease end moved: T in Unix seconds
//	{"op":"del","id":5}          it was removed
//	{"op":"undone","nonce":N}    an unanswered request was undone upstream
//	{"op":"head","head":{...}}   the provider's external address, the upstream kind
//
// A torn or corrupt line ends the replay of its file.

// journalPrefix starts the journal files' names in Config.StateDir:
// journal.<generation>, the generation in decimal.
const journalPrefix = "journal."

// compactMin is the least size at which the journal is compacted into
// the state file: when it holds at least that much, and at least as much
// as the last state file (a variable for tests).
var compactMin int64 = 256 << 10

// compactRetry is how often a failed compaction is tried again.
const compactRetry = 5 * time.Second

// compactHook, when set (tests), is called at each step of a compaction:
// "rotated" (the new journal open, the state file not yet written) and
// "written" (the state file in place, the old journals not yet removed).
var compactHook func(step string)

// mark says what of an entry awaits the journal.
type mark uint8

const (
	markNone mark = iota
	markExp       // only its lease end moved
	markPut       // anything else: its whole state
)

// ErrNotSaved: the change could not be made durable (the journal or the
// state file cannot be written); the request that made it is answered
// with a failure.
var ErrNotSaved = errors.New("mapping: the change could not be saved")

// journal is the append-only log of the table's changes since the last
// state file. Changes are marked under Core.mu (cheap: a pointer in a
// list); whoever needs them durable collects everything marked into one
// group and writes it with one write(2) (group commit: the requests that
// arrive meanwhile wait and go together in the next group).
type journal struct {
	dir string

	// Under Core.mu: what changed since the last collection.
	dirty  []*entry // entries with jmark != markNone
	dels   []uint32 // IDs removed
	undone []Nonce  // unanswered requests undone upstream
	head   bool     // external address or upstream kind changed
	// collected counts the groups collected; a change marked now goes
	// in group collected+1.
	collected uint64

	// cmu serialises compactions (a state file naming an older
	// generation must never replace one naming a newer).
	cmu sync.Mutex
	// wmu is held by the writer of a group, and while the file is
	// rotated.
	wmu  sync.Mutex
	f    *os.File // nil before the first compaction
	gen  uint64   // f's generation
	size int64    // bytes in f
	snap int64    // size of the last state file
	buf  []byte
	// broken is why the last write failed: nothing is durable until a
	// compaction writes a whole state file again.
	broken error
	// durable counts the groups written (or covered by a state file).
	durable atomic.Uint64

	writes atomic.Uint64 // write(2) calls (tests, benchmarks)
}

// journalRec is one record (the JSON of a journal line).
type journalRec struct {
	Op    string        `json:"op"`
	ID    uint32        `json:"id,omitempty"`
	Exp   int64         `json:"exp,omitempty"`
	Nonce string        `json:"nonce,omitempty"`
	M     *stateMapping `json:"m,omitempty"`
	Head  *journalHead  `json:"head,omitempty"`
}

// journalHead is what a head record holds: the state file's head fields
// that change while pcpgw runs.
type journalHead struct {
	External string `json:"external,omitempty"`
	Upstream string `json:"upstream,omitempty"`
}

// ceilSecond rounds t up to a whole second (zero stays zero): lease ends
// as the journal and the state file record them, so that a renewal
// within the same second needs no record, and a restored lease never ends
// before the one the client was given.
func ceilSecond(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	t = t.Round(0) // no monotonic reading
	if f := t.Truncate(time.Second); !f.Equal(t) {
		return f.Add(time.Second)
	}
	return t
}

// markLocked notes that e changed (m: how); the change goes in the next
// group.
func (c *Core) markLocked(e *entry, m mark) {
	j := c.jr
	if j == nil {
		return
	}
	if e.jmark == markNone {
		j.dirty = append(j.dirty, e)
	}
	e.jmark = max(e.jmark, m)
	e.jwant = uint32(j.collected + 1)
}

// markLeaseLocked notes that only e's lease end moved, from before. Lease
// ends are recorded rounded up to the second: one that stays within the
// same second needs no record (what is on record already holds).
func (c *Core) markLeaseLocked(e *entry, before time.Time) {
	if e.jmark == markNone && ceilSecond(e.Expires).Equal(ceilSecond(before)) {
		return
	}
	c.markLocked(e, markExp)
}

// wantLocked is the group holding e's last change: e.jwant, which keeps
// its low 32 bits, taken back to the group at most 2^32 before the next
// one (an entry untouched for longer is long durable: a wait for it finds
// nothing to write).
func (c *Core) wantLocked(e *entry) uint64 {
	if c.jr == nil {
		return 0
	}
	next := c.jr.collected + 1
	return next - uint64(uint32(next)-e.jwant)
}

// markAllLocked marks every mapping changed (a change of the upstream, of
// the WAN or external address moves them all; rare).
func (c *Core) markAllLocked() {
	for _, e := range c.order {
		c.markLocked(e, markPut)
	}
	c.markHeadLocked()
}

// markHeadLocked notes that the external address or the upstream kind
// changed.
func (c *Core) markHeadLocked() {
	if c.jr != nil {
		c.jr.head = true
	}
}

// markRemovedLocked notes that e was taken out of the table.
func (c *Core) markRemovedLocked(e *entry) {
	j := c.jr
	if j == nil {
		return
	}
	j.dels = append(j.dels, e.ID)
	e.jwant = uint32(j.collected + 1)
}

// collectLocked takes everything marked into one group: its records and
// its number.
func (c *Core) collectLocked() ([]journalRec, uint64) {
	j := c.jr
	var recs []journalRec
	if j.head {
		h := c.stateHeadLocked()
		recs = append(recs, journalRec{Op: "head", Head: &journalHead{External: h.External, Upstream: h.Upstream}})
		j.head = false
	}
	// Removals first: an ID freed and taken again in the same group is
	// deleted, then put.
	for _, id := range j.dels {
		recs = append(recs, journalRec{Op: "del", ID: id})
	}
	for _, e := range j.dirty {
		switch {
		case e.removed:
		case e.jmark == markExp && !e.Expires.IsZero():
			recs = append(recs, journalRec{Op: "exp", ID: e.ID, Exp: ceilSecond(e.Expires).Unix()})
		default:
			sm := e.state()
			recs = append(recs, journalRec{Op: "put", M: &sm})
		}
		e.jmark = markNone
	}
	for _, n := range j.undone {
		recs = append(recs, journalRec{Op: "undone", Nonce: hex.EncodeToString(n[:])})
	}
	clear(j.dirty)
	j.dirty, j.dels, j.undone = j.dirty[:0], j.dels[:0], j.undone[:0]
	j.collected++
	return recs, j.collected
}

// syncJournal returns once the groups up to want are durable: written by
// another request's group meanwhile, or by this one, which collects and
// writes everything marked so far (group commit). It returns ErrNotSaved
// (wrapped) when the journal cannot be written.
func (c *Core) syncJournal(want uint64) error {
	j := c.jr
	if j == nil || j.durable.Load() >= want {
		return nil
	}
	j.wmu.Lock()
	defer j.wmu.Unlock()
	if j.durable.Load() >= want {
		return nil
	}
	if j.broken != nil {
		return fmt.Errorf("%w: %w", ErrNotSaved, j.broken)
	}
	if j.f == nil {
		return fmt.Errorf("%w: no journal open", ErrNotSaved)
	}
	c.mu.Lock()
	recs, n := c.collectLocked()
	c.mu.Unlock()
	if err := j.write(recs); err != nil {
		j.broken = err
		c.log.Error("journal: write failed: answers fail until the state file can be written again", "err", err)
		c.dirtyLocked() // the state writer heals it (a compaction)
		return fmt.Errorf("%w: %w", ErrNotSaved, err)
	}
	j.durable.Store(n)
	return nil
}

// flushJournal makes everything marked so far durable (changes no
// request waits for: leases that ended, the upstream's answers).
func (c *Core) flushJournal() error {
	if c.jr == nil {
		return nil
	}
	c.mu.Lock()
	want := c.jr.collected + 1
	dirty := len(c.jr.dirty)+len(c.jr.dels)+len(c.jr.undone) > 0 || c.jr.head
	c.mu.Unlock()
	if !dirty {
		return nil
	}
	return c.syncJournal(want)
}

// durableWait returns once the last changes of es are durable.
func (c *Core) durableWait(es ...*entry) error {
	if c.jr == nil {
		return nil
	}
	var want uint64
	c.mu.Lock()
	for _, e := range es {
		if e != nil {
			want = max(want, c.wantLocked(e))
		}
	}
	c.mu.Unlock()
	return c.syncJournal(want)
}

// settle ends a request that made or changed e (and replaced old, when
// not nil): e is answered now, so no longer tentative, and the answer
// waits until the journal holds the change.
func (c *Core) settle(e, old *entry) error {
	if c.jr == nil {
		return nil
	}
	c.mu.Lock()
	if e.tentative && !e.removed {
		e.tentative = false
		c.markLocked(e, markPut)
	}
	want := c.wantLocked(e)
	if old != nil {
		want = max(want, c.wantLocked(old))
	}
	c.mu.Unlock()
	if err := c.syncJournal(want); err != nil {
		return &Error{Code: CodeNoResources, Msg: "the state could not be saved", Err: err}
	}
	return nil
}

// upstreamIntent returns e's nonce toward the upstream. A mapping without
// one gets a fresh nonce of the core's choosing, durable with the mapping
// before the request leaves: after a crash the request can be undone with
// it (a nonce the upstream client chose would die with the process, and
// the upstream's mapping with it would be an orphan).
//
// On success e is in c.asking with cancel (the request's): from then on
// the request counts as sent, and a removal of e is undone upstream by
// the caller (runUpstream) once its request returns.
func (c *Core) upstreamIntent(e *entry, cancel context.CancelFunc) (pcp.Nonce, error) {
	c.mu.Lock()
	if e.removed {
		// Removed while the request waited its turn (renewals wait for
		// a slot): sent now, it would make again at the upstream what
		// the delete just sent there removed.
		c.mu.Unlock()
		return pcp.Nonce{}, errRemoved
	}
	fresh := e.nonce == (Nonce{})
	if fresh {
		e.nonce = newNonce()
		c.markLocked(e, markPut)
	}
	n, want := e.nonce, c.wantLocked(e)
	c.asking[e] = cancel
	c.mu.Unlock()
	if !fresh {
		return pcp.Nonce(n), nil
	}
	err := c.syncJournal(want)
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case err != nil:
		delete(c.asking, e)
		if e.nonce == n {
			e.nonce = Nonce{} // not durable: never sent
		}
		if e.removed && e.upGone {
			// Removed meanwhile: the delete it held its port for will
			// not be sent (nothing was), so the port is free again.
			c.releaseDeleteLocked(keyOf(e.Proto, e.port))
		}
		return pcp.Nonce{}, err
	case e.removed:
		// Removed while its first nonce was being saved: nothing was
		// ever sent with it, nothing is to be undone (the hold taken
		// for the delete this goroutine was to send is given back).
		delete(c.asking, e)
		if e.upGone {
			c.releaseDeleteLocked(keyOf(e.Proto, e.port))
		}
		return pcp.Nonce{}, errRemoved
	}
	return pcp.Nonce(n), nil
}

// errRemoved: the mapping was removed before its upstream request left.
var errRemoved = errors.New("mapping: removed before its request left")

// newNonce returns 96 random bits (RFC 6887 §11.2).
func newNonce() Nonce {
	var n Nonce
	crand.Must(n[:])
	return n
}

// appendRecord appends r as one journal line.
func appendRecord(b []byte, r *journalRec) ([]byte, error) {
	js, err := json.Marshal(r)
	if err != nil {
		return b, err
	}
	b = fmt.Appendf(b, "%08x ", crc32.ChecksumIEEE(js))
	b = append(b, js...)
	return append(b, '\n'), nil
}

// write appends recs to the file with one write(2). A failed write is cut
// off again (a torn record would end the replay there, before whatever
// followed it). Called with wmu held.
func (j *journal) write(recs []journalRec) error {
	if len(recs) == 0 {
		return nil
	}
	b := j.buf[:0]
	for i := range recs {
		var err error
		if b, err = appendRecord(b, &recs[i]); err != nil {
			return err
		}
	}
	j.buf = b
	if cap(j.buf) > 64<<10 {
		j.buf = nil // a rare big group (every mapping moved): not kept
	}
	j.writes.Add(1)
	n, err := j.f.Write(b)
	if err != nil {
		if n > 0 {
			if terr := j.f.Truncate(j.size); terr != nil {
				return fmt.Errorf("%w (and cutting the torn record: %v)", err, terr)
			}
		}
		return err
	}
	j.size += int64(n)
	return nil
}

// journalName is the path of generation gen's journal.
func journalName(dir string, gen uint64) string {
	return filepath.Join(dir, journalPrefix+strconv.FormatUint(gen, 10))
}

// journalGens lists the generations of the journals in dir, ascending
// (a few: sorted by insertion).
func journalGens(dir string) []uint64 {
	d, err := os.Open(dir)
	if err != nil {
		return nil
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	var gens []uint64
	for _, name := range names {
		s, ok := strings.CutPrefix(name, journalPrefix)
		if !ok {
			continue
		}
		g, err := strconv.ParseUint(s, 10, 64)
		if err != nil || strconv.FormatUint(g, 10) != s {
			continue
		}
		if fi, err := os.Lstat(filepath.Join(dir, name)); err != nil || !fi.Mode().IsRegular() {
			continue
		}
		i := len(gens)
		gens = append(gens, g)
		for ; i > 0 && gens[i-1] > g; i-- {
			gens[i] = gens[i-1]
		}
		gens[i] = g
	}
	return gens
}

// compact writes the whole table as the state file and starts a new
// journal generation, then removes the older journals:
//
//  1. under wmu: everything marked is collected (group n) and written to
//     the current journal, and journal gen+1 is created; from now on
//     changes go there;
//  2. the state file is written (fuzzy: the table copied a chunk at a
//     time while requests go on) naming gen+1 as the journal to replay
//     on it: it holds every change of groups up to n, and the changes
//     after n it may hold are replayed again from gen+1 (records are
//     whole states, so replaying them again gives the same result);
//  3. once it is renamed into place, the journals before gen+1 go.
//
// A crash anywhere leaves a state file and the journals its replay
// needs. A journal whose write failed is healed here: the state file
// holds what its lost records held.
func (c *Core) compact() error {
	j := c.jr
	j.cmu.Lock()
	defer j.cmu.Unlock()
	j.wmu.Lock()
	c.mu.Lock()
	recs, n := c.collectLocked()
	head := c.stateHeadLocked()
	for _, e := range c.undo {
		head.Undo = append(head.Undo, e.state())
	}
	c.mu.Unlock()
	if j.f != nil && j.broken == nil {
		if err := j.write(recs); err != nil {
			j.broken = err
			c.log.Error("journal: write failed: answers fail until the state file can be written again", "err", err)
		} else {
			j.durable.Store(n)
		}
	}
	next := j.gen + 1
	f, err := os.OpenFile(journalName(j.dir, next), os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		j.wmu.Unlock()
		return fmt.Errorf("journal: %w", err)
	}
	old := j.f
	j.f, j.gen, j.size = f, next, 0
	j.wmu.Unlock()
	if old != nil {
		old.Close()
	}
	if compactHook != nil {
		compactHook("rotated")
	}
	head.Journal = next
	size, err := c.writeSnapshot(head)
	if err != nil {
		return err
	}
	if compactHook != nil {
		compactHook("written")
	}
	j.wmu.Lock()
	j.snap = size
	if j.broken != nil {
		c.log.Info("journal: the state file was written again: answers are saved again")
		j.broken = nil
	}
	if j.durable.Load() < n {
		j.durable.Store(n)
	}
	j.wmu.Unlock()
	for _, g := range journalGens(j.dir) {
		if g < next {
			os.Remove(journalName(j.dir, g))
		}
	}
	return nil
}

// needCompact reports whether the journal is due for compaction: big
// enough, or broken.
func (c *Core) needCompact() bool {
	j := c.jr
	if j == nil {
		return false
	}
	j.wmu.Lock()
	defer j.wmu.Unlock()
	return j.broken != nil || j.f == nil || j.size >= max(compactMin, j.snap)
}

// closeJournal closes the journal file (after the last compaction),
// removing it when it holds nothing.
func (c *Core) closeJournal() {
	j := c.jr
	if j == nil {
		return
	}
	j.wmu.Lock()
	defer j.wmu.Unlock()
	if j.f == nil {
		return
	}
	j.f.Close()
	if j.size == 0 && j.broken == nil {
		os.Remove(journalName(j.dir, j.gen))
	}
	j.f = nil
}

// replayer applies journal records to the mappings of a state file.
type replayer struct {
	ms   []stateMapping
	live []bool
	byID map[uint32]int
	st   *stateFile
}

func newReplayer(st *stateFile) *replayer {
	r := &replayer{st: st, byID: make(map[uint32]int, len(st.Mappings))}
	for _, sm := range st.Mappings {
		if _, dup := r.byID[sm.ID]; !dup {
			r.byID[sm.ID] = len(r.ms) // a duplicate is refused at load
		}
		r.ms = append(r.ms, sm)
		r.live = append(r.live, true)
	}
	return r
}

// apply applies one record; an error means the record makes no sense
// (the replay of its file ends there).
func (r *replayer) apply(rec *journalRec) error {
	switch rec.Op {
	case "put":
		if rec.M == nil || rec.M.ID == 0 {
			return errors.New("put without a mapping")
		}
		if i, ok := r.byID[rec.M.ID]; ok {
			r.ms[i] = *rec.M
			return nil
		}
		r.byID[rec.M.ID] = len(r.ms)
		r.ms = append(r.ms, *rec.M)
		r.live = append(r.live, true)
	case "exp":
		if rec.ID == 0 || rec.Exp <= 0 {
			return errors.New("exp without an id or a lease end")
		}
		if i, ok := r.byID[rec.ID]; ok {
			r.ms[i].Expires = time.Unix(rec.Exp, 0).UTC()
		}
	case "del":
		if rec.ID == 0 {
			return errors.New("del without an id")
		}
		if i, ok := r.byID[rec.ID]; ok {
			r.live[i] = false
			delete(r.byID, rec.ID)
		}
	case "undone":
		if rec.Nonce == "" {
			return errors.New("undone without a nonce")
		}
		kept := r.st.Undo[:0]
		for _, sm := range r.st.Undo {
			if sm.UpNonce != rec.Nonce {
				kept = append(kept, sm)
			}
		}
		r.st.Undo = kept
	case "head":
		if rec.Head == nil {
			return errors.New("head without its fields")
		}
		r.st.External, r.st.Upstream = rec.Head.External, rec.Head.Upstream
	default:
		return fmt.Errorf("op %q", rec.Op)
	}
	return nil
}

// finish puts the replayed mappings back in the state file, in creation
// order.
func (r *replayer) finish() {
	ms := r.st.Mappings[:0]
	for i, sm := range r.ms {
		if r.live[i] {
			ms = append(ms, sm)
		}
	}
	r.st.Mappings = ms
}

// replayJournal applies the records of one journal file to r. It stops
// at the first line that is torn (the tail a crash cut), corrupt or makes
// no sense, and returns how many records it applied and how many bytes it
// left (0: the whole file).
func replayJournal(b []byte, r *replayer) (applied int, left int, err error) {
	for len(b) > 0 {
		nl := bytes.IndexByte(b, '\n')
		if nl < 0 {
			return applied, len(b), errors.New("torn record (no line end)")
		}
		line := b[:nl]
		if len(line) < 10 || line[8] != ' ' {
			return applied, len(b), errors.New("malformed record")
		}
		var sum [4]byte
		if _, err := hex.Decode(sum[:], line[:8]); err != nil {
			return applied, len(b), errors.New("malformed checksum")
		}
		js := line[9:]
		if crc32.ChecksumIEEE(js) != uint32(sum[0])<<24|uint32(sum[1])<<16|uint32(sum[2])<<8|uint32(sum[3]) {
			return applied, len(b), errors.New("checksum mismatch")
		}
		var rec journalRec
		if err := json.Unmarshal(js, &rec); err != nil {
			return applied, len(b), fmt.Errorf("record: %w", err)
		}
		if err := r.apply(&rec); err != nil {
			return applied, len(b), err
		}
		applied++
		b = b[nl+1:]
	}
	return applied, 0, nil
}
