// Package firewalltest provides Fake, an in-memory stand-in for
// firewall.NFT for the mapping core's unit tests.
package firewalltest

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"github.com/pcpgw/pcpgw/firewall"
)

// Op names a Fake method in a Batch and for SetErr.
type Op string

// The operations a Fake records.
const (
	OpApply   Op = "apply"
	OpSync    Op = "sync"
	OpPackets Op = "packets"
	OpWANAddr Op = "wanaddr"
	OpExtAddr Op = "extaddr"
)

// Batch is one recorded call that would have reached the kernel.
type Batch struct {
	Op      Op
	Change  firewall.Change    // OpApply
	Fwds    []firewall.Forward // OpSync: the wanted state
	Pins    []firewall.Pinhole // OpSync
	WANAddr netip.Addr         // OpWANAddr
	ExtAddr netip.Addr         // OpExtAddr
	Err     error              // what the call returned
}

type fwdKey struct {
	proto  uint8
	port   uint16         // WAN port; 0 for accept-only forwards
	to     netip.AddrPort // only for accept-only forwards (the kernel's key)
	remote netip.Addr
}

// hpKey is the key of the kernel's hairpin map fwd4x: protocol and
// upstream port.
type hpKey struct {
	proto uint8
	port  uint16
}

// Hairpin is one entry of the hairpin of the upstream's external address
// as the kernel holds it (map fwd4x): a LAN connection to that address at
// Proto/Port goes to To.
type Hairpin struct {
	Proto uint8
	Port  uint16 // the upstream port (Forward.UpstreamPort)
	To    netip.AddrPort
}

type outKey struct {
	proto    uint8
	from, to netip.AddrPort
}

type flowKey struct {
	proto    uint8
	from, to netip.AddrPort
}

type pinKey struct {
	proto      uint8
	to         netip.AddrPort
	remote     netip.Addr
	remotePort uint16
	prefix     netip.Prefix
}

// Fake implements the methods of firewall.NFT in memory, with the same
// semantics: entries are validated as the kernel backend does, a change is
// all or nothing, adding an existing entry replaces it (refresh), deleting
// a missing one is not an error, Sync leaves exactly the wanted state. A
// forward's hairpin by its UpstreamPort is kept apart, keyed as the
// kernel's map is (protocol and upstream port): adding a forward replaces
// whatever held its upstream port, deleting one deletes what holds it. It
// records every call and can be told to fail. Safe for concurrent use; the
// zero value is ready.
type Fake struct {
	mu      sync.Mutex
	fwds    map[fwdKey]firewall.Forward
	hps     map[hpKey]firewall.Forward // by UpstreamPort
	pins    map[pinKey]firewall.Pinhole
	packets map[pinKey]uint64
	outs    map[outKey]firewall.Outbound
	flows   map[flowKey]netip.AddrPort // SetFlow: conntrack's flows
	wan     netip.Addr
	ext     netip.Addr // SetExternalAddr
	batches []Batch
	errFn   func(Op) error
	next    []error
	closed  bool
}

// New returns an empty Fake.
func New() *Fake { return &Fake{} }

func normAddr(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.IsValid() && a.IsUnspecified() {
		return netip.Addr{}
	}
	return a
}

func keyOfForward(f firewall.Forward) fwdKey {
	k := fwdKey{proto: f.Proto, port: f.Port, remote: normAddr(f.Remote)}
	if f.Port == 0 {
		k.to = netip.AddrPortFrom(f.To.Addr().Unmap(), f.To.Port())
	}
	return k
}

func keyOfPinhole(p firewall.Pinhole) pinKey {
	return pinKey{proto: p.Proto, to: p.To, remote: normAddr(p.Remote), remotePort: p.RemotePort, prefix: p.RemotePrefix.Masked()}
}

// SetErr makes every later call of op return fn(op) when that is not nil
// (nil fn: no more injected errors). A failing Apply or Sync changes
// nothing, like a failed netlink batch.
func (f *Fake) SetErr(fn func(Op) error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errFn = fn
}

// FailNext makes the next call (of any Op) return err and change nothing.
func (f *Fake) FailNext(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next = append(f.next, err)
}

// ErrClosed is returned after Close.
var ErrClosed = firewall.ErrClosed

