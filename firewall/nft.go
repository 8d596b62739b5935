package firewall

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// DefaultTable is the table name used when Config.Table is empty.
const DefaultTable = "pcpgw"

// DefaultMark is the conntrack mark bit used when Config.Mark is 0: pcpgw
// sets it on every flow it accepts, and a main firewall honours it with
// `ct mark & 0x20000000 == 0x20000000 accept` (see fw4-include.nft).
const DefaultMark uint32 = 0x20000000

// Config configures New.
type Config struct {
	// Table is the nftables table name in family inet; "" means DefaultTable.
	Table string
	// WAN is the WAN interface name: DNAT, forward accepts and (unless
	// WAN6 is set) pinholes match packets arriving on it. Required.
	WAN string
	// WAN6 is the interface inbound IPv6 arrives on when it is not WAN
	// (DS-Lite: WAN is the IPv4-in-IPv6 softwire, WAN6 its IPv6 uplink);
	// "" means WAN.
	WAN6 string
	// LAN are the LAN interface names (hairpin NAT, hairpin accept).
	// nil: no hairpin.
	LAN []string
	// WANAddr is the CPE's WAN IPv4 address, used for hairpin NAT; the zero
	// value means unknown (no hairpin until SetWANAddr).
	WANAddr netip.Addr
	// IPv6Baseline installs the RFC 6092 simple security baseline for
	// inbound IPv6 (for systems with no other firewall); false: pcpgw only
	// accepts and marks what it is asked to.
	IPv6Baseline bool
	// Mark is the conntrack mark bit(s) set on flows pcpgw accepts; 0 means
	// DefaultMark.
	Mark uint32
	// Logger receives the package's logs; nil discards them.
	Logger *slog.Logger
	// NetNS is a file descriptor of the network namespace to work in; 0 is
	// the current namespace.
	NetNS int
}

// NFT is the nftables implementation of pcpgw's firewall: one table in
// family inet holding static rules and sets/maps whose elements are the
// forwards and pinholes. The methods are safe for concurrent use.
type NFT struct {
	cfg Config
	// external is the upstream's external address, hairpinned beside
	// cfg.WANAddr (SetExternalAddr).
	external netip.Addr
	mark     uint32
	log      *slog.Logger

	// waiting holds the Apply calls not yet sent (group commit: whoever
	// holds mu sends those waiting in one netlink batch).
	qmu     sync.Mutex
	waiting []*pending

	mu             sync.Mutex // serialises batches on conn
	batches        uint64     // batches sent by Apply (tests read it)
	conn           *nftables.Conn
	nsFD           int // a copy of Config.NetNS, -1 for the current namespace
	table          *nftables.Table
	sets           *tableSets
	refreshInPlace bool // kernel updates an element's timeout on re-add
	snatRanges     int  // range chains of the outbound NAT (SetSNAT)
	closed         bool
}

type tableSets struct {
	elems  [numElemSets]*nftables.Set
	lanIfs *nftables.Set
	wan4   *nftables.Set // the WAN address: hairpin by the WAN port (fwd4)
	ext4   *nftables.Set // the upstream's external address: by the upstream port (fwd4x)
}

