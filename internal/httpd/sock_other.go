//go:build !linux

package httpd

import (
	"net"
	"time"
)

// deferAccept is a no-op here (TCP_DEFER_ACCEPT is Linux's).
func deferAccept(net.Listener, time.Duration) {}

// readNow reads nothing here: a connection's first request is read by its
// goroutine.
func readNow(net.Conn, []byte) int { return 0 }
