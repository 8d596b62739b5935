package httpd

import (
	"net"
	"syscall"
	"time"
)

// deferAccept has the kernel hand over a TCP connection of ln only once
// data has arrived on it (TCP_DEFER_ACCEPT), waiting at most about wait
// for it: an HTTP client speaks first, and a connection that brought its
// request is never idle (see readEarly). Best effort: a listener it cannot
// set works as before.
func deferAccept(ln net.Listener, wait time.Duration) {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return
	}
	rc, err := tl.SyscallConn()
	if err != nil {
		return
	}
	secs := max(1, int((wait+time.Second-1)/time.Second))
	rc.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_DEFER_ACCEPT, secs)
	})
}

// readNow reads into b what has already arrived on c, without waiting;
// it returns how much (0 if nothing or c is no socket).
func readNow(c net.Conn, b []byte) int {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0
	}
	n := 0
	rc.Read(func(fd uintptr) bool {
		n, _ = syscall.Read(int(fd), b) // -1 with EAGAIN: nothing yet
		return true                     // one try: never wait
	})
	return max(n, 0)
}
