package config

import (
	"flag"
	"fmt"
	"strings"
)

// Flags holds the flags of `pcpgw run` that were set on the command line;
// Load applies them over the file.
type Flags struct {
	// vals holds the raw values of each set flag's option, by UCI name:
	// every item for a list, the last value otherwise ("1"/"0" for a
	// boolean).
	vals map[string][]string
	// flags maps UCI names to the flag that set them last.
	flags map[string]string
}

// RegisterFlags adds the flags of `pcpgw run` to fs: --lan, --wan, --wan6,
// --pcp-server, --mode, --state-dir, --socket, --http-port, --log-level,
// --syslog and the booleans --upnp, --natpmp, --pcp, --ipv6-pinholes,
// --secure-mode with their --no- forms. It does not register -c.
func RegisterFlags(fs *flag.FlagSet) *Flags {
	f := &Flags{vals: map[string][]string{}, flags: map[string]string{}}
	for i := range settings {
		st := &settings[i]
		if st.flag == "" {
			continue
		}
		usage := st.help + " (" + flagDefault(st) + ")"
		if a := flagArgs[st.flag]; a != "" {
			usage = st.help + " (`" + a + "`; " + flagDefault(st) + ")"
		}
		if st.boolean {
			fs.Var(&flagValue{f: f, st: st}, st.flag, usage)
			if !st.noNeg {
				fs.Var(&flagValue{f: f, st: st, neg: true}, "no-"+st.flag, "Turn off --"+st.flag+".")
			}
			continue
		}
		fs.Var(&flagValue{f: f, st: st}, st.flag, usage)
	}
	return f
}

// flagArgs names the argument of each valued flag in -h.
var flagArgs = map[string]string{
	"lan": "IFNAME", "wan": "IFNAME", "wan6": "IFNAME", "pcp-server": "ADDR[:PORT]", "mode": "MODE", "upstream": "KIND",
	"state-dir": "DIR", "socket": "PATH", "http-port": "PORT", "log-level": "LEVEL",
}

func flagDefault(st *setting) string {
	if st.list {
		return "repeatable; option " + st.name + " in the file; default " + st.def
	}
	return "option " + st.name + " in the file; default " + st.def
}

// IsSet reports whether the flag called name (without dashes; the --no-
// form counts as its positive name) was given.
func (f *Flags) IsSet(name string) bool {
	if f == nil {
		return false
	}
	name = strings.TrimPrefix(name, "no-")
	for _, fl := range f.flags {
		if strings.TrimPrefix(fl, "no-") == name {
			return true
		}
	}
	return false
}

// apply sets c from the flags that were given.
func (f *Flags) apply(c *Config, o origins) error {
	for i := range settings {
		st := &settings[i]
		vals, ok := f.vals[st.name]
		if !ok {
			continue
		}
		if st.list {
			st.clear(c)
		}
		for _, v := range vals {
			if err := st.set(c, v); err != nil {
				return &Error{Msg: fmt.Sprintf("--%s: %v", f.flags[st.name], err)}
			}
		}
		o[st.name] = origin{flag: f.flags[st.name]}
	}
	return nil
}

// flagValue is the flag.Value of one flag.
type flagValue struct {
	f   *Flags
	st  *setting
	neg bool // the --no- form
}

// String is empty: the defaults are in the usage text, and flag compares
// String of a zero flagValue to decide whether to print one.
func (v *flagValue) String() string { return "" }

func (v *flagValue) IsBoolFlag() bool { return v.st != nil && v.st.boolean }

func (v *flagValue) Set(s string) error {
	name := v.st.flag
	if v.neg {
		name = "no-" + name
	}
	if v.st.boolean {
		b, err := parseBool(s)
		if err != nil {
			return err
		}
		v.f.vals[v.st.name] = []string{formatBool(b != v.neg)}
		v.f.flags[v.st.name] = name
		return nil
	}
	// Check the value now, so that flag.Parse reports it.
	scratch := Default()
	if err := v.st.set(&scratch, s); err != nil {
		return err
	}
	if v.st.list {
		v.f.vals[v.st.name] = append(v.f.vals[v.st.name], s)
	} else {
		v.f.vals[v.st.name] = []string{s}
	}
	v.f.flags[v.st.name] = name
	return nil
}
