package dnsq

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
)

// Type is a resource record type (RFC 1035 §3.2.2); a query asks for A or
// AAAA.
type Type uint16

// Types of the records pcpgw asks for or follows.
const (
	TypeA     Type = 1  // an IPv4 address (RFC 1035 §3.4.1)
	TypeCNAME Type = 5  // the canonical name of an alias (RFC 1035 §3.3.1)
	TypeAAAA  Type = 28 // an IPv6 address (RFC 3596 §2.1)
)

func (t Type) String() string {
	switch t {
	case TypeA:
		return "A"
	case TypeCNAME:
		return "CNAME"
	case TypeAAAA:
		return "AAAA"
	}
	return "TYPE" + strconv.Itoa(int(t))
}

// classIN is the Internet class (RFC 1035 §3.2.4).
const classIN = 1

// Rcode is a response code (RFC 1035 §4.1.1).
type Rcode uint8

// Response codes of RFC 1035 §4.1.1.
const (
	RcodeSuccess  Rcode = 0 // NOERROR
	RcodeFormErr  Rcode = 1 // FORMERR: the server could not read the query
	RcodeServFail Rcode = 2 // SERVFAIL: the server could not find out
	RcodeNXDomain Rcode = 3 // NXDOMAIN: the name does not exist
	RcodeNotImp   Rcode = 4 // NOTIMP
	RcodeRefused  Rcode = 5 // REFUSED
)

func (r Rcode) String() string {
	switch r {
	case RcodeSuccess:
		return "NOERROR"
	case RcodeFormErr:
		return "FORMERR"
	case RcodeServFail:
		return "SERVFAIL"
	case RcodeNXDomain:
		return "NXDOMAIN"
	case RcodeNotImp:
		return "NOTIMP"
	case RcodeRefused:
		return "REFUSED"
	}
	return "RCODE" + strconv.Itoa(int(r))
}

// Errors of an answer. ErrStray is wrapped by an error that says which
// check failed.
var (
	// ErrStray: the packet is not an answer to the query (too short for a
	// header, QR not set, another ID, opcode or question). A client
	// ignores it and keeps waiting.
	ErrStray = errors.New("dnsq: not an answer to the query")
	// ErrTruncated: the answer has the TC bit (RFC 1035 §4.1.1): it did
	// not fit in a UDP datagram; ask again over TCP.
	ErrTruncated = errors.New("dnsq: truncated answer")
	// ErrMalformed: the answer section of an answer to the query does not
	// parse.
	ErrMalformed = errors.New("dnsq: malformed answer")
	// ErrNoData: NOERROR, but no record of the type asked for at the name
	// or at the end of its CNAME chain (RFC 2308 §2.2, NODATA).
	ErrNoData = errors.New("dnsq: no record of that type (NODATA)")
	// ErrCNAMELoop: the CNAME chain in the answer loops or is longer than
	// MaxCNAME.
	ErrCNAMELoop = errors.New("dnsq: CNAME chain loops or is too long")
	// ErrNXDomain and ErrServFail match an *RcodeError with that code
	// (errors.Is).
	ErrNXDomain = errors.New("dnsq: no such name (NXDOMAIN)")
	ErrServFail = errors.New("dnsq: server failure (SERVFAIL)")
)

// RcodeError is an answer whose RCODE is not NOERROR. errors.Is matches it
// with ErrNXDomain or ErrServFail by its code.
type RcodeError struct {
	Rcode Rcode
}

func (e *RcodeError) Error() string { return "dnsq: answer " + e.Rcode.String() }

// Is matches ErrNXDomain and ErrServFail.
func (e *RcodeError) Is(target error) bool {
	return target == ErrNXDomain && e.Rcode == RcodeNXDomain ||
		target == ErrServFail && e.Rcode == RcodeServFail
}

// NotFound reports whether err says that a name does not exist or has no
// record of the type asked for (NXDOMAIN or NODATA), rather than that the
// lookup failed. With several servers (errors joined by Lookup) one such
// answer is enough, as NXDOMAIN is authoritative; a search list is not
// found only when every name of it was (Resolver.LookupHost).
func NotFound(err error) bool {
	return errors.Is(err, ErrNXDomain) || errors.Is(err, ErrNoData)
}

// MaxCNAME bounds the CNAME records followed from the question's name.
const MaxCNAME = 8

const headerLen = 12

// Header flags (RFC 1035 §4.1.1).
const (
	flagQR     = 1 << 15
	flagTC     = 1 << 9
	flagRD     = 1 << 8
	opcodeMask = 0xf << 11
	rcodeMask  = 0xf
)

// Question is what a query asks: the records of one type at one name.
type Question struct {
	// Name is a domain name in dotted form; a trailing dot is optional
	// (no search list is applied here).
	Name string
	Type Type
}

