package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pcpgw/pcpgw/config"
	"github.com/pcpgw/pcpgw/firewall"
	"github.com/pcpgw/pcpgw/internal/control"
	"github.com/pcpgw/pcpgw/mapping"
	"github.com/pcpgw/pcpgw/portset"
)

// portsetInfo is the provider's port set and the address it goes with.
type portsetInfo struct {
	set    portset.Set
	addr   netip.Addr // the shared address; invalid: not known (yet)
	source string     // "options", "map rules FILE"
}

// portsetSplit is portsetInfo divided between mappings and the router's
// outbound connections (Config.PortSetShare).
type portsetSplit struct {
	portsetInfo
	pool, snat portset.Set
}

// mapRulesFile is the map rules file to read: map_rules, else the one
// OpenWrt's map.sh writes for the WAN's map interface (device
// map-<cfg>: /tmp/map-<cfg>.rules); "" when the WAN is no map
// interface.
func mapRulesFile(cfg *config.Config) string {
	if cfg.MapRules != "" {
		return cfg.MapRules
	}
	if strings.HasPrefix(cfg.WAN, "map-") {
		return filepath.Join("/tmp", cfg.WAN+".rules")
	}
	return ""
}

// findPortSet finds the provider's port set: the options' (portset_ranges
// or the PSID options: what the user wrote wins), else the map rules of
// the WAN's map interface. ok is false when there is none: no options and
// no map rules, or map rules that give the router a whole address.
func findPortSet(cfg *config.Config, wan netip.Addr) (info portsetInfo, ok bool, err error) {
	set, err := cfg.PortSet()
	if err != nil {
		return info, false, err
	}
	if !set.Empty() {
		info = portsetInfo{set: set, addr: cfg.PortSetAddr, source: "options"}
	}
	if name := mapRulesFile(cfg); name != "" {
		b, err := os.ReadFile(name)
		switch {
		case errors.Is(err, fs.ErrNotExist) && cfg.MapRules == "":
			// Not (yet) written: the map interface is down.
		case err != nil:
			return info, false, fmt.Errorf("map rules: %w", err)
		default:
			r, err := portset.ParseMapRules(b)
			if err != nil {
				return info, false, fmt.Errorf("map rules %s: %w", name, err)
			}
			if info.set.Empty() && !r.Full {
				info = portsetInfo{set: r.Ports, source: "map rules " + name}
			}
			if !info.addr.IsValid() {
				info.addr = r.Addr
			}
		}
	}
	if info.set.Empty() {
		return portsetInfo{}, false, nil
	}
	if !info.addr.IsValid() {
		info.addr = wan
	}
	return info, true, nil
}

// checkForwardsInMapRules refuses, at config check, an enabled IPv4
// static forward whose external port lies outside the port set of the WAN's
// map rules (the config checks the options' set itself): the provider
// forwards no other port to this router. Nothing to check without map
// rules, or when the options give the set.
func checkForwardsInMapRules(cfg *config.Config) error {
	if set, err := cfg.PortSet(); err != nil || !set.Empty() {
		return nil
	}
	info, ok, err := findPortSet(cfg, netip.Addr{})
	if err != nil {
		return err
	}
	if !ok {
		return nil
	}
	for _, f := range cfg.Forwards {
		if f.Enabled && f.IntAddr.Is4() && !info.set.Contains(f.ExtPort) {
			return &config.Error{File: cfg.File, Line: f.Line, Msg: fmt.Sprintf(
				"forward %q: external port %d is outside the port set of the %s (%s): the provider forwards no other port to this router",
				f.Name, f.ExtPort, info.source, info.set.Summary(3))}
		}
	}
	return nil
}

// split divides info between mappings and outbound connections: the
// static forwards' ports always go to mappings.
func split(cfg *config.Config, info portsetInfo) (portsetSplit, error) {
	var keep []portset.Range
	for _, f := range cfg.Forwards {
		if f.Enabled && f.IntAddr.Is4() {
			keep = append(keep, portset.Range{Lo: f.ExtPort, Hi: f.ExtPort})
		}
	}
	s := portsetSplit{portsetInfo: info}
	s.pool, s.snat = info.set.Split(cfg.PortSetShare, portset.New(keep...))
	if !cfg.PortSetShare.IsZero() && s.snat.Empty() {
		return s, fmt.Errorf("portset_reserve %s leaves no port of the set (%d ports) to the router's outbound connections",
			cfg.PortSetShare, info.set.Len())
	}
	return s, nil
}

