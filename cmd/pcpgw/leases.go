package main

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"time"

	"github.com/pcpgw/pcpgw/internal/dhcpleases"
	"github.com/pcpgw/pcpgw/internal/filestamp"
	"github.com/pcpgw/pcpgw/mapping"
)

// leasePoll is how often the DHCP lease file is checked.
const leasePoll = 5 * time.Second

// watchLeases deletes the mappings (and pinholes) of a LAN host whose
// DHCP lease ended or was released (RFC 6970 §5.10), as dnsmasq's lease
// file tells: an address that held a lease and no longer does, or whose
// lease expired. Static forwards stay. Hosts that never had a lease
// (fixed addresses) are left alone.
func (d *daemon) watchLeases(ctx context.Context, name string, log *slog.Logger) {
	read := func() (map[netip.Addr]dhcpleases.Lease, filestamp.Stamp) {
		st := filestamp.Of(name)
		f, err := os.Open(name)
		if err != nil {
			return nil, st
		}
		defer f.Close()
		return dhcpleases.Parse(f), st
	}
	held, seen := read()
	t := time.NewTicker(leasePoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		var cur map[netip.Addr]dhcpleases.Lease
		if st := filestamp.Of(name); st != seen {
			if st.Missing() {
				continue // gone for a moment (rewritten): not "every lease ended"
			}
			cur, seen = read()
		} else {
			cur = held
		}
		for _, a := range dhcpleases.Ended(held, cur, now) {
			n, err := d.core.Delete(ctx, mapping.Selector{Internal: netip.AddrPortFrom(a, 0)})
			if n > 0 || err != nil {
				log.Info("DHCP lease ended: mappings deleted", "host", a, "mappings", n, "err", err)
			}
			delete(cur, a)
		}
		held = cur
	}
}