// wireName returns name in wire form (RFC 1035 §3.1: length-prefixed
// labels ending with the root's empty label): each label 1 to 63 octets,
// 255 octets in all. "." is the root.
func wireName(name string) ([]byte, error) {
	if name == "." {
		return []byte{0}, nil
	}
	if len(name) > 0 && name[len(name)-1] == '.' {
		name = name[:len(name)-1]
	}
	if name == "" {
		return nil, errors.New("dnsq: empty name")
	}
	b := make([]byte, 0, len(name)+2)
	start := 0
	for i := 0; i <= len(name); i++ {
		if i < len(name) && name[i] != '.' {
			continue
		}
		l := i - start
		if l == 0 || l > 63 {
			return nil, fmt.Errorf("dnsq: bad name %q: a label of %d octets", name, l)
		}
		b = append(b, byte(l))
		b = append(b, name[start:i]...)
		start = i + 1
	}
	b = append(b, 0)
	if len(b) > 255 {
		return nil, fmt.Errorf("dnsq: name %q longer than 255 octets", name)
	}
	return b, nil
}

// AppendQuery appends a query for q with the given ID to b: one question,
// class IN, recursion desired, no EDNS (RFC 1035 §4.1; the CD bit is zero,
// as RFC 7050 §3 wants for a DNS64).
func AppendQuery(b []byte, id uint16, q Question) ([]byte, error) {
	name, err := wireName(q.Name)
	if err != nil {
		return b, err
	}
	return appendQuery(b, id, name, q.Type), nil
}

func appendQuery(b []byte, id uint16, name []byte, t Type) []byte {
	b = binary.BigEndian.AppendUint16(b, id)
	b = binary.BigEndian.AppendUint16(b, flagRD)
	b = append(b, 0, 1, 0, 0, 0, 0, 0, 0) // QDCOUNT 1
	b = append(b, name...)
	b = binary.BigEndian.AppendUint16(b, uint16(t))
	return binary.BigEndian.AppendUint16(b, classIN)
}

// ParseAnswer returns the addresses that msg, an answer to the query with
// this ID and question, gives: the records of the type asked for, class
// IN, at the question's name or at the end of the CNAME chain from it in
// the answer section (RFC 1034 §3.6.2, at most MaxCNAME links; names
// compared without regard to ASCII case, RFC 4343). Records of other
// types, classes or names are ignored; the authority and additional
// sections are not read. The error is
//   - one wrapping ErrStray when msg is not an answer to the query
//     (header, ID, QR, opcode, question);
//   - ErrTruncated when TC is set (the answer section is not read);
//   - *RcodeError when RCODE is not NOERROR;
//   - one wrapping ErrMalformed when the answer section does not parse;
//   - ErrCNAMELoop or ErrNoData when the chain ends in a loop or nothing.
func ParseAnswer(msg []byte, id uint16, q Question) ([]netip.Addr, error) {
	name, err := wireName(q.Name)
	if err != nil {
		return nil, err
	}
	return parseAnswer(msg, id, name, q.Type)
}

func stray(why string) error { return fmt.Errorf("%w: %s", ErrStray, why) }

func malformed(why string) error { return fmt.Errorf("%w: %s", ErrMalformed, why) }

