package mapping

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pcpgw/pcpgw/firewall"
	"github.com/pcpgw/pcpgw/upstream"
)

// StateFile is the name of the state file in Config.StateDir.
const StateFile = "state.json"

const stateVersion = 1

// persistCoalesce is the least time between two runs of the state writer
// (the journal's changes no request waits for, the lease file, a
// compaction): changes that come faster are handled together (and under
// load the wait grows with the time a run takes, see persistLoop).
const persistCoalesce = 200 * time.Millisecond

// renewPersistDelay is how long a renewal alone waits to reach the lease
// file (OpenWrt's status page: writing it for each of thousands of
// renewals a second would buy nothing). The journal has the renewal
// before its answer goes out.
const renewPersistDelay = 60 * time.Second

type stateFile struct {
	Version    int       `json:"version"`
	EpochStart time.Time `json:"epoch_start"`
	External   string    `json:"external,omitempty"`
	// Upstream is the kind of upstream the mappings were made at (their
	// nonces are its): "pcp", "natpmp", "upnp", "none"; "" before any.
	Upstream string `json:"upstream,omitempty"`
	// Journal is the first journal generation to replay on this file (0,
	// absent: every journal found; a state file older than the journal
	// has none).
	Journal uint64 `json:"journal,omitempty"`
	// Undo are mappings whose creation was never answered before a
	// crash, to be deleted at the upstream with their nonce (up_nonce).
	Undo []stateMapping `json:"undo,omitempty"`
	// Mappings stays last (writeStateJSON streams it).
	Mappings []stateMapping `json:"mappings"`
}

type stateMapping struct {
	ID          uint32    `json:"id"`
	Origin      string    `json:"origin"`
	Client      string    `json:"client"`
	Proto       string    `json:"proto"`
	Internal    string    `json:"internal"`
	External    string    `json:"external,omitempty"`
	WANPort     uint16    `json:"wan_port,omitempty"`
	RemoteHost  string    `json:"remote_host,omitempty"`
	RemotePort  uint16    `json:"remote_port,omitempty"`
	Description string    `json:"description,omitempty"`
	Nonce       string    `json:"nonce,omitempty"`
	UpNonce     string    `json:"up_nonce,omitempty"`
	Created     time.Time `json:"created"`
	Expires     time.Time `json:"expires,omitzero"`
	Lifetime    int64     `json:"lifetime_s"`
	Exact       bool      `json:"exact,omitempty"`
	UpAt        time.Time `json:"up_at,omitzero"`
	// Tentative: its request had not been answered (the mapping is undone
	// at start).
	Tentative bool     `json:"tentative,omitempty"`
	NAT64     bool     `json:"nat64,omitempty"`
	Prefix64  []string `json:"prefix64,omitempty"`
	// Given is the first external port the mapping was given; Told the
	// external endpoint LAN clients were last told, when it is not
	// External (see noteExternalLocked).
	Given uint16 `json:"given,omitempty"`
	Told  string `json:"told,omitempty"`
}

func (c *Core) dirtyLocked() {
	select {
	case c.persist <- struct{}{}:
	default:
	}
}

// renewedLocked notes a renewal: written with the next change, or within
// renewPersistDelay.
func (c *Core) renewedLocked() {
	select {
	case c.renewed <- struct{}{}:
	default:
	}
}

// persistLoop runs the state writer after changes, at most every
// persistCoalesce: it makes the journal hold the changes no request waited
// for, writes the lease file, and compacts the journal into the state file
// when it has grown (or heals it after a failed write, retried every
// compactRetry).
func (c *Core) persistLoop(ctx context.Context) {
	var retry <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.quit:
			return
		case <-c.persist:
		case <-retry:
		case <-c.renewed:
			select {
			case <-ctx.Done():
				return
			case <-c.quit:
				return
			case <-c.persist:
			case <-time.After(renewPersistDelay):
			}
		}
		// What this run covers: drop a renewal noted meanwhile.
		select {
		case <-c.renewed:
		default:
		}
		start := time.Now()
		if err := c.flushJournal(); err != nil {
			c.log.Debug("journal", "err", err)
		}
		if err := c.writeLeaseFile(); err != nil {
			c.log.Warn("writing the lease file", "err", err)
		}
		retry = nil
		if c.needCompact() {
			if err := c.compact(); err != nil {
				c.log.Warn("writing state", "err", err)
				retry = time.After(compactRetry)
			}
		}
		// Under load, this work takes its share of the CPU: keep that
		// share under a tenth by waiting ten times as long as it took
		// (at least persistCoalesce) before the next run.
		select {
		case <-ctx.Done():
			return
		case <-c.quit:
			return
		case <-time.After(max(persistCoalesce, 10*time.Since(start))):
		}
	}
}

