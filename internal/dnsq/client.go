package dnsq

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/pcpgw/pcpgw/internal/crand"
)

// DefaultTimeout bounds one query to one server when the caller gives no
// timeout.
const DefaultTimeout = 2 * time.Second

// maxUDP is the read buffer for an answer over UDP: 512 octets is the
// most a server sends to a query without EDNS (RFC 1035 §4.2.1); a larger
// datagram from a server that ignores that still fits.
const maxUDP = 4096

// ErrNoServers is returned by Lookup without a server to ask.
var ErrNoServers = errors.New("dnsq: no DNS server")

// Lookup asks the servers in turn for the records of type t at name (no
// search list: see Resolver for that), each query bounded by timeout (0:
// DefaultTimeout) and all of them by ctx, and returns the addresses of the
// first answer that has some. Any failure moves on to the next server,
// NXDOMAIN and NODATA too (another resolver may know more: a DNS64, say).
// The error joins those of every server, each prefixed by the server's
// address.
func Lookup(ctx context.Context, servers []netip.AddrPort, name string, t Type, timeout time.Duration) ([]netip.Addr, error) {
	if len(servers) == 0 {
		return nil, ErrNoServers
	}
	qname, err := wireName(name)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, s := range servers {
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
		addrs, err := query(ctx, s, qname, t, timeout)
		if err == nil {
			return addrs, nil
		}
		errs = append(errs, fmt.Errorf("%v: %w", s, err))
	}
	return nil, fmt.Errorf("dnsq: %s %v: %w", name, t, errors.Join(errs...))
}

// Query asks server for the records of type t at name: over UDP from a
// connected socket, with a random ID; packets that are not an answer to
// it (ErrStray) are ignored until one is or the time is up; a truncated
// answer is asked again over TCP (RFC 7766 §5). It is bounded by timeout
// (0: DefaultTimeout) and ctx. It returns addresses, or an error (see
// ParseAnswer; ErrNoData rather than no addresses).
func Query(ctx context.Context, server netip.AddrPort, name string, t Type, timeout time.Duration) ([]netip.Addr, error) {
	qname, err := wireName(name)
	if err != nil {
		return nil, err
	}
	return query(ctx, server, qname, t, timeout)
}

func query(ctx context.Context, server netip.AddrPort, qname []byte, t Type, timeout time.Duration) ([]netip.Addr, error) {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	addrs, err := queryUDP(ctx, server, qname, t)
	if errors.Is(err, ErrTruncated) {
		addrs, err = queryTCP(ctx, server, qname, t)
		if err != nil {
			err = fmt.Errorf("over TCP after a truncated answer: %w", err)
		}
	}
	return addrs, err
}

// newID returns a random query ID (RFC 5452 §9.2).
func newID() uint16 {
	var b [2]byte
	crand.Must(b[:])
	return binary.BigEndian.Uint16(b[:])
}

// deadline moves c's deadline to the past when ctx ends (its deadline
// included), which unblocks a read or write: then ctx.Err() says why;
// the returned func stops that.
func deadline(ctx context.Context, c net.Conn) (stop func() bool) {
	return context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
}

func queryUDP(ctx context.Context, server netip.AddrPort, qname []byte, t Type) ([]netip.Addr, error) {
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(server))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	defer deadline(ctx, c)()
	id := newID()
	if _, err := c.Write(appendQuery(make([]byte, 0, 512), id, qname, t)); err != nil {
		return nil, err
	}
	buf := make([]byte, maxUDP)
	ignored := 0
	for {
		n, err := c.Read(buf)
		if err != nil {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			if ignored > 0 {
				return nil, fmt.Errorf("no answer (%d stray packets ignored): %w", ignored, err)
			}
			return nil, fmt.Errorf("no answer: %w", err)
		}
		addrs, err := parseAnswer(buf[:n], id, qname, t)
		if errors.Is(err, ErrStray) {
			ignored++
			continue
		}
		return addrs, err
	}
}

// queryTCP asks over TCP: messages with a 2-octet length in front (RFC
// 1035 §4.2.2). net.Dialer.DialTCP takes typed addresses and a context;
// unlike Dialer.Dial it never reaches the resolver.
func queryTCP(ctx context.Context, server netip.AddrPort, qname []byte, t Type) ([]netip.Addr, error) {
	id := newID()
	msg, err := exchangeTCP(ctx, server, appendQuery(make([]byte, 2, 514), id, qname, t))
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, err
	}
	// The one answer on this connection: a stray one fails the query.
	return parseAnswer(msg, id, qname, t)
}

// exchangeTCP sends q (2 octets left free in front for its length) and
// reads one message.
func exchangeTCP(ctx context.Context, server netip.AddrPort, q []byte) ([]byte, error) {
	var d net.Dialer
	c, err := d.DialTCP(ctx, "tcp", netip.AddrPort{}, server)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	defer deadline(ctx, c)()
	binary.BigEndian.PutUint16(q, uint16(len(q)-2))
	if _, err := c.Write(q); err != nil {
		return nil, err
	}
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		return nil, err
	}
	msg := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(c, msg); err != nil {
		return nil, err
	}
	return msg, nil
}