// New creates table inet <Table>, or adopts it when it exists (left by a
// previous pcpgw, even one killed): its chains' rules are replaced in one
// batch, while its set and map elements are kept for Sync to reconcile.
func New(cfg Config) (*NFT, error) {
	if cfg.WAN == "" {
		return nil, errors.New("firewall: Config.WAN is required")
	}
	for _, w := range []string{cfg.WAN, cfg.WAN6} {
		if len(w) >= 16 {
			return nil, fmt.Errorf("firewall: WAN interface name %q too long", w)
		}
	}
	for _, l := range cfg.LAN {
		if l == "" || len(l) >= 16 {
			return nil, fmt.Errorf("firewall: bad LAN interface name %q", l)
		}
	}
	if cfg.WANAddr.IsValid() && !cfg.WANAddr.Unmap().Is4() {
		return nil, fmt.Errorf("firewall: WAN address %v is not IPv4", cfg.WANAddr)
	}
	if cfg.Table == "" {
		cfg.Table = DefaultTable
	}
	f := &NFT{cfg: cfg, mark: cfg.Mark, log: cfg.Logger}
	if f.mark == 0 {
		f.mark = DefaultMark
	}
	if f.log == nil {
		f.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	f.log = f.log.With("component", "firewall")
	f.nsFD = -1
	if cfg.NetNS != 0 {
		// A copy, so that reconnecting works after the caller closed it.
		fd, err := unix.FcntlInt(uintptr(cfg.NetNS), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("firewall: namespace fd: %w", err)
		}
		f.nsFD = fd
	}
	conn, err := dial(f.nsFD)
	if err != nil {
		f.closeNS()
		return nil, fmt.Errorf("firewall: netlink: %w", err)
	}
	f.conn = conn
	f.table = &nftables.Table{Name: cfg.Table, Family: nftables.TableFamilyINet}
	if err := f.install(); err != nil {
		if errors.Is(err, os.ErrPermission) {
			f.conn.CloseLasting()
			f.closeNS()
			return nil, fmt.Errorf("firewall: install table %s: %w", cfg.Table, err)
		}
		// An incompatible table (from another version): start over.
		f.log.Warn("replacing incompatible table", "table", cfg.Table, "err", err)
		if err := f.redial(); err != nil {
			f.conn.CloseLasting()
			f.closeNS()
			return nil, fmt.Errorf("firewall: netlink: %w", err)
		}
		f.conn.DelTable(f.table)
		if derr := f.conn.Flush(); derr != nil && !errors.Is(derr, syscall.ENOENT) {
			f.conn.CloseLasting()
			f.closeNS()
			return nil, fmt.Errorf("firewall: install table %s: %w (delete: %v)", cfg.Table, err, derr)
		}
		if err := f.install(); err != nil {
			f.conn.CloseLasting()
			f.closeNS()
			return nil, fmt.Errorf("firewall: install table %s: %w", cfg.Table, err)
		}
	}
	if f.refreshInPlace, err = f.probe(); err != nil {
		f.conn.CloseLasting()
		f.closeNS()
		return nil, fmt.Errorf("firewall: probe: %w", err)
	}
	f.log.Debug("table ready", "table", cfg.Table, "refresh_in_place", f.refreshInPlace)
	return f, nil
}

func newSets(t *nftables.Table) *tableSets {
	s := &tableSets{}
	for i, d := range setDefs {
		keyTypes := make([]nftables.SetDatatype, len(d.key))
		for j, k := range d.key {
			keyTypes[j] = fieldType(k)
		}
		set := &nftables.Set{
			Table:         t,
			Name:          d.name,
			KeyType:       nftables.MustConcatSetType(keyTypes...),
			Concatenation: len(d.key) > 1,
			Interval:      d.interval,
			HasTimeout:    true,
			Counter:       d.counter,
		}
		if d.val != nil {
			valTypes := make([]nftables.SetDatatype, len(d.val))
			for j, v := range d.val {
				valTypes[j] = fieldType(v)
			}
			set.IsMap = true
			set.DataType = nftables.MustConcatSetType(valTypes...)
		}
		s.elems[i] = set
	}
	s.lanIfs = &nftables.Set{Table: t, Name: setLANIf, KeyType: nftables.TypeIFName, KeyByteOrder: binaryutil.NativeEndian}
	s.wan4 = &nftables.Set{Table: t, Name: setWAN4, KeyType: nftables.TypeIPAddr}
	s.ext4 = &nftables.Set{Table: t, Name: setExt4, KeyType: nftables.TypeIPAddr}
	return s
}

func fieldType(f field) nftables.SetDatatype {
	switch f {
	case fProto:
		return nftables.TypeInetProto
	case fPort:
		return nftables.TypeInetService
	case fIPv4:
		return nftables.TypeIPAddr
	default:
		return nftables.TypeIP6Addr
	}
}

// install creates (or adopts) the table, its sets and chains, and replaces
// the chains' rules, in one batch.
func (f *NFT) install() error {
	c := f.conn
	c.AddTable(f.table)
	f.sets = newSets(f.table)
	for _, s := range f.sets.elems {
		if err := c.AddSet(s, nil); err != nil {
			return err
		}
	}
	for _, s := range []*nftables.Set{f.sets.lanIfs, f.sets.wan4, f.sets.ext4} {
		if err := c.AddSet(s, nil); err != nil {
			return err
		}
		c.FlushSet(s)
	}
	var lans []nftables.SetElement
	for _, l := range f.cfg.LAN {
		lans = append(lans, nftables.SetElement{Key: ifname(l)})
	}
	if len(lans) > 0 {
		if err := c.SetAddElements(f.sets.lanIfs, lans); err != nil {
			return err
		}
	}
	for _, h := range []struct {
		set *nftables.Set
		a   netip.Addr
	}{{f.sets.wan4, f.cfg.WANAddr}, {f.sets.ext4, f.external}} {
		if els := addrElements(h.a); len(els) > 0 {
			if err := c.SetAddElements(h.set, els); err != nil {
				return err
			}
		}
	}
	accept := nftables.ChainPolicyAccept
	chains := map[string]*nftables.Chain{
		chainPrerouting: {Name: chainPrerouting, Table: f.table, Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRef(prioDNAT), Policy: &accept},
		chainPostrouting: {Name: chainPostrouting, Table: f.table, Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityRef(prioSNAT), Policy: &accept},
		chainForward: {Name: chainForward, Table: f.table, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityRef(prioForward), Policy: &accept},
		chainWAN6In: {Name: chainWAN6In, Table: f.table},
	}
	if err := f.installSNAT(); err != nil {
		return err
	}
	rules := f.rules(f.sets)
	// The regular chain first: the forward chain's rules jump to it.
	for _, name := range []string{chainWAN6In, chainPrerouting, chainPostrouting, chainForward} {
		ch := c.AddChain(chains[name])
		c.FlushChain(ch)
		for _, exprs := range rules[name] {
			c.AddRule(&nftables.Rule{Table: f.table, Chain: ch, Exprs: exprs})
		}
	}
	return c.Flush()
}

// probe finds out whether re-adding an existing element updates its
// timeout (Linux 6.10 and later) or leaves it alone (older kernels, where
// a refresh must delete and add the element again in the batch).
func (f *NFT) probe() (bool, error) {
	s := &nftables.Set{Table: f.table, Name: setProbe, KeyType: nftables.TypeInetService, HasTimeout: true}
	key := binaryutil.BigEndian.PutUint16(1)
	c := f.conn
	if err := c.AddSet(s, nil); err != nil {
		return false, err
	}
	c.FlushSet(s)
	if err := c.SetAddElements(s, []nftables.SetElement{{Key: key, Timeout: time.Hour}}); err != nil {
		return false, err
	}
	if err := c.Flush(); err != nil {
		return false, err
	}
	if err := c.SetAddElements(s, []nftables.SetElement{{Key: key, Timeout: 2 * time.Hour}}); err != nil {
		return false, err
	}
	if err := c.Flush(); err != nil {
		return false, err
	}
	els, err := c.GetSetElements(s)
	if err != nil {
		return false, err
	}
	c.DelSet(s)
	if err := c.Flush(); err != nil {
		return false, err
	}
	return len(els) == 1 && els[0].Timeout == 2*time.Hour, nil
}

// maxMsgElems bounds the elements in one NEWSETELEM/DELSETELEM message:
// the element list is one netlink attribute, whose length is 16 bits.
const maxMsgElems = 400

// queue appends the messages for p to the connection's pending batch:
// dels are added (so a missing element cannot fail the batch) then
// deleted, then adds are added.
func (f *NFT) queue(p plan) error {
	var delBySet, addBySet [numElemSets][]nftables.SetElement
	for _, e := range p.dels {
		delBySet[e.set] = append(delBySet[e.set], nftables.SetElement{Key: e.key, KeyEnd: e.keyEnd, Val: e.val})
	}
	for _, e := range p.adds {
		addBySet[e.set] = append(addBySet[e.set], nftables.SetElement{Key: e.key, KeyEnd: e.keyEnd, Val: e.val, Timeout: e.timeout})
	}
	for i, els := range delBySet {
		if err := f.chunked(f.conn.SetAddElements, f.sets.elems[i], els); err != nil {
			return err
		}
		if err := f.chunked(f.conn.SetDeleteElements, f.sets.elems[i], els); err != nil {
			return err
		}
	}
	for i, els := range addBySet {
		if err := f.chunked(f.conn.SetAddElements, f.sets.elems[i], els); err != nil {
			return err
		}
	}
	return nil
}

func (f *NFT) chunked(op func(*nftables.Set, []nftables.SetElement) error, s *nftables.Set, els []nftables.SetElement) error {
	for len(els) > 0 {
		n := min(len(els), maxMsgElems)
		if err := op(s, els[:n]); err != nil {
			return err
		}
		els = els[n:]
	}
	return nil
}

// flush sends the pending batch. After an error other than the kernel
// refusing the batch, the socket may hold unread replies: it is replaced,
// so that the next batch does not read a stale answer.
func (f *NFT) flush() error {
	err := f.conn.Flush()
	if err == nil || errors.Is(err, syscall.EEXIST) || errors.Is(err, syscall.ENOENT) {
		return err
	}
	if rerr := f.redial(); rerr != nil {
		f.log.Error("netlink: reconnecting", "err", rerr)
	}
	return err
}

func (f *NFT) redial() error {
	conn, err := dial(f.nsFD)
	if err != nil {
		return err
	}
	f.conn.CloseLasting()
	f.conn = conn
	return nil
}

func dial(nsFD int) (*nftables.Conn, error) {
	opts := []nftables.ConnOption{nftables.AsLasting(), nftables.WithSockOptions(func(c *netlink.Conn) error {
		// Errors carry no copy of the (possibly large) request; large
		// Sync batches fit (the kernel caps the sizes at [rw]mem_max).
		if err := c.SetOption(netlink.CapAcknowledge, true); err != nil {
			return err
		}
		if err := c.SetReadBuffer(1 << 20); err != nil {
			return err
		}
		return c.SetWriteBuffer(4 << 20)
	})}
	if nsFD >= 0 {
		opts = append(opts, nftables.WithNetNSFd(nsFD))
	}
	return nftables.New(opts...)
}

// Apply sends c to the kernel in one netlink batch, deletions first.
// Adding an entry that exists refreshes its timeout; adding one whose key
// (protocol and WAN port, for a forward) is held with another target
// replaces it; deleting a missing entry is not an error.
//
// Concurrent calls share batches (group commit): while one batch is with
// the kernel, the changes that arrive wait and then go in the next one,
// each still applied whole and in the order the calls were made. A
// refused shared batch is sent again change by change, so that one
// change's error is not another's.
func (f *NFT) Apply(ctx context.Context, c Change) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	dels, adds, err := changeElems(c)
	if err != nil {
		return err
	}
	if len(dels)+len(adds) == 0 {
		return nil
	}
	p := &pending{dels: dels, adds: adds}
	f.qmu.Lock()
	f.waiting = append(f.waiting, p)
	f.qmu.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	// p is sent by an earlier holder of mu, or by this loop.
	for !p.done {
		f.qmu.Lock()
		n := min(len(f.waiting), maxGroup)
		group := slices.Clone(f.waiting[:n])
		f.waiting = slices.Delete(f.waiting, 0, n)
		f.qmu.Unlock()
		f.commit(group)
	}
	return p.err
}