func parseAnswer(msg []byte, id uint16, qname []byte, qtype Type) ([]netip.Addr, error) {
	if len(msg) < headerLen {
		return nil, stray("shorter than a header")
	}
	flags := binary.BigEndian.Uint16(msg[2:])
	switch {
	case binary.BigEndian.Uint16(msg) != id:
		return nil, stray("another ID")
	case flags&flagQR == 0:
		return nil, stray("a query (QR not set)")
	case flags&opcodeMask != 0:
		return nil, stray("another opcode")
	case binary.BigEndian.Uint16(msg[4:]) != 1:
		return nil, stray("not one question")
	}
	name, off, err := readName(msg, headerLen)
	if err != nil || off+4 > len(msg) {
		return nil, stray("question does not parse")
	}
	if !equalNames(name, qname) || Type(binary.BigEndian.Uint16(msg[off:])) != qtype || binary.BigEndian.Uint16(msg[off+2:]) != classIN {
		return nil, stray("another question")
	}
	off += 4
	if flags&flagTC != 0 {
		return nil, ErrTruncated
	}
	if rc := Rcode(flags & rcodeMask); rc != RcodeSuccess {
		return nil, &RcodeError{Rcode: rc}
	}
	// The answer section: the records of the type asked for and the
	// CNAMEs, with their owner names in lower case.
	type record struct {
		owner  string
		cname  string // for a CNAME
		addr   netip.Addr
		target bool // addr is set (a record of the type asked for)
	}
	var recs []record
	for n := binary.BigEndian.Uint16(msg[6:]); n > 0; n-- {
		owner, o, err := readName(msg, off)
		if err != nil {
			return nil, malformed("record owner: " + err.Error())
		}
		if o+10 > len(msg) {
			return nil, malformed("record header past the end")
		}
		typ := Type(binary.BigEndian.Uint16(msg[o:]))
		class := binary.BigEndian.Uint16(msg[o+2:])
		rdlen := int(binary.BigEndian.Uint16(msg[o+8:]))
		rdata := o + 10
		off = rdata + rdlen
		if off > len(msg) {
			return nil, malformed("record data past the end")
		}
		if class != classIN {
			continue
		}
		switch {
		case typ == qtype && typ == TypeA:
			if rdlen != 4 {
				return nil, malformed("A record of " + strconv.Itoa(rdlen) + " octets")
			}
			recs = append(recs, record{owner: lower(owner), addr: netip.AddrFrom4([4]byte(msg[rdata:off])), target: true})
		case typ == qtype && typ == TypeAAAA:
			if rdlen != 16 {
				return nil, malformed("AAAA record of " + strconv.Itoa(rdlen) + " octets")
			}
			recs = append(recs, record{owner: lower(owner), addr: netip.AddrFrom16([16]byte(msg[rdata:off])), target: true})
		case typ == TypeCNAME:
			cname, end, err := readName(msg[:off], rdata)
			if err != nil || end != off {
				return nil, malformed("CNAME record data")
			}
			recs = append(recs, record{owner: lower(owner), cname: lower(cname)})
		}
	}
	// Follow the chain from the question's name.
	cur := lower(qname)
	seen := []string{cur}
	for {
		var addrs []netip.Addr
		next := ""
		for _, r := range recs {
			switch {
			case r.owner != cur:
			case r.target:
				addrs = append(addrs, r.addr)
			case next == "":
				next = r.cname
			}
		}
		if len(addrs) > 0 {
			return addrs, nil
		}
		if next == "" {
			return nil, ErrNoData
		}
		for _, s := range seen {
			if s == next {
				return nil, ErrCNAMELoop
			}
		}
		if len(seen) > MaxCNAME {
			return nil, ErrCNAMELoop
		}
		seen = append(seen, next)
		cur = next
	}
}

// maxPointers bounds the compression pointers followed in one name: a
// compressor writes one per name (at most one per label).
const maxPointers = 127

// readName reads the name at off in msg (RFC 1035 §4.1.4: labels, ending
// with the root label or a pointer to the rest of the name) and returns
// it uncompressed in wire form, with the offset after it. Each pointer
// must point before the start of the piece of name it ends (before the
// name's first label, then before the place the previous pointer pointed
// to): compressors only point back to names written earlier, and the
// strictly falling offsets make a loop impossible. Label types other than
// a length and a pointer (RFC 6891 §5) are refused.
func readName(msg []byte, off int) (name []byte, next int, err error) {
	name = make([]byte, 0, 32)
	next = -1
	limit := off // a pointer must point before this
	jumps := 0
	for pos := off; ; {
		if pos >= len(msg) {
			return nil, 0, errors.New("name past the end")
		}
		l := int(msg[pos])
		switch l & 0xc0 {
		case 0x00:
			if pos+1+l > len(msg) {
				return nil, 0, errors.New("label past the end")
			}
			name = append(name, msg[pos:pos+1+l]...)
			if len(name) > 255 {
				return nil, 0, errors.New("name longer than 255 octets")
			}
			pos += 1 + l
			if l == 0 {
				if next < 0 {
					next = pos
				}
				return name, next, nil
			}
		case 0xc0:
			if pos+2 > len(msg) {
				return nil, 0, errors.New("pointer past the end")
			}
			ptr := int(binary.BigEndian.Uint16(msg[pos:]) & 0x3fff)
			if ptr >= limit {
				return nil, 0, errors.New("pointer does not point back")
			}
			if jumps++; jumps > maxPointers {
				// Loops are impossible, but a chain of pointers each two
				// octets back would cost thousands of steps per name.
				return nil, 0, errors.New("too many compression pointers")
			}
			if next < 0 {
				next = pos + 2
			}
			pos, limit = ptr, ptr
		default:
			return nil, 0, errors.New("unknown label type")
		}
	}
}

// equalNames compares two names in wire form without regard to ASCII case
// (RFC 4343). The length octets are below 64, out of the letters' range.
func equalNames(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if lowerByte(a[i]) != lowerByte(b[i]) {
			return false
		}
	}
	return true
}

func lowerByte(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// lower returns a name in wire form in lower case, as a string.
func lower(name []byte) string {
	b := make([]byte, len(name))
	for i, c := range name {
		b[i] = lowerByte(c)
	}
	return string(b)
}
