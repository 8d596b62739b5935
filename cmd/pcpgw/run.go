package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pcpgw/pcpgw/config"
	"github.com/pcpgw/pcpgw/firewall"
	"github.com/pcpgw/pcpgw/igdclient"
	"github.com/pcpgw/pcpgw/internal/control"
	"github.com/pcpgw/pcpgw/internal/filestamp"
	"github.com/pcpgw/pcpgw/internal/syslogw"
	"github.com/pcpgw/pcpgw/mapping"
	"github.com/pcpgw/pcpgw/natpmp"
	"github.com/pcpgw/pcpgw/pcpclient"
	"github.com/pcpgw/pcpgw/upnpigd"
	"github.com/pcpgw/pcpgw/upstream"
	"github.com/pcpgw/pcpgw/webui"
)

// wanPoll is how often the WAN interface's IPv4 address is checked.
const wanPoll = 2 * time.Second

// configPoll is how often the configuration file is checked for changes.
const configPoll = 2 * time.Second

func newLogger(cfg *config.Config, level *slog.LevelVar, stderr io.Writer) *slog.Logger {
	level.Set(cfg.LogLevel)
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Syslog {
		if w, err := syslogw.New("pcpgw"); err == nil {
			// The syslog daemon stamps each line itself.
			opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
				if len(groups) == 0 && a.Key == slog.TimeKey {
					return slog.Attr{}
				}
				return a
			}
			return slog.New(slog.NewTextHandler(w, opts))
		}
	}
	return slog.New(slog.NewTextHandler(stderr, opts))
}

// daemon is pcpgw's parts, wired; it answers the control socket.
type daemon struct {
	bg        sync.WaitGroup // background work of reloads
	reloading sync.Mutex     // one reload at a time (SIGHUP, the page)
	mu        sync.Mutex     // guards cfg, which a reload changes
	cfg       *config.Config
	reloadCfg func() (*config.Config, []string, error) // re-reads the file and flags
	level     *slog.LevelVar
	started   time.Time
	core      *mapping.Core
	fw        *firewall.NFT
	ports     *portsetSplit   // portset mode: the set in force (guarded by mu)
	up        *upstream.Auto  // nil in local and portset mode
	lan       *natpmp.Server  // nil when NAT-PMP and PCP are off
	igd       *upnpigd.Server // nil when UPnP is off
}

