// Package filestamp tells whether a file changed since it was last looked
// at, by its modification time and size: how pcpgw follows files other
// programs write (its configuration, the DHCP hooks' PCP servers,
// dnsmasq's leases) without inotify.
package filestamp

import (
	"os"
	"time"
)

// Stamp identifies a version of a file; the zero Stamp means the file
// cannot be read (or no file).
type Stamp struct {
	mod  time.Time
	size int64
}

// Of returns name's stamp ("" or an unreadable file: the zero Stamp).
func Of(name string) Stamp {
	if name == "" {
		return Stamp{}
	}
	fi, err := os.Stat(name)
	if err != nil {
		return Stamp{}
	}
	return Stamp{fi.ModTime(), fi.Size()}
}

// Missing reports whether s is the zero Stamp.
func (s Stamp) Missing() bool { return s == Stamp{} }