func (f *Fake) injected(op Op) error {
	if f.closed {
		return ErrClosed
	}
	if len(f.next) > 0 {
		err := f.next[0]
		f.next = f.next[1:]
		return err
	}
	if f.errFn != nil {
		return f.errFn(op)
	}
	return nil
}

func (f *Fake) record(b Batch) {
	f.batches = append(f.batches, b)
}

func (f *Fake) init() {
	if f.fwds == nil {
		f.fwds = make(map[fwdKey]firewall.Forward)
		f.hps = make(map[hpKey]firewall.Forward)
		f.pins = make(map[pinKey]firewall.Pinhole)
		f.packets = make(map[pinKey]uint64)
		f.outs = make(map[outKey]firewall.Outbound)
		f.flows = make(map[flowKey]netip.AddrPort)
	}
}

func keyOfOutbound(o firewall.Outbound) outKey {
	return outKey{proto: o.Proto, from: o.From, to: o.To}
}

func validate(fwds []firewall.Forward, pins []firewall.Pinhole) error {
	for _, x := range fwds {
		if err := x.Validate(); err != nil {
			return err
		}
	}
	for _, p := range pins {
		if err := p.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// Apply applies c: deletions first, then additions.
func (f *Fake) Apply(ctx context.Context, c firewall.Change) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	err := f.injected(OpApply)
	if err == nil {
		err = validate(append(slices.Clone(c.AddForwards), c.DelForwards...), append(slices.Clone(c.AddPinholes), c.DelPinholes...))
	}
	for _, o := range append(slices.Clone(c.AddOutbound), c.DelOutbound...) {
		if err == nil {
			err = o.Validate()
		}
	}
	if err == nil {
		for _, o := range c.DelOutbound {
			delete(f.outs, keyOfOutbound(o))
		}
		for _, o := range c.AddOutbound {
			f.outs[keyOfOutbound(o)] = o
		}
		for _, x := range c.DelForwards {
			delete(f.fwds, keyOfForward(x))
			if x.UpstreamPort != 0 {
				delete(f.hps, hpKey{x.Proto, x.UpstreamPort})
			}
		}
		for _, p := range c.DelPinholes {
			delete(f.pins, keyOfPinhole(p))
			delete(f.packets, keyOfPinhole(p))
		}
		for _, x := range c.AddForwards {
			f.fwds[keyOfForward(x)] = x
			if x.UpstreamPort != 0 {
				f.hps[hpKey{x.Proto, x.UpstreamPort}] = x
			}
		}
		for _, p := range c.AddPinholes {
			f.pins[keyOfPinhole(p)] = p
		}
	}
	f.record(Batch{Op: OpApply, Change: cloneChange(c), Err: err})
	return err
}

// Sync replaces the whole state with fwds and pins.
func (f *Fake) Sync(ctx context.Context, fwds []firewall.Forward, pins []firewall.Pinhole) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	err := f.injected(OpSync)
	if err == nil {
		err = validate(fwds, pins)
	}
	if err == nil {
		seen := make(map[fwdKey]firewall.Forward, len(fwds))
		seenHP := make(map[hpKey]firewall.Forward)
		for _, x := range fwds {
			if prev, ok := seen[keyOfForward(x)]; ok && prev.To != x.To {
				err = fmt.Errorf("%w: two entries for the same key (%d/%d)", firewall.ErrInvalid, x.Proto, x.Port)
				break
			}
			seen[keyOfForward(x)] = x
			if x.UpstreamPort == 0 {
				continue
			}
			if prev, ok := seenHP[hpKey{x.Proto, x.UpstreamPort}]; ok && prev.To != x.To {
				err = fmt.Errorf("%w: two entries for the same upstream port (%d/%d)", firewall.ErrInvalid, x.Proto, x.UpstreamPort)
				break
			}
			seenHP[hpKey{x.Proto, x.UpstreamPort}] = x
		}
	}
	if err == nil {
		old := f.packets
		f.fwds = make(map[fwdKey]firewall.Forward, len(fwds))
		f.hps = make(map[hpKey]firewall.Forward)
		f.pins = make(map[pinKey]firewall.Pinhole, len(pins))
		f.packets = make(map[pinKey]uint64)
		for _, x := range fwds {
			f.fwds[keyOfForward(x)] = x
			if x.UpstreamPort != 0 {
				f.hps[hpKey{x.Proto, x.UpstreamPort}] = x
			}
		}
		for _, p := range pins {
			k := keyOfPinhole(p)
			f.pins[k] = p
			if n, ok := old[k]; ok {
				f.packets[k] = n
			}
		}
	}
	f.record(Batch{Op: OpSync, Fwds: slices.Clone(fwds), Pins: slices.Clone(pins), Err: err})
	return err
}