// snapshotLocked returns the state as it will be written (tests; the
// writer takes it a chunk at a time).
func (c *Core) snapshotLocked() stateFile {
	st := c.stateHeadLocked()
	st.Mappings = make([]stateMapping, 0, len(c.order))
	for _, e := range c.order {
		st.Mappings = append(st.Mappings, e.state())
	}
	return st
}

// stateHeadLocked is the state file without its mappings.
func (c *Core) stateHeadLocked() stateFile {
	st := stateFile{Version: stateVersion, EpochStart: c.epochStart}
	if c.upKind != upstream.KindDetecting {
		st.Upstream = c.upKind.String()
	}
	if c.external.IsValid() {
		st.External = c.external.String()
	}
	return st
}

// state is e as the state file holds it.
func (e *entry) state() stateMapping {
	sm := stateMapping{
		ID: e.ID, Origin: e.Origin.String(), Client: e.Client.String(), Proto: e.Proto.String(),
		Internal: e.Internal.String(), WANPort: e.WANPort, RemotePort: e.RemotePort,
		Description: e.Description, Created: e.Created, Expires: ceilSecond(e.Expires),
		Lifetime: int64(e.lifetime / time.Second), Exact: e.exact, UpAt: e.upAt,
	}
	if e.External.IsValid() {
		sm.External = e.External.String()
	}
	sm.Given = e.Given
	if e.told.IsValid() && e.told != e.External {
		sm.Told = e.told.String()
	}
	if e.RemoteHost.IsValid() {
		sm.RemoteHost = e.RemoteHost.String()
	}
	if e.Nonce != (Nonce{}) {
		sm.Nonce = hex.EncodeToString(e.Nonce[:])
	}
	sm.NAT64 = e.NAT64
	for _, p := range e.Prefix64 {
		sm.Prefix64 = append(sm.Prefix64, p.String())
	}
	if e.nonce != (Nonce{}) {
		sm.UpNonce = hex.EncodeToString(e.nonce[:])
	}
	sm.Tentative = e.tentative
	return sm
}

// snapshotChunk is how many mappings the state writer copies per holding
// of the lock.
const snapshotChunk = 256

// eachStateChunk calls f with the mappings in creation order, copied
// snapshotChunk at a time under the lock (not the whole table at once:
// at 10,000 mappings that copy was 2 MB). A mapping made or removed
// meanwhile may be missed or still written; the write it triggers puts
// it right.
func (c *Core) eachStateChunk(f func([]stateMapping) error) error {
	buf := make([]stateMapping, 0, snapshotChunk)
	var after uint64 // seq of the last mapping copied
	for {
		buf = buf[:0]
		c.mu.Lock()
		i, _ := slices.BinarySearchFunc(c.order, after+1, func(x *entry, s uint64) int { return cmp.Compare(x.seq, s) })
		for ; i < len(c.order) && len(buf) < snapshotChunk; i++ {
			buf = append(buf, c.order[i].state())
			after = c.order[i].seq
		}
		c.mu.Unlock()
		if len(buf) == 0 {
			return nil
		}
		if err := f(buf); err != nil {
			return err
		}
	}
}

// writeSnapshot writes the state file atomically with head and the
// table, a chunk of mappings at a time through a small buffer (with
// 10,000 mappings the file is megabytes, which a router's memory should
// not hold at once), and returns its size.
func (c *Core) writeSnapshot(head stateFile) (int64, error) {
	return writeAtomic(filepath.Join(c.cfg.StateDir, StateFile), func(w *bufio.Writer) error {
		return writeStateJSON(w, head, c.eachStateChunk)
	})
}

// writeLeaseFile writes the lease file, if one is configured, atomically.
func (c *Core) writeLeaseFile() error {
	if c.cfg.LeaseFile == "" {
		return nil
	}
	_, err := writeAtomic(c.cfg.LeaseFile, func(w *bufio.Writer) error {
		return c.eachStateChunk(func(ms []stateMapping) error {
			writeLeases(w, ms)
			return nil
		})
	})
	return err
}

