// Command pcpgw is a port-mapping daemon for home routers behind a
// provider's NAT: it serves UPnP IGD, NAT-PMP and PCP to LAN hosts and
// carries their requests to the provider's NAT through PCP (RFC 6887,
// RFC 6970), keeping the router's own nftables NAT and IPv6 pinholes in step.
//
//	pcpgw run [-c FILE] [flags]     the daemon, in the foreground
//	pcpgw status [--json]           ask the running daemon
//	pcpgw list [--json]             the mappings of the running daemon
//	pcpgw delete tcp|udp PORT       delete a mapping of the running daemon (or: id ID)
//	pcpgw check-config -c FILE      validate and print the configuration
//	pcpgw version
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/pcpgw/pcpgw/config"
	"github.com/pcpgw/pcpgw/internal/control"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `usage: pcpgw <command> [flags]

commands:
  run            run the daemon in the foreground (pcpgw run -h for its flags)
  status         show the running daemon's state (--json, --socket PATH)
  list           list the running daemon's mappings (--json, --socket PATH)
  delete         delete a mapping of the running daemon: delete tcp|udp PORT, or delete id ID (--json, --socket PATH)
  check-config   validate a configuration file and print the effective configuration (-c FILE)
  passwd         set the password of the web page (-c FILE; read twice from the terminal or stdin)
  version        print the version
`

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

func realMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "run":
		return cmdRun(args, stderr)
	case "status":
		return cmdAsk("status", args, stdout, stderr)
	case "list":
		return cmdAsk("list", args, stdout, stderr)
	case "delete":
		return cmdDelete(args, stdout, stderr)
	case "check-config":
		return cmdCheckConfig(args, stdout, stderr)
	case "passwd":
		return cmdPasswd(args, os.Stdin, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "pcpgw", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "pcpgw: unknown command %q\n%s", cmd, usage)
	return 2
}

