package natpmp

import (
	"net/netip"
	"sync"
)

// maxInFlightHost is the most worker slots one LAN host holds at once (of
// maxInFlight): a host sending many different requests while they wait
// (for the upstream's detection, or a slow provider) cannot take every
// slot from the others. NAT-PMP clients send one request at a time
// (RFC 6886 §3.1); what is dropped is asked again.
const maxInFlightHost = 16

// inflight is what the workers are serving: which requests, and how many
// per host.
type inflight struct {
	mu    sync.Mutex
	reqs  map[inflightKey]struct{}
	hosts map[netip.Addr]int
}

// inflightKey is one request: who sent it, to which LAN address, and its
// bytes. A client's retransmission has the same key (RFC 6887 §8.1.1:
// the same nonce; RFC 6886 §3.1: the same request).
type inflightKey struct {
	src netip.AddrPort
	dst netip.Addr
	pkt string
}

// Outcomes of inflight.take.
const (
	taken     = iota // served: call done when finished
	duplicate        // the same request is being served: its answer serves this one
	hostFull         // the host holds maxInFlightHost slots
)

// take records k as served, unless the same request is already being
// served or its host holds its share of the slots.
func (f *inflight) take(k inflightKey) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.reqs[k]; ok {
		return duplicate
	}
	h := slotOwner(k.src.Addr())
	if f.hosts[h] >= maxInFlightHost {
		return hostFull
	}
	if f.reqs == nil {
		f.reqs = make(map[inflightKey]struct{})
		f.hosts = make(map[netip.Addr]int)
	}
	f.reqs[k] = struct{}{}
	f.hosts[h]++
	return taken
}

// done forgets k, taken before.
func (f *inflight) done(k inflightKey) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.reqs, k)
	h := slotOwner(k.src.Addr())
	if f.hosts[h]--; f.hosts[h] <= 0 {
		delete(f.hosts, h)
	}
}

// slotOwner is who a source address's worker slots count against: the
// address itself for IPv4 and IPv6 link-local sources, its /64 for other
// IPv6 ones. An IPv6 host may send from any address of the LAN's /64
// (privacy addresses; or made up to get 16 slots per address), so the
// IPv6 hosts of one prefix share maxInFlightHost slots and never take
// more than that from the IPv4 hosts. Link-local addresses are one per
// interface and host.
func slotOwner(a netip.Addr) netip.Addr {
	if !a.Is6() || a.Is4In6() || a.IsLinkLocalUnicast() {
		return a
	}
	p, _ := a.Prefix(64)
	return p.Addr()
}