// resolvePortSet decides whether pcpgw runs in portset mode: mode portset
// (a port set is then required), or auto with a port set found.
func resolvePortSet(cfg *config.Config, mode mapping.Mode, wan netip.Addr, log *slog.Logger) (mapping.Mode, portsetSplit, error) {
	if mode != mapping.ModeAuto && mode != mapping.ModePortSet {
		return mode, portsetSplit{}, nil
	}
	info, ok, err := findPortSet(cfg, wan)
	switch {
	case err != nil && mode == mapping.ModePortSet:
		return mode, portsetSplit{}, err
	case err != nil:
		log.Warn("no port set: not choosing portset mode", "err", err)
		return mode, portsetSplit{}, nil
	case !ok && mode == mapping.ModePortSet:
		return mode, portsetSplit{}, fmt.Errorf("mode portset: no port set (the WAN %s is no map interface with a port set, and no portset_ranges or portset_psid option)", cfg.WAN)
	case !ok:
		return mode, portsetSplit{}, nil
	}
	if !info.addr.IsValid() {
		return mode, portsetSplit{}, fmt.Errorf("mode portset: no shared IPv4 address (set portset_addr)")
	}
	s, err := split(cfg, info)
	if err != nil {
		return mode, portsetSplit{}, err
	}
	return mapping.ModePortSet, s, nil
}

// applyPortSet makes s the port set in force: the core's pool and the
// outbound NAT. Called at start (core nil) and when the set changes.
func (d *daemon) applyPortSet(ctx context.Context, s portsetSplit, log *slog.Logger) error {
	if d.fw != nil {
		if err := d.fw.SetSNAT(ctx, firewall.SNAT{Addr: s.addr, Ports: s.snat}); err != nil {
			return fmt.Errorf("outbound NAT over the port set: %w", err)
		}
	}
	if d.core != nil {
		if n := d.core.SetPortSet(ctx, mapping.PortSet{Set: s.set, Pool: s.pool}); n > 0 {
			log.Info("mappings outside the new port set removed", "count", n)
		}
		d.core.SetWANAddr(ctx, s.addr)
	}
	d.mu.Lock()
	d.ports = &s
	d.mu.Unlock()
	log.Info("port set", "source", s.source, "addr", s.addr, "set", s.set.Summary(3), "ports", s.set.Len(),
		"mappings", s.pool.Len(), "outbound", s.snat.Len())
	return nil
}

// watchPortSet follows the port set in portset mode (it replaces
// watchWAN): the map rules and the WAN address, checked every wanPoll. A
// map interface that goes down keeps the last set until it is back.
func (d *daemon) watchPortSet(ctx context.Context, log *slog.Logger) {
	t := time.NewTicker(wanPoll)
	defer t.Stop()
	var lastErr string
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cfg := d.config()
		info, ok, err := findPortSet(cfg, wanAddr(cfg.WAN))
		if err != nil || !ok {
			if msg := fmt.Sprint(err); err != nil && msg != lastErr {
				log.Warn("port set: keeping the last one", "err", err)
				lastErr = msg
			}
			continue
		}
		lastErr = ""
		d.mu.Lock()
		cur := d.ports
		d.mu.Unlock()
		if cur != nil && cur.set.Equal(info.set) && cur.addr == info.addr {
			continue
		}
		s, err := split(cfg, info)
		if err == nil {
			err = d.applyPortSet(ctx, s, log)
		}
		if err != nil {
			log.Error("new port set not applied", "err", err)
			continue
		}
		d.bg.Add(1)
		go func() {
			defer d.bg.Done()
			d.addForwards(ctx, log)
		}()
	}
}

// portsetStatus is the status's view of the port set (nil outside
// portset mode).
func (d *daemon) portsetStatus(mapped int) *control.PortSet {
	d.mu.Lock()
	s := d.ports
	d.mu.Unlock()
	if s == nil {
		return nil
	}
	ranges := func(set portset.Set) []string {
		out := []string{}
		for _, r := range set.Ranges() {
			out = append(out, r.String())
		}
		return out
	}
	st := &control.PortSet{
		Ranges: ranges(s.set), Usable: s.set.Len(), MappingRanges: ranges(s.pool), ForMappings: s.pool.Len(),
		Mapped: mapped, Source: s.source,
	}
	text := "ports " + s.set.Summary(3) + ": " + strconv.Itoa(st.Usable) + " usable, "
	if !s.snat.Empty() {
		st.OutboundRanges = ranges(s.snat)
		text += strconv.Itoa(st.ForMappings) + " for mappings (" + s.pool.Summary(3) + "), " +
			strconv.Itoa(s.snat.Len()) + " for outbound connections, "
	}
	st.Text = text + strconv.Itoa(mapped) + " mapped"
	return st
}
