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
// file tells: an address that held a lease and no longer does, whose lease
// expired, or that another client holds now. Static forwards stay; hosts
// that never had a lease (fixed addresses) are left alone.
//
// dnsmasq rewrites the file in place (truncate, then write): a read can
// see it empty or half written. So a read is taken only when the file did
// not change while it was read, and a host is taken for gone only when two
// reads in a row, a poll apart, say so.
func (d *daemon) watchLeases(ctx context.Context, name string, log *slog.Logger) {
	read := func() (map[netip.Addr]dhcpleases.Lease, bool) {
		before := filestamp.Of(name)
		f, err := os.Open(name)
		if err != nil {
			return nil, false
		}
		ls := dhcpleases.Parse(f)
		f.Close()
		return ls, !before.Missing() && filestamp.Of(name) == before
	}
	held, _ := read()
	suspect := map[netip.Addr]bool{} // ended in the last read
	t := time.NewTicker(leasePoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cur, ok := read()
		if !ok {
			continue // gone or being rewritten: not "every lease ended"
		}
		now := time.Now()
		ended := map[netip.Addr]bool{}
		for _, a := range dhcpleases.Ended(held, cur, now) {
			ended[a] = true
			if !suspect[a] {
				continue // once more before it counts
			}
			n, err := d.core.Delete(ctx, mapping.Selector{Internal: netip.AddrPortFrom(a, 0)})
			if n > 0 || err != nil {
				log.Info("DHCP lease ended: mappings deleted", "host", a, "mappings", n, "err", err)
			}
			delete(ended, a)
		}
		suspect = ended
		// What is not confirmed yet stays as it was until the next read
		// (also an address another client holds now).
		for a := range ended {
			cur[a] = held[a]
		}
		held = cur
	}
}