// run runs pcpgw until ctx ends. It removes its nftables table and its
// control socket before it returns.
func run(ctx context.Context, cfg *config.Config, level *slog.LevelVar, reload func() (*config.Config, []string, error), log *slog.Logger) error {
	d := &daemon{cfg: cfg, started: time.Now(), reloadCfg: reload, level: level}
	mode, ok := mapping.ParseMode(cfg.Mode)
	if !ok {
		return fmt.Errorf("mode %q", cfg.Mode)
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return err
	}
	if _, err := net.InterfaceByName(cfg.WAN); err != nil {
		return fmt.Errorf("WAN interface %s: %w", cfg.WAN, err)
	}
	wan := wanAddr(cfg.WAN)
	mode, ps, err := resolvePortSet(cfg, mode, wan, log)
	if err != nil {
		return err
	}
	if mode == mapping.ModePortSet {
		wan = ps.addr // the shared address is the external one
	}

	fw, err := firewall.New(firewall.Config{
		Table: cfg.Table, WAN: cfg.WAN, WAN6: cfg.WAN6, LAN: cfg.LAN, WANAddr: wan,
		IPv6Baseline: cfg.IPv6Firewall, Logger: log,
	})
	if err != nil {
		return fmt.Errorf("firewall: %w", err)
	}
	defer func() {
		if err := fw.Close(); err != nil {
			log.Error("removing the firewall table", "err", err)
		}
	}()
	d.fw = fw
	if mode == mapping.ModePortSet {
		if err := d.applyPortSet(ctx, ps, log); err != nil {
			return err
		}
	}

	var up mapping.Upstream
	if mode == mapping.ModeLocal && cfg.Upstream != "auto" {
		log.Warn("mode local: nothing is asked upstream, option upstream " + cfg.Upstream + " is not used")
	}
	if mode != mapping.ModeLocal && mode != mapping.ModePortSet {
		want, ok := upstream.ParseKind(cfg.Upstream)
		if !ok {
			return fmt.Errorf("upstream %q", cfg.Upstream)
		}
		d.up = upstream.NewAuto(upstream.Config{
			Want: want, WANAddr: wan, Logger: log,
			// The ISP box's IGD, found by SSDP on the WAN link only.
			DiscoverIGD: upstream.IGDDiscoverer(upstream.IGDConfig{
				Client: igdclient.Config{Interface: cfg.WAN}, Logger: log,
			}),
			PCP: pcpclient.Config{
				Servers: cfg.PCPServers, ServersFile: cfg.PCPServersFile, AFTRName: cfg.AFTRName,
				ResolvConf: cfg.WANResolvFile, WANInterface: cfg.WAN, WAN6Interface: cfg.WAN6,
			},
		})
		defer d.up.Close()
		up = d.up
	}

	var reserved []uint16
	if cfg.HTTPPort > 0 {
		reserved = append(reserved, uint16(cfg.HTTPPort))
	}
	pol := policyOf(cfg)
	d.core, err = mapping.New(ctx, mapping.Config{
		Mode: mode, WANAddr: wan, Upstream: up, Firewall: fw, PortSet: mapping.PortSet{Set: ps.set, Pool: ps.pool},
		SecureMode: pol.SecureMode, Rules: pol.Rules, ReservedPorts: reserved, Quota: pol.Quota,
		MinLifetime: pol.MinLifetime, MaxLifetime: pol.MaxLifetime, Pinholes: cfg.IPv6Pinholes,
		StateDir: cfg.StateDir, LeaseFile: cfg.LeaseFile, Logger: log, Prefix64: cfg.NAT64Prefixes,
	})
	if err != nil {
		return err
	}
	defer d.core.Close()

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	// Whatever way run returns, its goroutines end before the core, the
	// PCP client and the firewall are closed (deferred above).
	defer func() {
		cancel()
		wg.Wait()
		d.bg.Wait()
	}()
	errc := make(chan error, 4)
	goRun := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil && !errors.Is(err, context.Canceled) {
				errc <- fmt.Errorf("%s: %w", name, err)
				cancel()
			}
		}()
	}
	if d.up != nil {
		goRun("upstream", func(ctx context.Context) error { d.up.Run(ctx); return nil })
		if len(cfg.NAT64Prefixes) == 0 {
			goRun("nat64", func(ctx context.Context) error { d.discoverNAT64(ctx, log); return nil })
		}
	}
	goRun("mapping", func(ctx context.Context) error { d.core.Run(ctx); return nil })
	if mode == mapping.ModePortSet {
		goRun("portset", func(ctx context.Context) error { d.watchPortSet(ctx, log); return nil })
	} else {
		goRun("wan", func(ctx context.Context) error { d.watchWAN(ctx, wan); return nil })
	}
	if cfg.DHCPLeases != "" {
		goRun("leases", func(ctx context.Context) error { d.watchLeases(ctx, cfg.DHCPLeases, log); return nil })
	}

	if cfg.NATPMP || cfg.PCP {
		d.lan, err = natpmp.New(natpmp.Config{
			Core: d.core, Interfaces: cfg.LAN, NATPMP: cfg.NATPMP, PCP: cfg.PCP,
			MinLifetime: cfg.MinLifetime, MaxLifetime: cfg.MaxLifetime, Logger: log,
		})
		if err != nil {
			return fmt.Errorf("NAT-PMP/PCP: %w", err)
		}
		goRun("natpmp", d.lan.Run)
	}
	page, err := webui.New(webui.Config{Daemon: pageDaemon{d, ctx, log}, Log: log})
	if err != nil {
		return fmt.Errorf("web page: %w", err)
	}
	goRun("webui", page.Run)
	if cfg.UPnP {
		uuid, boot := d.identity(log)
		httpPort := cfg.HTTPPort
		if httpPort == 0 {
			httpPort = upnpigd.EphemeralPort // http_port 0: any free port
		}
		d.igd, err = upnpigd.New(upnpigd.Config{
			Core: d.core, Interfaces: cfg.LAN, WAN: cfg.WAN, HTTPPort: httpPort,
			// Pinholes as far as the core allows them (ipv6_pinholes,
			// which a reload changes).
			IGDv1: cfg.IGDv1, IGDv2: cfg.IGDv2, Pinholes: true,
			UUID: uuid, BootID: boot, Friendly: "pcpgw", Logger: log, Extra: page,
		})
		if err != nil {
			return fmt.Errorf("UPnP: %w", err)
		}
		goRun("upnp", d.igd.Run)
	}
	goRun("forwards", func(ctx context.Context) error { d.addForwards(ctx, log); return nil })
	goRun("reload", func(ctx context.Context) error {
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		// The file is also reloaded when it changes (an editor, uci commit,
		// the page of another pcpgw version): checked every few seconds.
		tick := time.NewTicker(configPoll)
		defer tick.Stop()
		seen := filestamp.Of(cfg.File)
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-hup:
			case <-tick.C:
				if st := filestamp.Of(cfg.File); st != seen {
					seen = st
				} else {
					continue
				}
			}
			seen = filestamp.Of(cfg.File)
			d.reload(ctx, log) // errors are logged
		}
	})
	// The control socket opens once the front-ends listen: whoever sees
	// it (init scripts, tests, `pcpgw status`) can reach them.
	for _, ready := range d.readiness() {
		select {
		case <-ready:
		case <-ctx.Done():
			wg.Wait()
			select {
			case err := <-errc:
				return err
			default:
				return nil // stopped before it was up
			}
		}
	}
	ctl, err := control.Listen(cfg.Socket, d, log)
	if err != nil {
		return err
	}
	goRun("control", ctl.Serve)
	log.Info("pcpgw running", "version", version, "mode", d.core.Mode(), "wan", cfg.WAN, "wan_addr", wan, "lan", cfg.LAN)

	<-ctx.Done()
	ctl.Close()
	wg.Wait()
	log.Info("pcpgw stopping")
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