// writeStateJSON writes head with the mappings each gives as JSON (what
// json.Marshal of the whole gives, and a newline), one mapping at a time.
func writeStateJSON(w *bufio.Writer, head stateFile, each func(func([]stateMapping) error) error) error {
	head.Mappings = nil
	b, err := json.Marshal(head)
	if err != nil {
		return err
	}
	// b ends with "mappings":null}: open the array there instead.
	w.Write(bytes.TrimSuffix(b, []byte("null}")))
	w.WriteByte('[')
	first := true
	err = each(func(ms []stateMapping) error {
		for i := range ms {
			if !first {
				w.WriteByte(',')
			}
			first = false
			b, err := json.Marshal(&ms[i])
			if err != nil {
				return err
			}
			w.Write(b)
		}
		return nil
	})
	if err != nil {
		return err
	}
	_, err = w.WriteString("]}\n")
	return err
}

// writeLeases writes ms in miniupnpd's lease-file format, one mapping a
// line: PROTO:eport:iaddr:iport:timestamp:desc (timestamp: lease end in
// Unix seconds, 0 for none). OpenWrt's UPnP status page reads it.
func writeLeases(w *bufio.Writer, ms []stateMapping) {
	for _, m := range ms {
		if m.Tentative {
			continue // not answered yet
		}
		ia, err := netip.ParseAddrPort(m.Internal)
		if err != nil || !ia.Addr().Is4() {
			continue
		}
		eport := m.WANPort
		if ext, err := netip.ParseAddrPort(m.External); err == nil && eport == 0 {
			eport = ext.Port()
		}
		var ts int64
		if !m.Expires.IsZero() {
			ts = m.Expires.Unix()
		}
		desc := strings.ReplaceAll(m.Description, "\n", " ")
		fmt.Fprintf(w, "%s:%d:%s:%d:%d:%s\n", strings.ToUpper(m.Proto), eport, ia.Addr(), ia.Port(), ts, desc)
	}
}