// pending is one Apply call's change; done and err are set under NFT.mu.
type pending struct {
	dels, adds []elem
	done       bool
	err        error
}

// maxGroup bounds the changes in one shared batch (a batch must fit the
// netlink socket's buffer; Apply's changes are a few elements each).
const maxGroup = 256

// commit sends the changes of group in one batch; if the kernel refuses
// it, each change goes on its own. Called with mu held.
func (f *NFT) commit(group []*pending) {
	defer func() {
		for _, p := range group {
			p.done = true
		}
	}()
	if f.closed {
		for _, p := range group {
			p.err = ErrClosed
		}
		return
	}
	if len(group) > 1 {
		err := f.sendGroup(group)
		if err == nil {
			return
		}
		f.log.Debug("apply: shared batch refused, sending its changes one by one", "changes", len(group), "err", err)
	}
	for _, p := range group {
		p.err = f.applyOne(p.dels, p.adds)
	}
}

// sendGroup queues every change of group, in order, and flushes once.
func (f *NFT) sendGroup(group []*pending) error {
	f.batches++
	for _, p := range group {
		if err := f.queue(planChange(p.dels, p.adds, f.refreshInPlace)); err != nil {
			// Nothing was sent: drop what was queued.
			if rerr := f.redial(); rerr != nil {
				f.log.Error("netlink: reconnecting", "err", rerr)
			}
			return err
		}
	}
	return f.flush()
}