// readiness lists what the front-ends close once they listen.
func (d *daemon) readiness() []<-chan struct{} {
	var r []<-chan struct{}
	if d.lan != nil {
		r = append(r, d.lan.Ready())
	}
	if d.igd != nil {
		r = append(r, d.igd.Ready())
	}
	return r
}

// policyOf is the part of cfg the core takes at start and on a reload.
func policyOf(cfg *config.Config) mapping.Policy {
	quota := cfg.Quota
	if quota == 0 {
		quota = math.MaxInt
	}
	var rules []mapping.Rule
	for _, r := range cfg.PermRules {
		rules = append(rules, mapping.Rule{Allow: r.Allow, ExtLo: r.ExtPorts.Lo, ExtHi: r.ExtPorts.Hi,
			IntAddr: r.IntAddr, IntLo: r.IntPorts.Lo, IntHi: r.IntPorts.Hi, Comment: r.Comment})
	}
	return mapping.Policy{SecureMode: cfg.SecureMode, Rules: rules, Quota: quota,
		MinLifetime: cfg.MinLifetime, MaxLifetime: cfg.MaxLifetime}
}

// reload applies a re-read configuration (SIGHUP): the policy (secure
// mode, perm_rules, quota, lifetimes), ipv6_pinholes, the log level and
// the static forwards change at once; interfaces, mode, ports and the rest need a
// restart, which it says.
func (d *daemon) reload(ctx context.Context, log *slog.Logger) error {
	d.reloading.Lock()
	defer d.reloading.Unlock()
	if d.reloadCfg == nil {
		return errors.New("no configuration file to reload")
	}
	cfg, warnings, err := d.reloadCfg()
	if err != nil {
		log.Error("reload: configuration not applied", "err", err)
		return err
	}
	for _, w := range warnings {
		log.Warn(w)
	}
	old := d.config()
	if restart := restartNeeded(old, cfg); restart != "" {
		log.Warn("reload: a restart is needed to apply " + restart)
	}
	d.core.SetPolicy(policyOf(cfg))
	// Pinholes turned off are closed; UPnP subscribers hear of it.
	d.core.SetPinholes(ctx, cfg.IPv6Pinholes)
	d.level.Set(cfg.LogLevel)
	d.mu.Lock()
	d.cfg.IPv6Pinholes = cfg.IPv6Pinholes
	d.cfg.SecureMode, d.cfg.PermRules, d.cfg.Quota = cfg.SecureMode, cfg.PermRules, cfg.Quota
	d.cfg.MinLifetime, d.cfg.MaxLifetime, d.cfg.LogLevel, d.cfg.Forwards = cfg.MinLifetime, cfg.MaxLifetime, cfg.LogLevel, cfg.Forwards
	d.cfg.PortSetShare = cfg.PortSetShare
	newAFTR := cfg.AFTRName != d.cfg.AFTRName
	d.cfg.AFTRName = cfg.AFTRName
	ports := d.ports
	d.mu.Unlock()
	if newAFTR && d.up != nil {
		// DS-Lite: the DHCPv6 hook wrote the AFTR name it was given.
		log.Info("reload: new AFTR name", "aftr_name", cfg.AFTRName)
		d.up.SetAFTRName(cfg.AFTRName)
	}
	if ports != nil {
		// The forwards' ports and portset_reserve decide which part of the
		// set mappings take.
		if s, err := split(cfg, ports.portsetInfo); err != nil {
			log.Error("reload: port set not shared anew", "err", err)
		} else if !s.pool.Equal(ports.pool) {
			if err := d.applyPortSet(ctx, s, log); err != nil {
				log.Error("reload: port set", "err", err)
			}
		}
	}
	// Making forwards waits for the provider: not while the caller (the
	// page's HTTP answer) waits.
	d.bg.Add(1)
	go func() {
		defer d.bg.Done()
		d.addForwards(ctx, log)
	}()
	log.Info("configuration reloaded", "forwards", len(cfg.Forwards))
	return nil
}