// writeAtomic writes name through a temporary file (filled by write, then
// fsync and rename), so a crash leaves the old file or the new one, and
// returns its size.
func writeAtomic(name string, write func(*bufio.Writer) error) (int64, error) {
	dir := filepath.Dir(name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(name)+".tmp*")
	if err != nil {
		return 0, err
	}
	tmp := f.Name()
	bw := bufio.NewWriterSize(f, 32<<10)
	err = write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	var size int64
	if err == nil {
		var fi os.FileInfo
		if fi, err = f.Stat(); err == nil {
			size = fi.Size()
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o600)
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		os.Remove(tmp)
		return 0, err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return size, nil
}

// readStateDir reads dir's state file and replays on it the journals it
// names (generation Journal and later), logging what replay ignored. A
// state file that cannot be read or parsed gives an error (and an empty
// state, its journals replayed on it: what they hold is real, in the
// kernel and at the upstream). It returns the generations found.
func readStateDir(dir string, log *slog.Logger) (stateFile, []uint64, error) {
	var st stateFile
	var ferr error
	b, err := os.ReadFile(filepath.Join(dir, StateFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		ferr = err
	default:
		if err := json.Unmarshal(b, &st); err != nil {
			ferr = fmt.Errorf("%w: %w", errCorrupt, err)
			st = stateFile{}
		} else if st.Version != stateVersion {
			ferr = fmt.Errorf("%w: version %d", errCorrupt, st.Version)
			st = stateFile{}
		}
	}
	gens := journalGens(dir)
	r := newReplayer(&st)
	for _, g := range gens {
		if g < st.Journal {
			continue // compacted into the state file
		}
		jn := journalName(dir, g)
		b, err := os.ReadFile(jn)
		if err != nil {
			log.Error("journal unreadable", "file", jn, "err", err)
			continue
		}
		n, left, err := replayJournal(b, r)
		if left > 0 {
			// A crash cuts at most the last record (a write interrupted
			// by SIGKILL, or a power loss): what follows is ignored.
			log.Warn("journal: replay stopped at a torn or corrupt record", "file", jn, "records", n, "ignored_bytes", left, "err", err)
		}
	}
	r.finish()
	return st, gens, ferr
}

var errCorrupt = errors.New("corrupt")

// ReadState returns the mappings a start on dir would restore, in
// creation order: the state file with its journals replayed, without the
// mappings whose request was never answered; lease ends are not checked.
// The state file alone lags the journal: tools and tests read the state
// this way.
func ReadState(dir string) ([]Mapping, error) {
	st, _, err := readStateDir(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	var ms []Mapping
	for _, sm := range st.Mappings {
		if sm.Tentative {
			continue
		}
		e, err := parseEntry(sm)
		if err != nil {
			continue // a start skips it too
		}
		ms = append(ms, e.Mapping)
	}
	return ms, nil
}

// load reads the state file and its journal, keeps the mappings whose
// lease still runs, and makes the kernel hold exactly them. Mappings
// whose request was never answered are undone: the kernel does not get
// them back, and those that went upstream are deleted there (undoLoop).
// Then it writes a fresh state file and opens a new journal.
func (c *Core) load(ctx context.Context) error {
	var st stateFile
	var gens []uint64
	if c.cfg.StateDir != "" {
		var err error
		st, gens, err = readStateDir(c.cfg.StateDir, c.log)
		name := filepath.Join(c.cfg.StateDir, StateFile)
		switch {
		case errors.Is(err, errCorrupt):
			aside := name + ".corrupt-" + strconv.FormatInt(time.Now().Unix(), 10)
			os.Rename(name, aside)
			c.log.Error("state file corrupt: kept aside, starting with its journal only", "file", name, "aside", aside, "err", err)
		case err != nil:
			c.log.Error("state file unreadable: starting with its journal only", "file", name, "err", err)
		}
	}
	now := time.Now()
	if !st.EpochStart.IsZero() && !st.EpochStart.After(now) {
		c.epochStart = st.EpochStart
	}
	if k, ok := upstream.ParseKind(st.Upstream); ok && c.up != nil {
		c.upKind = k
		c.undoKind = k
	}
	if a, err := netip.ParseAddr(st.External); err == nil && c.mode != ModeLocal {
		c.external = a
	}
	dropped, undo := 0, 0
	for _, sm := range st.Undo {
		if c.undoFromState(sm, now) {
			undo++
		}
	}
	for _, sm := range st.Mappings {
		if sm.Tentative {
			if c.undoFromState(sm, now) {
				undo++
			}
			continue
		}
		e, err := c.entryFromState(sm)
		if err != nil {
			c.log.Warn("state file: mapping skipped", "id", sm.ID, "err", err)
			dropped++
			continue
		}
		if !e.Expires.IsZero() && !e.Expires.After(now) {
			dropped++
			continue
		}
		if e.IsPinhole() {
			if !c.PinholesEnabled() {
				dropped++ // pinholes were turned off meanwhile
				continue
			}
			c.insertLocked(e)
			continue
		}
		if !e.IsPinhole() && (c.byExt[keyOf(e.Proto, e.port)] != nil || !c.portAllowedLocked(e.port)) {
			dropped++
			continue
		}
		switch {
		case !c.upstreamLocked() && !e.NAT64:
			e.Upstream = UpstreamNone
			e.External = netip.AddrPortFrom(c.wan, e.WANPort)
		default:
			e.Upstream = UpstreamPending
			if e.UpAtValid() {
				e.Upstream = UpstreamOK
			}
			e.ready = make(chan struct{})
			close(e.ready)
			e.renewAt = now // renewed (not duplicated: same nonce and internal) by Run
		}
		c.insertLocked(e)
	}
	// The upstream's ports of the mappings made there are hairpinned
	// (hairpin.go).
	c.rehairpinAllLocked(now, nil)
	var fwds []firewall.Forward
	var pins []firewall.Pinhole
	for _, e := range c.order {
		fwds, pins = appendFW(fwds, pins, e, now)
	}
	if len(st.Mappings) > 0 || undo > 0 {
		c.log.Info("state loaded", "mappings", len(c.entries), "dropped", dropped, "undo", undo)
	}
	if err := c.fw.Sync(ctx, fwds, pins); err != nil {
		return fmt.Errorf("mapping: reconciling the firewall: %w", err)
	}
	if c.cfg.StateDir != "" {
		gen := st.Journal
		if len(gens) > 0 {
			gen = max(gen, gens[len(gens)-1])
		}
		c.jr = &journal{dir: c.cfg.StateDir, gen: gen}
		if err := c.compact(); err != nil {
			// Requests fail until it can be written (persistLoop retries).
			c.log.Error("writing state: answers fail until it can be written", "err", err)
			c.dirtyLocked()
		}
	}
	return nil
}

// undoFromState keeps sm, a mapping whose request was never answered, to
// be deleted at the upstream if its request may have gone there (it has
// a nonce: chosen and saved before the request left) and may still live
// there (its lease has not ended). It reports whether it did.
func (c *Core) undoFromState(sm stateMapping, now time.Time) bool {
	e, err := parseEntry(sm)
	switch {
	case err != nil, e.nonce == Nonce{}, e.IsPinhole(), c.up == nil, c.mode == ModeLocal,
		!e.Expires.IsZero() && !e.Expires.After(now):
		return false
	}
	for _, x := range c.undo {
		if x.nonce == e.nonce {
			return false
		}
	}
	e.tentative = true
	c.undo = append(c.undo, e)
	c.undoKeys[keyOf(e.Proto, e.port)]++
	return true
}

// UpAtValid reports whether the provider had made e before the restart.
func (e *entry) UpAtValid() bool { return !e.upAt.IsZero() }

func (c *Core) entryFromState(sm stateMapping) (*entry, error) {
	if sm.ID == 0 || sm.ID > maxEntries || c.entries[sm.ID] != nil {
		return nil, fmt.Errorf("bad or duplicate id %d", sm.ID)
	}
	return parseEntry(sm)
}

// parseEntry makes an entry of sm, checking each field.
func parseEntry(sm stateMapping) (*entry, error) {
	e := &entry{sidx: -1}
	e.ID = sm.ID
	switch sm.Origin {
	case "upnp":
		e.Origin = OriginUPnP
	case "natpmp":
		e.Origin = OriginNATPMP
	case "pcp":
		e.Origin = OriginPCP
	case "static":
		e.Origin = OriginStatic
	default:
		return nil, fmt.Errorf("origin %q", sm.Origin)
	}
	switch sm.Proto {
	case "tcp":
		e.Proto = TCP
	case "udp":
		e.Proto = UDP
	default:
		return nil, fmt.Errorf("proto %q", sm.Proto)
	}
	var err error
	if e.Client, err = netip.ParseAddr(sm.Client); err != nil {
		return nil, err
	}
	if e.Internal, err = netip.ParseAddrPort(sm.Internal); err != nil {
		return nil, err
	}
	if sm.External != "" {
		if e.External, err = netip.ParseAddrPort(sm.External); err != nil {
			return nil, err
		}
	}
	if sm.RemoteHost != "" {
		if e.RemoteHost, err = netip.ParseAddr(sm.RemoteHost); err != nil {
			return nil, err
		}
	}
	if err := parseNonce(sm.Nonce, &e.Nonce); err != nil {
		return nil, err
	}
	if err := parseNonce(sm.UpNonce, &e.nonce); err != nil {
		return nil, err
	}
	e.WANPort, e.RemotePort, e.Given = sm.WANPort, sm.RemotePort, sm.Given
	e.NAT64 = sm.NAT64
	for _, s := range sm.Prefix64 {
		p, err := netip.ParsePrefix(s)
		if err != nil || !p.Addr().Is6() {
			return nil, fmt.Errorf("NAT64 prefix %q", s)
		}
		e.Prefix64 = append(e.Prefix64, p)
	}
	if e.NAT64 && (!e.Internal.Addr().Is6() || len(e.Prefix64) == 0) {
		return nil, errors.New("a NAT64 mapping without an IPv6 host or a prefix")
	}
	if sm.Told != "" {
		if e.told, err = netip.ParseAddrPort(sm.Told); err != nil {
			return nil, err
		}
	}
	e.Description = SanitizeDescription(sm.Description)
	e.Created, e.Expires, e.upAt, e.exact = sm.Created, sm.Expires, sm.UpAt, sm.Exact
	e.lifetime = time.Duration(sm.Lifetime) * time.Second
	if e.IsPinhole() {
		e.External = e.Internal
		e.port = e.Internal.Port()
	} else {
		port := e.WANPort
		if port == 0 {
			port = e.External.Port()
		}
		if port == 0 {
			return nil, errors.New("no external port")
		}
		e.port = port
	}
	// What the kernel is to hold of it must be installable (a corrupt
	// record must not fail the start's reconciliation).
	if ia := e.Internal.Addr(); ia.IsUnspecified() || ia.IsMulticast() || ia.IsLoopback() || e.Internal.Port() == 0 {
		return nil, fmt.Errorf("internal %v", e.Internal)
	}
	fwds, pins := appendFW(nil, nil, e, time.Time{})
	for _, f := range fwds {
		if err := f.Validate(); err != nil {
			return nil, err
		}
	}
	for _, p := range pins {
		if err := p.Validate(); err != nil {
			return nil, err
		}
	}
	return e, nil
}

func parseNonce(s string, n *Nonce) error {
	if s == "" {
		return nil
	}
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(n) {
		return fmt.Errorf("nonce %q", s)
	}
	copy(n[:], b)
	return nil
}