// Packets returns the count set with SetPackets (0 by default) for a
// pinhole the Fake holds, and an error wrapping firewall.ErrNotFound for
// one it does not.
func (f *Fake) Packets(ctx context.Context, p firewall.Pinhole) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	if err := f.injected(OpPackets); err != nil {
		return 0, err
	}
	if err := p.Validate(); err != nil {
		return 0, err
	}
	k := keyOfPinhole(p)
	if _, ok := f.pins[k]; !ok {
		return 0, fmt.Errorf("%w: pinhole %v", firewall.ErrNotFound, p.To)
	}
	return f.packets[k], nil
}

// SetWANAddr records the WAN address (the zero Addr clears it).
func (f *Fake) SetWANAddr(ctx context.Context, a netip.Addr) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	err := f.injected(OpWANAddr)
	a = a.Unmap()
	if err == nil && a.IsValid() && !a.Is4() {
		err = fmt.Errorf("%w: WAN address %v is not IPv4", firewall.ErrInvalid, a)
	}
	if err == nil {
		f.wan = a
	}
	f.record(Batch{Op: OpWANAddr, WANAddr: a, Err: err})
	return err
}

// SetExternalAddr records the upstream's external address hairpinned
// beside the WAN address, by the forwards' upstream ports (the zero Addr
// clears it).
func (f *Fake) SetExternalAddr(ctx context.Context, a netip.Addr) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	err := f.injected(OpExtAddr)
	a = a.Unmap()
	if err == nil && a.IsValid() && !a.Is4() {
		err = fmt.Errorf("%w: address %v is not IPv4", firewall.ErrInvalid, a)
	}
	if err == nil {
		f.ext = a
	}
	f.record(Batch{Op: OpExtAddr, ExtAddr: a, Err: err})
	return err
}

// Hairpin says where the CPE sends a LAN host's connection of proto to
// dst, as the kernel's rules do: at the WAN address by the WAN port of a
// forward without a remote host (map fwd4), at the upstream's external
// address by the upstream port (map fwd4x). ok is false when nothing
// there takes it.
func (f *Fake) Hairpin(proto uint8, dst netip.AddrPort) (to netip.AddrPort, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := dst.Addr().Unmap()
	if !a.IsValid() {
		return netip.AddrPort{}, false
	}
	if a == f.wan {
		if x, ok := f.fwds[fwdKey{proto: proto, port: dst.Port()}]; ok && dst.Port() != 0 {
			return x.To, true
		}
	}
	if a == f.ext {
		if x, ok := f.hps[hpKey{proto, dst.Port()}]; ok {
			return x.To, true
		}
	}
	return netip.AddrPort{}, false
}

// Hairpins returns the hairpin entries of the upstream's external address
// (map fwd4x), sorted by protocol and upstream port.
func (f *Fake) Hairpins() []Hairpin {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Hairpin, 0, len(f.hps))
	for k, x := range f.hps {
		out = append(out, Hairpin{Proto: k.proto, Port: k.port, To: x.To})
	}
	slices.SortFunc(out, func(a, b Hairpin) int { return cmp.Or(cmp.Compare(a.Proto, b.Proto), cmp.Compare(a.Port, b.Port)) })
	return out
}

// ExternalAddr returns the address last set with SetExternalAddr.
func (f *Fake) ExternalAddr() netip.Addr {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ext
}

// Close empties the Fake (the table is removed); later calls fail with
// ErrClosed. Idempotent.
func (f *Fake) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	f.fwds, f.hps, f.pins, f.packets, f.outs, f.flows = nil, nil, nil, nil, nil, nil
	return nil
}

// SetPackets sets the packet count Packets returns for p; it reports false
// when the Fake does not hold p.
func (f *Fake) SetPackets(p firewall.Pinhole, n uint64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	k := keyOfPinhole(p)
	if _, ok := f.pins[k]; !ok {
		return false
	}
	f.packets[k] = n
	return true
}