// pageDaemon is the daemon as the subscriber's page sees it.
type pageDaemon struct {
	*daemon
	ctx context.Context
	log *slog.Logger
}

func (p pageDaemon) Config() config.Config { return *p.config() }
func (p pageDaemon) Reload() error         { return p.reload(p.ctx, p.log) }

// restartNeeded names the options that differ and only a restart applies.
func restartNeeded(a, b *config.Config) string {
	var diff []string
	check := func(name string, same bool) {
		if !same {
			diff = append(diff, name)
		}
	}
	check("lan", slices.Equal(a.LAN, b.LAN))
	check("wan", a.WAN == b.WAN)
	check("wan6", a.WAN6 == b.WAN6)
	check("pcp_server", slices.Equal(a.PCPServers, b.PCPServers))
	check("mode", a.Mode == b.Mode)
	check("state_dir", a.StateDir == b.StateDir)
	check("socket", a.Socket == b.Socket)
	check("http_port", a.HTTPPort == b.HTTPPort)
	check("upnp/natpmp/pcp", a.UPnP == b.UPnP && a.NATPMP == b.NATPMP && a.PCP == b.PCP)
	check("igdv1/igdv2", a.IGDv1 == b.IGDv1 && a.IGDv2 == b.IGDv2)
	check("ipv6_firewall", a.IPv6Firewall == b.IPv6Firewall)
	check("upstream", a.Upstream == b.Upstream)
	check("wan_resolv_file", a.WANResolvFile == b.WANResolvFile)
	check("nat64_prefix", slices.Equal(a.NAT64Prefixes, b.NAT64Prefixes))
	check("portset_psid/portset_psid_len/portset_offset/portset_ranges/portset_addr/map_rules",
		a.PortSetPSID == b.PortSetPSID && a.PortSetPSIDLen == b.PortSetPSIDLen && a.PortSetOffset == b.PortSetOffset &&
			a.PortSetRanges.Equal(b.PortSetRanges) && a.PortSetAddr == b.PortSetAddr && a.MapRules == b.MapRules)
	check("nft_table", a.Table == b.Table)
	check("lease_file", a.LeaseFile == b.LeaseFile)
	check("dhcp_leases", a.DHCPLeases == b.DHCPLeases)
	return strings.Join(diff, ", ")
}