// applyOne sends one change; when the kernel disagrees with it (a key
// held with another value, an element already gone) it reads the touched
// sets and sends an exact batch. Called with mu held.
func (f *NFT) applyOne(dels, adds []elem) error {
	f.batches++
	if err := f.queue(planChange(dels, adds, f.refreshInPlace)); err != nil {
		return fmt.Errorf("firewall: apply: %w", err)
	}
	err := f.flush()
	if err == nil {
		return nil
	}
	if !errors.Is(err, syscall.EEXIST) && !errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("firewall: apply: %w", err)
	}
	// The kernel disagrees with the caller (a key held with another value):
	// read the touched sets and send an exact batch.
	f.log.Debug("apply: repairing from kernel state", "err", err)
	kernel, rerr := f.readSets(touched(dels, adds))
	if rerr != nil {
		return fmt.Errorf("firewall: apply: %w (reading state: %v)", err, rerr)
	}
	if err := f.queue(planRepair(kernel, dels, adds, f.refreshInPlace)); err != nil {
		return fmt.Errorf("firewall: apply: %w", err)
	}
	if err := f.flush(); err != nil {
		return fmt.Errorf("firewall: apply: %w", err)
	}
	return nil
}

func touched(lists ...[]elem) []setID {
	var seen [numElemSets]bool
	var out []setID
	for _, l := range lists {
		for _, e := range l {
			if !seen[e.set] {
				seen[e.set] = true
				out = append(out, e.set)
			}
		}
	}
	return out
}

