package lab

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// Ping sends ICMP or ICMPv6 echo requests from inside n to addr (every
// 200 ms) until a matching echo reply arrives, and returns an error when
// none arrived within timeout. It needs no ping binary.
func (n *NS) Ping(addr string, timeout time.Duration) error {
	dst, err := netip.ParseAddr(addr)
	if err != nil {
		return fmt.Errorf("lab: ping: %w", err)
	}
	var perr error
	err = n.do(func() { perr = ping(dst, timeout) })
	if err != nil {
		return fmt.Errorf("lab: ping %s from %s: %w", addr, n.Name, err)
	}
	if perr != nil {
		return fmt.Errorf("lab: ping %s from %s: %w", addr, n.Name, perr)
	}
	return nil
}

func ping(dst netip.Addr, timeout time.Duration) error {
	network, laddr, reqType, replyType := "ip4:icmp", "0.0.0.0", byte(8), byte(0)
	if dst.Is6() {
		network, laddr, reqType, replyType = "ip6:ipv6-icmp", "::", 128, 129
	}
	c, err := net.ListenPacket(network, laddr)
	if err != nil {
		return err
	}
	defer c.Close()
	var token [10]byte
	rand.Read(token[:])
	id := binary.BigEndian.Uint16(token[:2])
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 1500)
	for seq := uint16(1); time.Now().Before(deadline); seq++ {
		msg := []byte{reqType, 0, 0, 0, 0, 0, 0, 0}
		binary.BigEndian.PutUint16(msg[4:], id)
		binary.BigEndian.PutUint16(msg[6:], seq)
		msg = append(msg, token[:]...)
		if dst.Is4() {
			binary.BigEndian.PutUint16(msg[2:], checksum(msg))
		} // the kernel computes ICMPv6 checksums of raw sockets
		if _, err := c.WriteTo(msg, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
			return err
		}
		wait := time.Now().Add(200 * time.Millisecond)
		if wait.After(deadline) {
			wait = deadline
		}
		c.SetReadDeadline(wait)
		for {
			k, from, err := c.ReadFrom(buf)
			if err != nil {
				break // timeout: send again
			}
			b := buf[:k]
			src, _ := netip.AddrFromSlice(from.(*net.IPAddr).IP)
			if len(b) >= 8 && b[0] == replyType && src.Unmap() == dst &&
				binary.BigEndian.Uint16(b[4:]) == id && bytes.Equal(b[8:], token[:]) {
				return nil
			}
		}
	}
	return fmt.Errorf("no echo reply within %v", timeout)
}

// checksum is the Internet checksum (RFC 1071).
func checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}