// Expire removes the entries of c as the kernel does when their timeouts
// run out: without a recorded batch.
func (f *Fake) Expire(c firewall.Change) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	for _, x := range append(slices.Clone(c.DelForwards), c.AddForwards...) {
		delete(f.fwds, keyOfForward(x))
		if x.UpstreamPort != 0 {
			delete(f.hps, hpKey{x.Proto, x.UpstreamPort})
		}
	}
	for _, p := range append(slices.Clone(c.DelPinholes), c.AddPinholes...) {
		delete(f.pins, keyOfPinhole(p))
		delete(f.packets, keyOfPinhole(p))
	}
}

// Outbound returns the outbound NAT entries held, sorted by protocol,
// LAN endpoint, remote.
func (f *Fake) Outbound() []firewall.Outbound {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]firewall.Outbound, 0, len(f.outs))
	for _, o := range f.outs {
		out = append(out, o)
	}
	slices.SortFunc(out, func(a, b firewall.Outbound) int {
		return cmp.Or(cmp.Compare(a.Proto, b.Proto), a.From.Compare(b.From), a.To.Compare(b.To))
	})
	return out
}

// SetFlow makes FlowSource find a flow of proto from -> to leaving with
// the source src (the zero src forgets it), as conntrack would.
func (f *Fake) SetFlow(proto uint8, from, to, src netip.AddrPort) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	k := flowKey{proto: proto, from: from, to: to}
	if !src.IsValid() {
		delete(f.flows, k)
		return
	}
	f.flows[k] = src
}

// FlowSource returns the source set with SetFlow, else an error wrapping
// firewall.ErrNotFound (as firewall.NFT.FlowSource).
func (f *Fake) FlowSource(ctx context.Context, proto uint8, from, to netip.AddrPort) (netip.AddrPort, error) {
	if err := ctx.Err(); err != nil {
		return netip.AddrPort{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	if f.closed {
		return netip.AddrPort{}, ErrClosed
	}
	if src, ok := f.flows[flowKey{proto: proto, from: from, to: to}]; ok {
		return src, nil
	}
	return netip.AddrPort{}, fmt.Errorf("%w: flow %v -> %v", firewall.ErrNotFound, from, to)
}

// Forwards returns the forwards held, sorted by protocol, WAN port, target.
func (f *Fake) Forwards() []firewall.Forward {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]firewall.Forward, 0, len(f.fwds))
	for _, x := range f.fwds {
		out = append(out, x)
	}
	slices.SortFunc(out, func(a, b firewall.Forward) int {
		return cmp.Or(cmp.Compare(a.Proto, b.Proto), cmp.Compare(a.Port, b.Port), a.To.Compare(b.To), a.Remote.Compare(b.Remote))
	})
	return out
}

// Pinholes returns the pinholes held, sorted by protocol, target, remote.
func (f *Fake) Pinholes() []firewall.Pinhole {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]firewall.Pinhole, 0, len(f.pins))
	for _, p := range f.pins {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b firewall.Pinhole) int {
		return cmp.Or(cmp.Compare(a.Proto, b.Proto), a.To.Compare(b.To), a.Remote.Compare(b.Remote), cmp.Compare(a.RemotePort, b.RemotePort))
	})
	return out
}

// WANAddr returns the address last set with SetWANAddr.
func (f *Fake) WANAddr() netip.Addr {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.wan
}

// Batches returns a copy of the recorded calls, oldest first.
func (f *Fake) Batches() []Batch {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Batch, len(f.batches))
	for i, b := range f.batches {
		b.Change = cloneChange(b.Change)
		b.Fwds, b.Pins = slices.Clone(b.Fwds), slices.Clone(b.Pins)
		out[i] = b
	}
	return out
}

// Reset forgets the recorded batches (the state is kept).
func (f *Fake) Reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.batches = nil
}

func cloneChange(c firewall.Change) firewall.Change {
	return firewall.Change{
		AddForwards: slices.Clone(c.AddForwards), DelForwards: slices.Clone(c.DelForwards),
		AddPinholes: slices.Clone(c.AddPinholes), DelPinholes: slices.Clone(c.DelPinholes),
		AddOutbound: slices.Clone(c.AddOutbound), DelOutbound: slices.Clone(c.DelOutbound),
	}
}
