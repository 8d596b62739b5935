package bench

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/internal/lab"
)

// loadAddrs returns the extra LAN source addresses the NAT-PMP load uses,
// all inside 192.0.2.0/24 (LAB.md's LAN) and none of the lab's own.
func loadAddrs() []netip.Addr {
	var as []netip.Addr
	for i := 10; i <= 250; i++ {
		if i >= 100 && i <= 109 { // the lab's LAN hosts
			continue
		}
		as = append(as, netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}))
	}
	return as
}

// addLoadAddrs puts loadAddrs on lan's interface, so that each looks like
// one more LAN host to the daemon (its own rate-limit bucket).
func addLoadAddrs(t testing.TB, l *lab.Lab) {
	t.Helper()
	var cmds []byte
	for _, a := range loadAddrs() {
		cmds = fmt.Appendf(cmds, "addr add %s/24 dev %s\n", a, l.LANIf)
	}
	f := l.Dir + "/loadaddrs.batch"
	if err := writeFile(f, cmds); err != nil {
		t.Fatal(err)
	}
	l.LAN.Run(t, "ip", "-batch", f)
}

// natpmpResult is one NAT-PMP load run.
type natpmpResult struct {
	sent, ok, lost, failed int
	elapsed                time.Duration
	lat                    []time.Duration // of the answered requests, sorted
	cpu                    time.Duration   // the daemon's CPU time meanwhile
}

func (r natpmpResult) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.ok) / r.elapsed.Seconds()
}

// natpmpLoad sends NAT-PMP TCP map requests (RFC 6886 §3.3) to
// 192.0.2.1:5351 from every load address, workers goroutines at once,
// each waiting for the answer before its next request (closed loop). Each
// address asks for ports to itself in turn, so the first round creates
// mappings and later rounds renew them. perAddr stays under
// pcpgw's per-host burst (100), so its rate limiter never drops a request
// and what is measured is the daemon. Requests unanswered within pmpTimeout
// count as lost and are not retried. The run stops at budget.
func natpmpLoad(t testing.TB, l *lab.Lab, d daemon, workers, perAddr, portsPerAddr int, budget time.Duration) natpmpResult {
	t.Helper()
	addrs := loadAddrs()
	conns := make([]*net.UDPConn, len(addrs))
	srv := &net.UDPAddr{IP: net.ParseIP(lab.CPELAN4), Port: 5351}
	l.LAN.Do(t, func() {
		for i, a := range addrs {
			c, err := net.DialUDP("udp4", &net.UDPAddr{IP: a.AsSlice()}, srv)
			if err != nil {
				t.Fatalf("bench: NAT-PMP socket on %s: %v", a, err)
			}
			conns[i] = c
		}
	})
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	_, cpu0 := mustStats(t, d)
	var (
		mu  sync.Mutex
		res natpmpResult
		wg  sync.WaitGroup
	)
	deadline := time.Now().Add(budget)
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			sent, lost, failed := 0, 0, 0
			req := make([]byte, 12)
			resp := make([]byte, 64)
		loop:
			for round := range perAddr {
				for i := w; i < len(conns); i += workers {
					if time.Now().After(deadline) {
						break loop
					}
					port := 20000 + i*portsPerAddr + round%portsPerAddr
					req[0], req[1] = 0, 2 // version 0, map TCP
					binary.BigEndian.PutUint16(req[4:], uint16(port))
					binary.BigEndian.PutUint16(req[6:], uint16(port))
					binary.BigEndian.PutUint32(req[8:], 3600)
					c := conns[i]
					t0 := time.Now()
					sent++
					if _, err := c.Write(req); err != nil {
						failed++
						continue
					}
					c.SetReadDeadline(t0.Add(pmpTimeout))
					for {
						n, err := c.Read(resp)
						if err != nil {
							lost++
							break
						}
						if n < 16 || resp[1] != 130 || binary.BigEndian.Uint16(resp[8:]) != uint16(port) {
							continue // a late answer to an earlier request
						}
						if binary.BigEndian.Uint16(resp[2:]) != 0 {
							failed++
						} else {
							lat = append(lat, time.Since(t0))
						}
						break
					}
				}
			}
			mu.Lock()
			res.sent += sent
			res.lost += lost
			res.failed += failed
			res.ok += len(lat)
			res.lat = append(res.lat, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	_, cpu1 := mustStats(t, d)
	res.cpu = cpu1 - cpu0
	sort.Slice(res.lat, func(i, j int) bool { return res.lat[i] < res.lat[j] })
	return res
}
