package firewall

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"time"
)

// Errors returned for entries the firewall cannot express.
var (
	// ErrInvalid is wrapped by every error about a malformed Forward or Pinhole.
	ErrInvalid = errors.New("firewall: invalid entry")
	// ErrClosed is returned by every method after Close.
	ErrClosed = errors.New("firewall: closed")
)

// MaxTimeout is the longest element timeout handed to the kernel. On 32-bit
// kernels the timeout is held in jiffies and longer values are refused
// (ERANGE), so an entry that should live longer gets no kernel timeout at all
// and lives until pcpgw deletes it (or Sync drops it at the next start).
const MaxTimeout = 7 * 24 * time.Hour

// setID names one of the element-holding sets and maps of the table.
type setID int

const (
	setFwd4   setID = iota // map: l4proto . wan port : lan addr . lan port
	setFwd4H               // map: remote . l4proto . wan port : lan addr . lan port
	setAcc4                // set: lan addr . l4proto . lan port . wan port
	setAcc4H               // set: remote . lan addr . l4proto . lan port . wan port
	setPin6                // set: lan addr . l4proto . port
	setPin6H               // set: remote . lan addr . l4proto . port
	setPin6P               // set: remote port . lan addr . l4proto . port
	setPin6HP              // set: remote . remote port . lan addr . l4proto . port
	setPin6S               // set: remote prefix (interval) . lan addr . l4proto . port
	setPeer4               // map: lan addr . l4proto . lan port . remote . remote port : wan addr . wan port
	setFwd4X               // map: l4proto . upstream port : lan addr . lan port (hairpin of the external address)
	setAcc4X               // set: lan addr . l4proto . lan port . upstream port
	numElemSets
)

// field is one component of a concatenated key or value.
type field int

const (
	fProto field = iota // inet_proto, 1 byte padded to 4
	fPort               // inet_service, 2 bytes padded to 4
	fIPv4               // ipv4_addr, 4 bytes
	fIPv6               // ipv6_addr, 16 bytes
)

func (f field) size() int {
	switch f {
	case fIPv6:
		return 16
	default:
		return 4
	}
}

// setDef describes one element set: its name in the table, key and value
// layout, and whether elements carry a packet counter.
type setDef struct {
	name    string
	key     []field
	val     []field // nil: a plain set
	counter bool
	// interval: the first key field is a range (an element has a key and
	// a key end, the other fields equal in both).
	interval bool
}

var setDefs = [numElemSets]setDef{
	setFwd4:   {name: "fwd4", key: []field{fProto, fPort}, val: []field{fIPv4, fPort}},
	setFwd4H:  {name: "fwd4h", key: []field{fIPv4, fProto, fPort}, val: []field{fIPv4, fPort}},
	setAcc4:   {name: "acc4", key: []field{fIPv4, fProto, fPort, fPort}, counter: true},
	setAcc4H:  {name: "acc4h", key: []field{fIPv4, fIPv4, fProto, fPort, fPort}, counter: true},
	setPin6:   {name: "pin6", key: []field{fIPv6, fProto, fPort}, counter: true},
	setPin6H:  {name: "pin6h", key: []field{fIPv6, fIPv6, fProto, fPort}, counter: true},
	setPin6P:  {name: "pin6p", key: []field{fPort, fIPv6, fProto, fPort}, counter: true},
	setPin6HP: {name: "pin6hp", key: []field{fIPv6, fPort, fIPv6, fProto, fPort}, counter: true},
	setPin6S:  {name: "pin6s", key: []field{fIPv6, fIPv6, fProto, fPort}, counter: true, interval: true},
	setPeer4:  {name: "peer4", key: []field{fIPv4, fProto, fPort, fIPv4, fPort}, val: []field{fIPv4, fPort}},
	setFwd4X:  {name: "fwd4x", key: []field{fProto, fPort}, val: []field{fIPv4, fPort}},
	setAcc4X:  {name: "acc4x", key: []field{fIPv4, fProto, fPort, fPort}},
}

func fieldsLen(fs []field) int {
	n := 0
	for _, f := range fs {
		n += f.size()
	}
	return n
}

// elem is one kernel set or map element pcpgw wants (or found).
type elem struct {
	set     setID
	key     []byte
	keyEnd  []byte // interval sets: the range's last key
	val     []byte // nil for plain sets
	timeout time.Duration
}

func (e elem) String() string {
	return fmt.Sprintf("%s{%x:%x %v}", setDefs[e.set].name, e.key, e.val, e.timeout)
}

// supported reports whether p is a transport protocol with ports at the
// usual offsets (th dport): TCP, UDP, DCCP, SCTP, UDP-Lite.
func supported(p uint8) bool {
	switch p {
	case 6, 17, 33, 132, 136:
		return true
	}
	return false
}