func cmdRun(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("pcpgw run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("c", "", "configuration file (UCI syntax, as /etc/config/pcpgw)")
	flags := config.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "pcpgw run: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	// A router's memory is small and pcpgw's heap is mostly its mappings
	// (about 600 bytes each): collect at 25 % heap growth instead of Go's
	// 100 % (resident at 10,000 mappings 16 MB instead of 21 MB, for GC
	// cycles that each take a millisecond or two there). GOGC in the
	// environment overrides it.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(25)
	}
	cfg, warnings, err := config.Load(*file, flags)
	if err != nil {
		fmt.Fprintln(stderr, "pcpgw:", err)
		return 1
	}
	level := new(slog.LevelVar)
	log := newLogger(cfg, level, stderr)
	for _, w := range warnings {
		log.Warn(w)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	reload := func() (*config.Config, []string, error) { return config.Load(*file, flags) }
	if err := run(ctx, cfg, level, reload, log); err != nil {
		log.Error("pcpgw stopped", "err", err)
		return 1
	}
	return 0
}

func cmdAsk(what string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pcpgw "+what, flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	socket := fs.String("socket", config.Default().Socket, "the daemon's control socket")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var v any
	if what == "status" {
		v = new(control.Status)
	} else {
		v = new([]control.Row)
	}
	if err := control.Ask(ctx, *socket, what, v); err != nil {
		fmt.Fprintln(stderr, "pcpgw:", err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(v)
		return 0
	}
	switch v := v.(type) {
	case *control.Status:
		printStatus(stdout, v)
	case *[]control.Row:
		// The upstream the mappings are made at heads the table.
		var st control.Status
		if control.Ask(ctx, *socket, "status", &st) == nil && st.Mode != "local" {
			fmt.Fprintln(stdout, upstreamLine(st.Upstream))
		}
		printList(stdout, *v, time.Now())
	}
	return 0
}

// upstreamLine names the upstream in one line: "upstream: upnp, ISP box
// (LabBox) at 100.64.0.1:5000, which reports 203.0.113.1".
func upstreamLine(up control.Upstream) string {
	s := "upstream: " + up.Kind
	if d := up.Device; d != nil {
		if name := strings.TrimSpace(d.FriendlyName + " " + strings.TrimSpace(d.Manufacturer+" "+d.Model)); name != "" {
			s += ", " + name
		}
	}
	if up.Address != "" {
		s += " at " + up.Address
	}
	if up.External != "" {
		s += ", which reports " + up.External
	}
	if up.Kind == "none" {
		s += ": nothing upstream forwards ports (see pcpgw status)"
	}
	return s
}

func printStatus(w io.Writer, s *control.Status) {
	tw := newColumns(w)
	mode := s.Mode
	if s.ModeConfig == "auto" {
		mode += " (auto)"
	}
	fmt.Fprintf(tw, "version\t%s\n", s.Version)
	fmt.Fprintf(tw, "mode\t%s\n", mode)
	fmt.Fprintf(tw, "WAN\t%s %s\n", s.WAN, orNone(s.WANAddr))
	fmt.Fprintf(tw, "external address\t%s\n", orNone(s.External))
	if s.PortSet != nil {
		fmt.Fprintf(tw, "port set\t%s (%s)\n", s.PortSet.Text, s.PortSet.Source)
	}
	if s.Mode != "local" && s.Mode != "portset" {
		printUpstream(tw, s.Upstream)
	}
	fmt.Fprintf(tw, "listeners\t%s\n", orNone(strings.Join(s.Listeners, " ")))
	fmt.Fprintf(tw, "mappings\t%d (pending %d, failing %d)\n", s.Mappings, s.Pending, s.Failing)
	fmt.Fprintf(tw, "pinholes\t%d\n", s.Pinholes)
	fmt.Fprintf(tw, "epoch\t%d s\n", s.Epoch)
	tw.Flush()
}

// printUpstream writes the status's upstream lines.
func printUpstream(tw io.Writer, up control.Upstream) {
	kind := up.Kind
	if up.KindConfig == "auto" || up.KindConfig == "" {
		kind += " (auto)"
	}
	state := "unreachable"
	if up.Reachable {
		state = "reachable"
	}
	switch up.Kind {
	case "pcp", "natpmp":
		fmt.Fprintf(tw, "upstream\t%s\n", kind)
		fmt.Fprintf(tw, "PCP servers\t%s\n", orNone(strings.Join(up.Servers, " ")))
		fmt.Fprintf(tw, "PCP server\t%s %s %s, epoch %d\n", orNone(up.Server), up.Protocol, state, up.Epoch)
	case "upnp":
		dev := "IGD"
		if d := up.Device; d != nil {
			dev = strings.TrimSpace(d.FriendlyName + " (" + strings.TrimSpace(d.Manufacturer+" "+d.Model) + ")")
			dev = strings.TrimSuffix(dev, " ()")
		}
		fmt.Fprintf(tw, "upstream\t%s: %s at %s, %s\n", kind, dev, orNone(up.Address), state)
		if up.Device != nil {
			fmt.Fprintf(tw, "IGD service\t%s %s\n", up.Device.Service, up.Device.Location)
		}
	default:
		fmt.Fprintf(tw, "upstream\t%s\n", kind)
	}
	if up.External != "" {
		fmt.Fprintf(tw, "upstream's address\t%s\n", up.External)
	}
	if up.Advice != "" {
		fmt.Fprintf(tw, "advice\t%s\n", up.Advice)
	}
	if up.LastError != "" {
		fmt.Fprintf(tw, "last upstream error\t%s\n", up.LastError)
	}
}

// printList writes the mappings as a table; a mapping the provider has
// not made ends its line with the provider's reason and the next retry.
func printList(w io.Writer, rows []control.Row, now time.Time) {
	tw := newColumns(w)
	fmt.Fprintln(tw, "PROTO\tEXTERNAL\tWAN PORT\tINTERNAL\tLEASE\tORIGIN\tUPSTREAM\tDESCRIPTION\tPROVIDER ERROR")
	for _, r := range rows {
		why := r.Error
		if !r.RetryAt.IsZero() {
			why = strings.TrimSpace(why + fmt.Sprintf(" (retry in %v)", max(r.RetryAt.Sub(now), 0).Round(time.Second)))
		}
		lease := "permanent"
		if r.LeaseLeft >= 0 {
			lease = (time.Duration(r.LeaseLeft) * time.Second).String()
		}
		wp := "-"
		if r.WANPort != 0 {
			wp = fmt.Sprint(r.WANPort)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Proto, orNone(r.External), wp, r.Internal, lease, r.Origin, r.Upstream, r.Description, why)
	}
	tw.Flush()
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func cmdCheckConfig(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pcpgw check-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("c", "/etc/config/pcpgw", "configuration file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, warnings, err := config.Load(*file, nil)
	for _, w := range warnings {
		fmt.Fprintln(stderr, "warning:", w)
	}
	if err != nil {
		var ce *config.Error
		if errors.As(err, &ce) {
			fmt.Fprintln(stderr, ce.Error())
		} else {
			fmt.Fprintln(stderr, "pcpgw:", err)
		}
		return 1
	}
	if err := checkForwardsInMapRules(cfg); err != nil {
		fmt.Fprintln(stderr, err.Error())
		return 1
	}
	if err := cfg.WriteUCI(stdout); err != nil {
		fmt.Fprintln(stderr, "pcpgw:", err)
		return 1
	}
	return 0
}
