package main

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"github.com/pcpgw/pcpgw/internal/dnsq"
	"github.com/pcpgw/pcpgw/nat64"
)

// How often the NAT64 prefix is looked for (RFC 7050) while none is
// known, and checked again once one is.
const (
	nat64Retry   = 5 * time.Minute
	nat64Recheck = time.Hour
)

// discoverNAT64 finds the provider's NAT64 prefixes with RFC 7050 (the
// AAAA records of ipv4only.arpa from the resolvers learned on the WAN,
// else the system's) and hands them to the core, for the NAT64 mappings
// whose provider's answer names none. It runs until ctx ends.
func (d *daemon) discoverNAT64(ctx context.Context, log *slog.Logger) {
	cfg := d.config()
	var last []netip.Prefix
	for {
		rc, err := dnsq.ReadResolvConf(cfg.WANResolvFile)
		if err != nil {
			rc, err = dnsq.ReadResolvConf("/etc/resolv.conf")
		}
		wait := nat64Retry
		if err == nil {
			pfx, err := nat64.Discover(ctx, rc.Servers, 5*time.Second)
			switch {
			case err == nil:
				wait = nat64Recheck
				if !slices.Equal(pfx, last) {
					log.Info("NAT64 prefixes found (RFC 7050)", "prefix64", pfx)
					last = pfx
					d.core.SetPrefix64(ctx, pfx)
				}
			case ctx.Err() == nil:
				log.Debug("no NAT64 prefix found (RFC 7050)", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}