// kernelTimeout converts a lease duration into the element timeout:
// rounded up to whole milliseconds, 0 (no timeout) beyond MaxTimeout.
func kernelTimeout(d time.Duration) (time.Duration, error) {
	switch {
	case d < 0:
		return 0, fmt.Errorf("%w: negative timeout %v", ErrInvalid, d)
	case d == 0 || d > MaxTimeout:
		return 0, nil
	}
	return (d + time.Millisecond - 1).Truncate(time.Millisecond), nil
}

func appendProto(b []byte, p uint8) []byte { return append(b, p, 0, 0, 0) }
func appendPort(b []byte, p uint16) []byte { return append(b, byte(p>>8), byte(p), 0, 0) }
func appendAddr(b []byte, a netip.Addr) []byte {
	return append(b, a.AsSlice()...)
}

// forwardElems returns the elements that implement f: a DNAT map entry
// (unless f.Port is 0) and a forward accept entry, and for f.UpstreamPort
// the hairpin DNAT entry and its accept entry.
func forwardElems(f Forward) ([]elem, error) {
	if !supported(f.Proto) {
		return nil, fmt.Errorf("%w: forward protocol %d", ErrInvalid, f.Proto)
	}
	to := f.To.Addr().Unmap()
	if !to.Is4() || f.To.Port() == 0 {
		return nil, fmt.Errorf("%w: forward target %v is not an IPv4 address and port", ErrInvalid, f.To)
	}
	remote := f.Remote.Unmap()
	if remote.IsValid() && remote.IsUnspecified() {
		remote = netip.Addr{} // 0.0.0.0 or ::: any remote host
	}
	if remote.IsValid() && !remote.Is4() {
		return nil, fmt.Errorf("%w: forward remote %v is not IPv4", ErrInvalid, f.Remote)
	}
	if f.UpstreamPort != 0 && (f.Port == 0 || remote.IsValid()) {
		return nil, fmt.Errorf("%w: forward upstream port %d without a WAN port, or with a remote host", ErrInvalid, f.UpstreamPort)
	}
	timeout, err := kernelTimeout(f.Timeout)
	if err != nil {
		return nil, err
	}
	wanPort := f.Port
	if wanPort == 0 {
		wanPort = f.To.Port()
	}
	val := appendPort(appendAddr(make([]byte, 0, 8), to), f.To.Port())

	var out []elem
	if remote.IsValid() {
		if f.Port != 0 {
			k := appendPort(appendProto(appendAddr(make([]byte, 0, 12), remote), f.Proto), f.Port)
			out = append(out, elem{set: setFwd4H, key: k, val: val, timeout: timeout})
		}
		k := appendAddr(make([]byte, 0, 20), remote)
		k = appendPort(appendPort(appendProto(appendAddr(k, to), f.Proto), f.To.Port()), wanPort)
		return append(out, elem{set: setAcc4H, key: k, timeout: timeout}), nil
	}
	if f.Port != 0 {
		k := appendPort(appendProto(make([]byte, 0, 8), f.Proto), f.Port)
		out = append(out, elem{set: setFwd4, key: k, val: val, timeout: timeout})
	}
	k := appendPort(appendPort(appendProto(appendAddr(make([]byte, 0, 16), to), f.Proto), f.To.Port()), wanPort)
	out = append(out, elem{set: setAcc4, key: k, timeout: timeout})
	if f.UpstreamPort != 0 {
		k := appendPort(appendProto(make([]byte, 0, 8), f.Proto), f.UpstreamPort)
		out = append(out, elem{set: setFwd4X, key: k, val: val, timeout: timeout})
		k = appendPort(appendPort(appendProto(appendAddr(make([]byte, 0, 16), to), f.Proto), f.To.Port()), f.UpstreamPort)
		out = append(out, elem{set: setAcc4X, key: k, timeout: timeout})
	}
	return out, nil
}