// readSets returns the current elements of the given sets.
func (f *NFT) readSets(ids []setID) ([]elem, error) {
	var out []elem
	for _, id := range ids {
		els, err := f.conn.GetSetElements(f.sets.elems[id])
		if err != nil {
			if rerr := f.redial(); rerr != nil {
				f.log.Error("netlink: reconnecting", "err", rerr)
			}
			return nil, fmt.Errorf("list %s: %w", setDefs[id].name, err)
		}
		klen, vlen := fieldsLen(setDefs[id].key), fieldsLen(setDefs[id].val)
		for _, e := range els {
			if len(e.Key) != klen || len(e.Val) != vlen {
				return nil, fmt.Errorf("list %s: element %x:%x has the wrong size", setDefs[id].name, e.Key, e.Val)
			}
			var val []byte
			if vlen > 0 {
				val = e.Val
			}
			var end []byte
			if setDefs[id].interval {
				end = e.KeyEnd
			}
			out = append(out, elem{set: id, key: e.Key, keyEnd: end, val: val, timeout: e.Timeout})
		}
	}
	return out, nil
}

// maxSyncBatch bounds the elements per batch Sync sends, to stay within the
// netlink socket's buffer.
const maxSyncBatch = 2000

// Sync makes the kernel hold exactly fwds and pins (Outbound elements are
// left as they are): it reads the table's elements, deletes what is not wanted and adds what is missing (refreshing
// the timeouts of what is kept). It never flushes the sets, so entries that
// stay wanted keep working throughout.
func (f *NFT) Sync(ctx context.Context, fwds []Forward, pins []Pinhole) error {
	want, err := wantedElems(fwds, pins)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return ErrClosed
	}
	// The outbound NAT of PEER mappings is not the table's to restore:
	// those elements live out their timeouts (the core does not keep
	// them across a restart; its PEER clients ask again).
	all := make([]setID, 0, numElemSets)
	for i := range numElemSets {
		if i != setPeer4 {
			all = append(all, i)
		}
	}
	kernel, err := f.readSets(all)
	if err != nil {
		return fmt.Errorf("firewall: sync: %w", err)
	}
	p := planSync(kernel, want, f.refreshInPlace)
	f.log.Debug("sync", "kernel", len(kernel), "wanted", len(want), "delete", len(p.dels), "add", len(p.adds))
	// Deletions first (all batches), then additions.
	for len(p.dels) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(len(p.dels), maxSyncBatch)
		if err := f.queue(plan{dels: p.dels[:n]}); err != nil {
			return fmt.Errorf("firewall: sync: %w", err)
		}
		if err := f.flush(); err != nil {
			return fmt.Errorf("firewall: sync: %w", err)
		}
		p.dels = p.dels[n:]
	}
	for len(p.adds) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(len(p.adds), maxSyncBatch)
		if err := f.queue(plan{adds: p.adds[:n]}); err != nil {
			return fmt.Errorf("firewall: sync: %w", err)
		}
		if err := f.flush(); err != nil {
			return fmt.Errorf("firewall: sync: %w", err)
		}
		p.adds = p.adds[n:]
	}
	return nil
}

