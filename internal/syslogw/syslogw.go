// Package syslogw writes log lines to the local syslog daemon (OpenWrt's
// logd, rsyslog, syslog-ng) through its socket, /dev/log.
//
// It stands in for the standard library's log/syslog, whose Dial takes the
// socket's address as a string and so links Go's whole DNS resolver into
// the binary. It also gives each line the severity of its slog level
// rather than one severity for everything.
package syslogw

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"
)

// Paths are where the local syslog socket is looked for, in order.
var Paths = []string{"/dev/log", "/var/run/syslog", "/var/run/log"}

// Syslog severities (RFC 5424 §6.2.1) and the daemon facility.
const (
	sevErr     = 3
	sevWarning = 4
	sevInfo    = 6
	sevDebug   = 7
	facDaemon  = 3 << 3
)

// Writer sends each Write as one syslog message with the daemon facility.
// A line that starts with a slog text handler's level field (level=WARN
// ...) gets that level's severity; others are informational. Safe for
// concurrent use.
type Writer struct {
	tag   string
	pid   string
	paths []string

	mu   sync.Mutex
	conn *net.UnixConn
	now  func() time.Time
}

// New connects to the first of paths (Paths when empty) that takes a
// datagram or stream connection; tag names the program in each message.
func New(tag string, paths ...string) (*Writer, error) {
	if len(paths) == 0 {
		paths = Paths
	}
	w := &Writer{tag: tag, pid: strconv.Itoa(os.Getpid()), paths: paths, now: time.Now}
	if err := w.connect(); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *Writer) connect() error {
	var errs []error
	for _, p := range w.paths {
		for _, network := range []string{"unixgram", "unix"} {
			c, err := net.DialUnix(network, nil, &net.UnixAddr{Name: p, Net: network})
			if err == nil {
				w.conn = c
				return nil
			}
			errs = append(errs, err)
		}
	}
	return fmt.Errorf("syslogw: no syslog socket: %w", errors.Join(errs...))
}

// Write sends p as one message; a write that fails is tried once more on
// a new connection (the syslog daemon restarted).
func (w *Writer) Write(p []byte) (int, error) {
	msg := w.format(p)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.conn != nil {
		if _, err := w.conn.Write(msg); err == nil {
			return len(p), nil
		}
		w.conn.Close()
		w.conn = nil
	}
	if err := w.connect(); err != nil {
		return 0, err
	}
	if _, err := w.conn.Write(msg); err != nil {
		return 0, fmt.Errorf("syslogw: %w", err)
	}
	return len(p), nil
}

// Close closes the connection.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.conn == nil {
		return nil
	}
	err := w.conn.Close()
	w.conn = nil
	return err
}

// format makes the message in the local syslog format (RFC 3164's, as
// syslog(3) writes it): <PRI>Mmm dd hh:mm:ss tag[pid]: text, one line.
func (w *Writer) format(p []byte) []byte {
	p = bytes.TrimRight(p, "\n")
	b := make([]byte, 0, len(p)+48)
	b = append(b, '<')
	b = strconv.AppendInt(b, int64(facDaemon|severity(p)), 10)
	b = append(b, '>')
	b = w.now().AppendFormat(b, time.Stamp)
	b = append(b, ' ')
	b = append(b, w.tag...)
	b = append(b, '[')
	b = append(b, w.pid...)
	b = append(b, "]: "...)
	b = append(b, p...)
	return append(b, '\n')
}

// severity reads a leading level field of slog's text handler.
func severity(p []byte) int {
	lv, ok := bytes.CutPrefix(p, []byte("level="))
	if !ok {
		return sevInfo
	}
	switch {
	case bytes.HasPrefix(lv, []byte("ERROR")):
		return sevErr
	case bytes.HasPrefix(lv, []byte("WARN")):
		return sevWarning
	case bytes.HasPrefix(lv, []byte("DEBUG")):
		return sevDebug
	}
	return sevInfo
}