// pinholeElem returns the element that implements p.
func pinholeElem(p Pinhole) (elem, error) {
	if !supported(p.Proto) {
		return elem{}, fmt.Errorf("%w: pinhole protocol %d", ErrInvalid, p.Proto)
	}
	to := p.To.Addr()
	if !to.Is6() || to.Is4In6() || to.Zone() != "" || p.To.Port() == 0 {
		return elem{}, fmt.Errorf("%w: pinhole target %v is not an IPv6 address and port", ErrInvalid, p.To)
	}
	remote := p.Remote
	if remote.IsValid() && remote.Unmap().IsUnspecified() {
		remote = netip.Addr{} // :: or 0.0.0.0: any remote host
	}
	if remote.IsValid() && (!remote.Is6() || remote.Is4In6()) {
		return elem{}, fmt.Errorf("%w: pinhole remote %v is not IPv6", ErrInvalid, p.Remote)
	}
	remote = remote.WithZone("")
	timeout, err := kernelTimeout(p.Timeout)
	if err != nil {
		return elem{}, err
	}
	if pfx := p.RemotePrefix; pfx.IsValid() {
		if remote.IsValid() || p.RemotePort != 0 || !pfx.Addr().Is6() || pfx.Addr().Is4In6() || pfx.Addr().Zone() != "" {
			return elem{}, fmt.Errorf("%w: pinhole remote prefix %v (IPv6, without a remote host or port)", ErrInvalid, pfx)
		}
		pfx = pfx.Masked()
		rest := appendPort(appendProto(appendAddr(make([]byte, 0, 24), to), p.Proto), p.To.Port())
		return elem{set: setPin6S, timeout: timeout,
			key:    append(appendAddr(make([]byte, 0, 40), pfx.Addr()), rest...),
			keyEnd: append(appendAddr(make([]byte, 0, 40), lastAddr(pfx)), rest...)}, nil
	}
	e := elem{timeout: timeout, key: make([]byte, 0, 44)}
	switch {
	case remote.IsValid() && p.RemotePort != 0:
		e.set = setPin6HP
		e.key = appendPort(appendAddr(e.key, remote), p.RemotePort)
	case remote.IsValid():
		e.set = setPin6H
		e.key = appendAddr(e.key, remote)
	case p.RemotePort != 0:
		e.set = setPin6P
		e.key = appendPort(e.key, p.RemotePort)
	default:
		e.set = setPin6
	}
	e.key = appendPort(appendProto(appendAddr(e.key, to), p.Proto), p.To.Port())
	return e, nil
}

// lastAddr is the last address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As16()
	for i := p.Bits(); i < 128; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	return netip.AddrFrom16(b)
}

// outboundElem returns the element that implements o.
func outboundElem(o Outbound) (elem, error) {
	if !supported(o.Proto) {
		return elem{}, fmt.Errorf("%w: outbound protocol %d", ErrInvalid, o.Proto)
	}
	from, to, via := o.From.Addr().Unmap(), o.To.Addr().Unmap(), o.Via.Addr().Unmap()
	if !from.Is4() || !to.Is4() || !via.Is4() || o.From.Port() == 0 || o.To.Port() == 0 || o.Via.Port() == 0 {
		return elem{}, fmt.Errorf("%w: outbound %v -> %v via %v is not IPv4 addresses and ports", ErrInvalid, o.From, o.To, o.Via)
	}
	timeout, err := kernelTimeout(o.Timeout)
	if err != nil {
		return elem{}, err
	}
	k := appendAddr(make([]byte, 0, 20), from)
	k = appendPort(appendAddr(appendPort(appendProto(k, o.Proto), o.From.Port()), to), o.To.Port())
	return elem{set: setPeer4, key: k, val: appendPort(appendAddr(make([]byte, 0, 8), via), o.Via.Port()), timeout: timeout}, nil
}

// Validate reports whether the firewall can install o (an error wrapping
// ErrInvalid when not): TCP, UDP, DCCP, SCTP or UDP-Lite; IPv4 addresses
// and ports all through; a timeout not negative.
func (o Outbound) Validate() error {
	_, err := outboundElem(o)
	return err
}

// changeElems turns a Change into the elements to delete and to add.
func changeElems(c Change) (dels, adds []elem, err error) {
	for _, o := range c.DelOutbound {
		e, err := outboundElem(o)
		if err != nil {
			return nil, nil, err
		}
		dels = append(dels, e)
	}
	for _, o := range c.AddOutbound {
		e, err := outboundElem(o)
		if err != nil {
			return nil, nil, err
		}
		adds = append(adds, e)
	}
	for _, f := range c.DelForwards {
		es, err := forwardElems(f)
		if err != nil {
			return nil, nil, err
		}
		dels = append(dels, es...)
	}
	for _, p := range c.DelPinholes {
		e, err := pinholeElem(p)
		if err != nil {
			return nil, nil, err
		}
		dels = append(dels, e)
	}
	for _, f := range c.AddForwards {
		es, err := forwardElems(f)
		if err != nil {
			return nil, nil, err
		}
		adds = append(adds, es...)
	}
	for _, p := range c.AddPinholes {
		e, err := pinholeElem(p)
		if err != nil {
			return nil, nil, err
		}
		adds = append(adds, e)
	}
	return dels, adds, nil
}