// ErrNotFound is returned by Packets for a pinhole the kernel does not hold.
var ErrNotFound = errors.New("firewall: no such entry")

// Packets returns the number of packets that were accepted through p (the
// element's counter; it counts every inbound packet matching the pinhole,
// not only the first of each connection). It lists the pinhole's set, so it
// is meant for occasional queries (IGD GetPinholePackets), not per packet.
func (f *NFT) Packets(ctx context.Context, p Pinhole) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	e, err := pinholeElem(p)
	if err != nil {
		return 0, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return 0, ErrClosed
	}
	els, err := f.conn.GetSetElements(f.sets.elems[e.set])
	if err != nil {
		if rerr := f.redial(); rerr != nil {
			f.log.Error("netlink: reconnecting", "err", rerr)
		}
		return 0, fmt.Errorf("firewall: packets: %w", err)
	}
	for _, k := range els {
		if string(k.Key) == string(e.key) {
			if k.Counter == nil {
				return 0, nil
			}
			return k.Counter.Packets, nil
		}
	}
	return 0, fmt.Errorf("%w: pinhole %v", ErrNotFound, p.To)
}

// SetWANAddr replaces the CPE's WAN address used for hairpin NAT (a LAN
// host connecting to it at a forward's Port); the zero Addr removes it (no
// hairpin). One batch.
func (f *NFT) SetWANAddr(ctx context.Context, a netip.Addr) error {
	return f.setHairpin(ctx, a, true)
}

// SetExternalAddr replaces the upstream's external address (the
// provider's, the ISP box's) that is hairpinned too, so that a LAN host
// reaches a mapped LAN service at the endpoint the internet uses (RFC 7648
// §3.1): connections to it are DNATed by the forwards' UpstreamPort, the
// port the upstream gave, which need not be the WAN port. The zero Addr
// removes it. One batch.
func (f *NFT) SetExternalAddr(ctx context.Context, a netip.Addr) error {
	return f.setHairpin(ctx, a, false)
}

func (f *NFT) setHairpin(ctx context.Context, a netip.Addr, wan bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	a = a.Unmap()
	if a.IsValid() && !a.Is4() {
		return fmt.Errorf("%w: address %v is not IPv4", ErrInvalid, a)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return ErrClosed
	}
	set, held := f.sets.ext4, &f.external
	if wan {
		set, held = f.sets.wan4, &f.cfg.WANAddr
	}
	f.conn.FlushSet(set)
	if els := addrElements(a); len(els) > 0 {
		if err := f.conn.SetAddElements(set, els); err != nil {
			// Nothing was sent: drop what was queued.
			if rerr := f.redial(); rerr != nil {
				f.log.Error("netlink: reconnecting", "err", rerr)
			}
			return fmt.Errorf("firewall: hairpin address: %w", err)
		}
	}
	if err := f.flush(); err != nil {
		return fmt.Errorf("firewall: hairpin address: %w", err)
	}
	*held = a
	return nil
}

// addrElements is the element of a hairpin address set (wan4, ext4):
// none for the zero Addr.
func addrElements(a netip.Addr) []nftables.SetElement {
	if a = a.Unmap(); !a.Is4() {
		return nil
	}
	return []nftables.SetElement{{Key: a.AsSlice()}}
}

func (f *NFT) closeNS() {
	if f.nsFD >= 0 {
		unix.Close(f.nsFD)
		f.nsFD = -1
	}
}

// Close removes the table (a clean exit) and closes the netlink socket.
// It is idempotent; a table already gone is not an error.
func (f *NFT) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	f.conn.DelTable(f.table)
	err := f.conn.Flush()
	if errors.Is(err, syscall.ENOENT) || errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	if cerr := f.conn.CloseLasting(); err == nil {
		err = cerr
	}
	f.closeNS()
	if err != nil {
		return fmt.Errorf("firewall: close: %w", err)
	}
	return nil
}