// config returns a copy of the configuration in force.
func (d *daemon) config() *config.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := *d.cfg
	return &c
}

// addForwards makes the configured static forwards: permanent mappings the
// core keeps alive at the provider (a refused one stays, failing, and is
// asked for again on the provider's error lifetime).
func (d *daemon) addForwards(ctx context.Context, log *slog.Logger) {
	cfg := d.config()
	type key struct {
		proto    mapping.Proto
		port     uint16
		internal netip.AddrPort
	}
	want := map[key]bool{}
	for _, f := range cfg.Forwards {
		if !f.Enabled {
			continue
		}
		for _, p := range []struct {
			has   config.Proto
			proto mapping.Proto
		}{{config.ProtoTCP, mapping.TCP}, {config.ProtoUDP, mapping.UDP}} {
			if !f.Proto.Has(p.has) {
				continue
			}
			want[key{p.proto, f.ExtPort, netip.AddrPortFrom(f.IntAddr, f.IntPort)}] = true
			_, err := d.core.Map(ctx, mapping.Request{
				Origin: mapping.OriginStatic, Client: f.IntAddr, Proto: p.proto,
				Internal: netip.AddrPortFrom(f.IntAddr, f.IntPort), ExternalPort: f.ExtPort, ExactPort: true,
				Description: f.Description,
			})
			if err != nil {
				log.Warn("static forward", "name", f.Name, "proto", p.proto, "err", err)
			}
		}
	}
	// Forwards of the state file that are no longer configured end now.
	for _, m := range d.core.Find(mapping.Selector{Origin: mapping.OriginStatic}) {
		port := m.WANPort
		if port == 0 {
			port = m.External.Port()
		}
		if !want[key{m.Proto, port, m.Internal}] {
			d.core.Delete(ctx, mapping.Selector{Origin: mapping.OriginStatic, ID: m.ID})
		}
	}
}

// identity returns a stable UUID base (kept in the state dir) and a boot ID
// that grows on every start (UPnP BOOTID.UPNP.ORG).
func (d *daemon) identity(log *slog.Logger) (string, uint32) {
	name := filepath.Join(d.cfg.StateDir, "upnp-id")
	var id struct {
		UUID string `json:"uuid"`
		Boot uint32 `json:"boot"`
	}
	if b, err := os.ReadFile(name); err == nil {
		json.Unmarshal(b, &id)
	}
	if len(id.UUID) != 36 {
		h := sha256.Sum256([]byte(d.cfg.StateDir + strconv.FormatInt(time.Now().UnixNano(), 10)))
		x := hex.EncodeToString(h[:16])
		id.UUID = x[0:8] + "-" + x[8:12] + "-4" + x[13:16] + "-8" + x[17:20] + "-" + x[20:32]
	}
	id.Boot++
	b, _ := json.Marshal(id)
	if err := os.WriteFile(name, b, 0o600); err != nil {
		log.Warn("saving the UPnP identity", "err", err)
	}
	return id.UUID, id.Boot
}

// watchWAN tells the core when the WAN interface's IPv4 address changes.
func (d *daemon) watchWAN(ctx context.Context, last netip.Addr) {
	t := time.NewTicker(wanPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if a := wanAddr(d.cfg.WAN); a != last {
			last = a
			d.core.SetWANAddr(ctx, a)
			if d.up != nil {
				d.up.SetWAN(a)
			}
		}
	}
}

