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

// persistCoalesce is the least time between two writes of the state file:
// changes that come faster are written together (and under load the wait
// grows with the time a write takes, see persistLoop).
const persistCoalesce = 200 * time.Millisecond

// renewPersistDelay is how long a renewal alone waits to be written. A
// renewal only moves a lease end; after a crash the state file's older end
// is still later than the client's next renewal (clients renew well before
// the end), so writing the whole table for each of thousands of renewals
// a second would buy nothing.
const renewPersistDelay = 60 * time.Second

type stateFile struct {
	Version    int       `json:"version"`
	EpochStart time.Time `json:"epoch_start"`
	External   string    `json:"external,omitempty"`
	// Upstream is the kind of upstream the mappings were made at (their
	// nonces are its): "pcp", "natpmp", "upnp", "none"; "" before any.
	Upstream string         `json:"upstream,omitempty"`
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

// persistLoop writes the state file after changes, at most every
// persistCoalesce.
func (c *Core) persistLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.quit:
			return
		case <-c.persist:
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
		// What this write covers: drop a renewal noted meanwhile.
		select {
		case <-c.renewed:
		default:
		}
		start := time.Now()
		if err := c.writeState(); err != nil {
			c.log.Warn("writing state", "err", err)
		}
		// Under load, writing the whole table takes its share of the CPU:
		// keep that share under a tenth by waiting ten times as long as
		// the write took (at least persistCoalesce) before the next one.
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
		Description: e.Description, Created: e.Created, Expires: e.Expires,
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
	if e.nonce != (Nonce{}) {
		sm.UpNonce = hex.EncodeToString(e.nonce[:])
	}
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

// writeState writes the state file (and the lease file) atomically. Both
// are written a chunk of mappings at a time through a small buffer: with
// 10,000 mappings the files are megabytes, which a router's memory should
// not hold at once.
func (c *Core) writeState() error {
	if c.cfg.StateDir == "" && c.cfg.LeaseFile == "" {
		return nil
	}
	c.mu.Lock()
	head := c.stateHeadLocked()
	c.mu.Unlock()
	if c.cfg.StateDir != "" {
		err := writeAtomic(filepath.Join(c.cfg.StateDir, StateFile), func(w *bufio.Writer) error {
			return writeStateJSON(w, head, c.eachStateChunk)
		})
		if err != nil {
			return err
		}
	}
	if c.cfg.LeaseFile != "" {
		err := writeAtomic(c.cfg.LeaseFile, func(w *bufio.Writer) error {
			return c.eachStateChunk(func(ms []stateMapping) error { writeLeases(w, ms); return nil })
		})
		if err != nil {
			return err
		}
	}
	return nil
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
// fsync and rename), so a crash leaves the old file or the new one.
func writeAtomic(name string, write func(*bufio.Writer) error) error {
	dir := filepath.Dir(name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(name)+".tmp*")
	if err != nil {
		return err
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
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// load reads the state file, keeps the mappings whose lease still runs,
// and makes the kernel hold exactly them. A corrupt file is kept aside and
// the core starts clean.
func (c *Core) load(ctx context.Context) error {
	var st stateFile
	if c.cfg.StateDir != "" {
		name := filepath.Join(c.cfg.StateDir, StateFile)
		b, err := os.ReadFile(name)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			c.log.Error("state file unreadable: starting clean", "file", name, "err", err)
		default:
			if err := json.Unmarshal(b, &st); err != nil || st.Version != stateVersion {
				aside := name + ".corrupt-" + strconv.FormatInt(time.Now().Unix(), 10)
				os.Rename(name, aside)
				c.log.Error("state file corrupt: kept aside, starting clean", "file", name, "aside", aside, "err", err)
				st = stateFile{}
			}
		}
	}
	now := time.Now()
	if !st.EpochStart.IsZero() && !st.EpochStart.After(now) {
		c.epochStart = st.EpochStart
	}
	if k, ok := upstream.ParseKind(st.Upstream); ok && c.up != nil {
		c.upKind = k
	}
	if a, err := netip.ParseAddr(st.External); err == nil && c.mode != ModeLocal {
		c.external = a
	}
	dropped := 0
	for _, sm := range st.Mappings {
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
		if !e.IsPinhole() && c.byExt[keyOf(e.Proto, e.port)] != nil {
			dropped++
			continue
		}
		switch {
		case !c.upstreamLocked():
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
	var fwds []firewall.Forward
	var pins []firewall.Pinhole
	for _, e := range c.order {
		fwds, pins = appendFW(fwds, pins, e, now)
	}
	if len(st.Mappings) > 0 {
		c.log.Info("state loaded", "mappings", len(c.entries), "dropped", dropped)
	}
	if err := c.fw.Sync(ctx, fwds, pins); err != nil {
		return fmt.Errorf("mapping: reconciling the firewall: %w", err)
	}
	return nil
}

// UpAtValid reports whether the provider had made e before the restart.
func (e *entry) UpAtValid() bool { return !e.upAt.IsZero() }

func (c *Core) entryFromState(sm stateMapping) (*entry, error) {
	e := &entry{sidx: -1}
	e.ID = sm.ID
	if e.ID == 0 || e.ID > maxEntries || c.entries[e.ID] != nil {
		return nil, fmt.Errorf("bad or duplicate id %d", sm.ID)
	}
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