// wantedElems returns the elements for a whole wanted state. Two entries
// that produce the same key are an error (the kernel could hold only one).
func wantedElems(fwds []Forward, pins []Pinhole) ([]elem, error) {
	_, all, err := changeElems(Change{AddForwards: fwds, AddPinholes: pins})
	if err != nil {
		return nil, err
	}
	seen := make(map[string]elem, len(all))
	for _, e := range all {
		id := elemID(e)
		if prev, ok := seen[id]; ok {
			if !bytes.Equal(prev.val, e.val) {
				return nil, fmt.Errorf("%w: two entries for the same %s key %x", ErrInvalid, setDefs[e.set].name, e.key)
			}
			continue
		}
		seen[id] = e
	}
	return all, nil
}

func elemID(e elem) string {
	return string(rune('a'+int(e.set))) + string(e.key)
}

// plan is what to send to the kernel, in this order: dels are first added
// (a no-op when present, so deleting a missing element cannot fail the
// batch) and then deleted; adds are then added.
type plan struct {
	dels []elem
	adds []elem
}

// planSync compares the kernel's elements with the wanted ones. An element
// with the wanted key and value is kept (and re-added to refresh its timeout
// when refreshInPlace; otherwise deleted and added again when its timeout
// must change). Everything else the kernel holds is deleted.
func planSync(kernel []elem, want []elem, refreshInPlace bool) plan {
	var p plan
	wantByID := make(map[string]elem, len(want))
	for _, e := range want {
		wantByID[elemID(e)] = e
	}
	have := make(map[string]elem, len(kernel))
	for _, k := range kernel {
		id := elemID(k)
		have[id] = k
		w, ok := wantByID[id]
		switch {
		case !ok, !bytes.Equal(w.val, k.val), (w.timeout == 0) != (k.timeout == 0):
			p.dels = append(p.dels, k)
		case w.timeout != 0 && !refreshInPlace:
			p.dels = append(p.dels, k)
		}
	}
	deleted := make(map[string]bool, len(p.dels))
	for _, d := range p.dels {
		deleted[elemID(d)] = true
	}
	for _, w := range want {
		id := elemID(w)
		if _, ok := have[id]; ok && !deleted[id] && w.timeout == 0 {
			continue // present, permanent, nothing to refresh
		}
		p.adds = append(p.adds, w)
	}
	sortElems(p.dels)
	sortElems(p.adds)
	return p
}

// planChange is Apply's plan when the kernel's state is not read: deletes
// as asked; adds refreshed in place or, on kernels that cannot update an
// element's timeout, deleted and added again.
func planChange(dels, adds []elem, refreshInPlace bool) plan {
	p := plan{dels: dels, adds: adds}
	if refreshInPlace {
		return p
	}
	seen := make(map[string]bool, len(dels))
	for _, d := range dels {
		seen[elemID(d)] = true
	}
	for _, a := range adds {
		if !seen[elemID(a)] {
			seen[elemID(a)] = true
			p.dels = append(p.dels, a)
		}
	}
	return p
}

// planRepair is Apply's plan after the fast path failed (the kernel's state
// disagrees with what the caller believed, for example a key now held with
// another value): kernel holds the current elements of the touched sets.
func planRepair(kernel, dels, adds []elem, refreshInPlace bool) plan {
	have := make(map[string]elem, len(kernel))
	for _, k := range kernel {
		have[elemID(k)] = k
	}
	var p plan
	seen := make(map[string]bool)
	for _, d := range dels {
		if k, ok := have[elemID(d)]; ok && !seen[elemID(d)] {
			seen[elemID(d)] = true
			p.dels = append(p.dels, k)
		}
	}
	for _, a := range adds {
		id := elemID(a)
		if k, ok := have[id]; ok && !seen[id] && (!bytes.Equal(k.val, a.val) || !refreshInPlace) {
			seen[id] = true
			p.dels = append(p.dels, k)
		}
		p.adds = append(p.adds, a)
	}
	return p
}

func sortElems(es []elem) {
	sort.Slice(es, func(i, j int) bool {
		if es[i].set != es[j].set {
			return es[i].set < es[j].set
		}
		return bytes.Compare(es[i].key, es[j].key) < 0
	})
}

// Validate reports whether the firewall can install f (an error wrapping
// ErrInvalid when not): TCP, UDP, DCCP, SCTP or UDP-Lite; an IPv4 target
// with a port; an IPv4 Remote if any; an UpstreamPort only with a Port
// and no Remote; a timeout not negative.
func (f Forward) Validate() error {
	_, err := forwardElems(f)
	return err
}

// Validate reports whether the firewall can install p (an error wrapping
// ErrInvalid when not): TCP, UDP, DCCP, SCTP or UDP-Lite; an IPv6 target
// (not IPv4-mapped, no zone) with a port; an IPv6 Remote if any.
func (p Pinhole) Validate() error {
	_, err := pinholeElem(p)
	return err
}