// wanAddr returns the first global IPv4 address of the interface.
func wanAddr(ifname string) netip.Addr {
	ifc, err := net.InterfaceByName(ifname)
	if err != nil {
		return netip.Addr{}
	}
	addrs, err := ifc.Addrs()
	if err != nil {
		return netip.Addr{}
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() && !p.Addr().IsLinkLocalUnicast() {
			return p.Addr()
		}
	}
	return netip.Addr{}
}

// Status answers `pcpgw status`.
func (d *daemon) Status() control.Status {
	cs := d.core.Status()
	s := control.Status{
		Version: version, Started: d.started, Mode: cs.Mode.String(), ModeConfig: d.cfg.Mode,
		WAN: d.cfg.WAN, Epoch: d.core.Epoch(time.Now()),
		Mappings: cs.Mappings, Pinholes: cs.Pinholes, Pending: cs.Pending, Failing: cs.Failing,
		Counters: map[string]uint64{}, Listeners: []string{},
	}
	if cs.WANAddr.IsValid() {
		s.WANAddr = cs.WANAddr.String()
	}
	if cs.External.IsValid() {
		s.External = cs.External.String()
	}
	s.Upstream = control.Upstream{Kind: upstream.KindLocal.String(), KindConfig: d.cfg.Upstream, Servers: []string{}}
	s.PortSet = d.portsetStatus(cs.Mappings)
	if d.up != nil {
		s.Upstream = upstreamStatus(d.up.Info(), d.cfg.Upstream)
	}
	if d.lan != nil {
		for _, a := range d.lan.Addrs() {
			s.Listeners = append(s.Listeners, "udp "+a.String())
		}
		addCounters(s.Counters, "lan_", d.lan.Stats())
	}
	if d.igd != nil {
		for _, a := range d.igd.Addrs() {
			s.Listeners = append(s.Listeners, "tcp "+a.String())
		}
		addCounters(s.Counters, "upnp_", d.igd.Stats())
	}
	return s
}

// upstreamStatus is the status's view of the upstream.
func upstreamStatus(in upstream.Info, want string) control.Upstream {
	u := control.Upstream{
		Kind: in.Kind.String(), KindConfig: want, Address: in.Address, Advice: in.Advice, Detected: in.Detected,
		Server: in.Address, Protocol: in.Protocol, Epoch: in.Epoch, Reachable: in.Reachable,
		LastAnswer: in.LastAnswer, LastError: in.LastError, Sent: in.Sent, Received: in.Received, Dropped: in.Dropped,
		Servers: append([]string{}, in.Servers...),
	}
	if in.External.IsValid() {
		u.External = in.External.String()
	}
	if dv := in.Device; dv != nil {
		u.Device = &control.Device{FriendlyName: dv.FriendlyName, Manufacturer: dv.Manufacturer, Model: dv.Model,
			Service: dv.Service, Location: dv.Location}
	}
	return u
}

// addCounters flattens a front-end's Stats struct of counters into m.
func addCounters(m map[string]uint64, prefix string, stats any) {
	b, err := json.Marshal(stats)
	if err != nil {
		return
	}
	var flat map[string]any
	if json.Unmarshal(b, &flat) != nil {
		return
	}
	for k, v := range flat {
		if f, ok := v.(float64); ok {
			m[prefix+strings.ToLower(k)] = uint64(f)
		}
	}
}

// List answers `pcpgw list`.
func (d *daemon) List() []control.Row {
	now := time.Now()
	ms := d.core.Find(mapping.Selector{})
	rows := make([]control.Row, 0, len(ms))
	for _, m := range ms {
		r := control.Row{
			ID: m.ID, Proto: m.Proto.String(), WANPort: m.WANPort, Internal: m.Internal.String(),
			Client: m.Client.String(), LeaseLeft: -1, Origin: m.Origin.String(), Upstream: m.Upstream.String(),
			Description: m.Description, Error: m.UpstreamErr, RetryAt: m.RetryAt,
		}
		if m.External.IsValid() {
			r.External = m.External.String()
		}
		if !m.Expires.IsZero() {
			r.LeaseLeft = int64(m.Lease(now) / time.Second)
		}
		rows = append(rows, r)
	}
	return rows
}
