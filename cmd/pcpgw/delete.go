package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/pcpgw/pcpgw/config"
	"github.com/pcpgw/pcpgw/internal/control"
	"github.com/pcpgw/pcpgw/mapping"
)

// Delete answers `pcpgw delete` (and, through it, ubus call pcpgw delete):
// an administrator's delete, through the core as every other. The
// selector names no Client, so secure mode (a LAN host's own mappings
// only) does not apply; the core still refuses a static forward, which
// is removed or disabled in the configuration file: the error says so.
func (d *daemon) Delete(ctx context.Context, r control.DeleteRequest) (int, error) {
	sel := mapping.Selector{ID: r.ID}
	if r.ID == 0 {
		switch r.Proto {
		case "tcp":
			sel.Proto = mapping.TCP
		case "udp":
			sel.Proto = mapping.UDP
		default:
			return 0, fmt.Errorf("protocol %q is neither tcp nor udp", r.Proto)
		}
		sel.External = r.Port
	}
	n, err := d.core.Delete(ctx, sel)
	if err == nil {
		return n, nil
	}
	for _, m := range d.core.Find(sel) {
		if m.Origin == mapping.OriginStatic {
			return n, d.staticForwardError(m)
		}
	}
	return n, err
}

// staticForwardError says which forward section made m, and where to
// change it.
func (d *daemon) staticForwardError(m mapping.Mapping) error {
	cfg := d.config()
	port := m.WANPort
	if port == 0 {
		port = m.External.Port()
	}
	file := cfg.File
	if file == "" {
		file = "the configuration"
	}
	for _, f := range cfg.Forwards {
		has := config.ProtoTCP
		if m.Proto == mapping.UDP {
			has = config.ProtoUDP
		}
		if f.ExtPort == port && f.Proto.Has(has) {
			return fmt.Errorf("%s %d is the static forward %q: remove or disable its forward section in %s", m.Proto, port, f.Name, file)
		}
	}
	return fmt.Errorf("%s %d is a static forward: remove or disable its forward section in %s", m.Proto, port, file)
}

// cmdDelete is `pcpgw delete [--json] [--socket PATH] PROTO PORT` (or
// `id ID`): the running daemon deletes the mapping, as an administrator.
func cmdDelete(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pcpgw delete", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pcpgw delete [--json] [--socket PATH] tcp|udp PORT")
		fmt.Fprintln(stderr, "       pcpgw delete [--json] [--socket PATH] id ID")
		fs.PrintDefaults()
	}
	asJSON := fs.Bool("json", false, "print JSON: {\"deleted\":N}")
	socket := fs.String("socket", config.Default().Socket, "the daemon's control socket")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	r, err := control.ParseDelete(fs.Args())
	if err != nil {
		fmt.Fprintln(stderr, "pcpgw delete:", err)
		fs.Usage()
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	n, err := control.Delete(ctx, *socket, r)
	if err != nil {
		fmt.Fprintln(stderr, "pcpgw:", err)
		return 1
	}
	if *asJSON {
		json.NewEncoder(stdout).Encode(control.DeleteAnswer{Deleted: n})
		return 0
	}
	what := fmt.Sprintf("%s %d", r.Proto, r.Port)
	if r.ID != 0 {
		what = fmt.Sprintf("id %d", r.ID)
	}
	switch n {
	case 0:
		fmt.Fprintf(stdout, "no mapping %s: nothing deleted\n", what)
	case 1:
		fmt.Fprintf(stdout, "deleted 1 mapping (%s)\n", what)
	default:
		fmt.Fprintf(stdout, "deleted %d mappings (%s)\n", n, what)
	}
	return 0
}
