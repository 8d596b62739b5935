package pcp

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"unicode/utf8"
)

const (
	optHeaderSize   = 4
	filterSize      = 20
	maxDescription  = 1016 // RFC 7220 §2
	maxThirdPartyID = 1016 // RFC 7843 §4
)

// parseOption reads one option from b (which holds at least one octet). It
// returns the option and the octets it took, padding included. A body that
// does not fit the option's definition is kept in Raw; only a structural
// fault (header cut, body or padding past the end) is an error.
func parseOption(b []byte) (Option, int, error) {
	if len(b) < optHeaderSize {
		return Option{}, 0, fmt.Errorf("option header cut: %d octets left", len(b))
	}
	code := OptionCode(b[0])
	n := int(binary.BigEndian.Uint16(b[2:4]))
	padded := optHeaderSize + (n+3)&^3
	if padded > len(b) {
		return Option{}, 0, fmt.Errorf("%s: length %d overflows the packet (%d octets left)", code, n, len(b)-optHeaderSize)
	}
	body := b[optHeaderSize : optHeaderSize+n]
	o := Option{Code: code}
	if !o.parseBody(body) {
		o.Raw = append(make([]byte, 0, len(body)), body...)
	}
	return o, padded, nil
}

// parseBody fills the typed field for a known code and reports whether the
// body was understood.
func (o *Option) parseBody(b []byte) bool {
	switch o.Code {
	case OptThirdParty:
		if len(b) != 16 {
			return false
		}
		o.ThirdParty = getAddr(b)
		return true
	case OptPreferFailure:
		return len(b) == 0
	case OptFilter:
		if len(b) != filterSize {
			return false
		}
		f, ok := parseFilter(b)
		o.Filter = f
		return ok
	case OptDescription:
		if len(b) > maxDescription || !utf8.Valid(b) {
			return false
		}
		o.Description = string(b)
		return true
	case OptPrefix64:
		p, ok := parsePrefix64(b)
		o.Prefix64 = p
		return ok
	}
	return false // THIRD_PARTY_ID and unknown codes: Raw
}

func parseFilter(b []byte) (Filter, bool) {
	plen := int(b[1])
	port := binary.BigEndian.Uint16(b[2:4])
	raw := netip.AddrFrom16([16]byte(b[4:20]))
	if plen > 128 {
		return Filter{}, false
	}
	if plen == 0 { // "no filter": keep the octets as they were
		return Filter{Prefix: netip.PrefixFrom(raw, 0), RemotePort: port}, true
	}
	a := raw.Unmap()
	if a.Is4() {
		if plen < 96 {
			return Filter{}, false
		}
		plen -= 96
	}
	return Filter{Prefix: netip.PrefixFrom(a, plen), RemotePort: port}, true
}

func appendFilter(b []byte, f Filter) []byte {
	a := f.Prefix.Addr()
	plen := f.Prefix.Bits()
	switch {
	case plen < 0:
		plen = 0
	case a.Is4():
		plen += 96 // IPv4 /0 is wire 96; wire 0 is an IPv6 /0

	}
	b = append(b, 0, uint8(plen))
	b = binary.BigEndian.AppendUint16(b, f.RemotePort)
	return appendAddr(b, a)
}

// parsePrefix64 parses the PREFIX64 body (RFC 7225 §4.1): a 16-bit prefix
// length in octets (4, 5, 6, 7, 8 or 12), then 12 octets of prefix and
// suffix, then optionally a 16-bit count and count entries of a 16-bit IPv4
// prefix length (0-32) and a 4-octet IPv4 address.
func parsePrefix64(b []byte) (Prefix64, bool) {
	if len(b) < 14 {
		return Prefix64{}, false
	}
	l := int(binary.BigEndian.Uint16(b[0:2]))
	switch l {
	case 4, 5, 6, 7, 8, 12:
	default:
		return Prefix64{}, false
	}
	var a [16]byte
	copy(a[:], b[2:2+l])
	p := Prefix64{Prefix: netip.PrefixFrom(netip.AddrFrom16(a), 8*l)}
	if l < 12 {
		p.Suffix = append(make([]byte, 0, 12-l), b[2+l:14]...)
	}
	rest := b[14:]
	if len(rest) == 0 {
		return p, true
	}
	if len(rest) < 2 {
		return Prefix64{}, false
	}
	count := int(binary.BigEndian.Uint16(rest[0:2]))
	rest = rest[2:]
	if len(rest) != 6*count {
		return Prefix64{}, false
	}
	p.IPv4Pfxs = make([]netip.Prefix, 0, count)
	for i := 0; i < count; i++ {
		e := rest[6*i:]
		bits := int(binary.BigEndian.Uint16(e[0:2]))
		if bits > 32 {
			return Prefix64{}, false
		}
		p.IPv4Pfxs = append(p.IPv4Pfxs, netip.PrefixFrom(netip.AddrFrom4([4]byte(e[2:6])), bits))
	}
	return p, true
}

func appendPrefix64(b []byte, p *Prefix64) []byte {
	l := p.Prefix.Bits() / 8
	switch l {
	case 4, 5, 6, 7, 8, 12:
	default:
		l = 12
	}
	b = binary.BigEndian.AppendUint16(b, uint16(l))
	a := p.Prefix.Addr().As16()
	b = append(b, a[:l]...)
	suffix := p.Suffix
	if len(suffix) > 12-l {
		suffix = suffix[:12-l]
	}
	b = append(b, suffix...)
	for i := len(suffix); i < 12-l; i++ {
		b = append(b, 0)
	}
	if p.IPv4Pfxs == nil {
		return b
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(p.IPv4Pfxs)))
	for _, q := range p.IPv4Pfxs {
		bits := max(q.Bits(), 0)
		b = binary.BigEndian.AppendUint16(b, uint16(bits))
		a4 := q.Addr().Unmap()
		if a4.Is4() {
			x := a4.As4()
			b = append(b, x[:]...)
		} else {
			b = append(b, 0, 0, 0, 0)
		}
	}
	return b
}

// appendMarshal appends the option header, body and padding.
func (o *Option) appendMarshal(b []byte) []byte {
	start := len(b)
	b = append(b, uint8(o.Code), 0, 0, 0)
	switch {
	case o.Raw != nil:
		b = append(b, o.Raw...)
	case o.Code == OptThirdParty:
		b = appendAddr(b, o.ThirdParty)
	case o.Code == OptFilter:
		b = appendFilter(b, o.Filter)
	case o.Code == OptDescription:
		b = append(b, o.Description...)
	case o.Code == OptPrefix64:
		b = appendPrefix64(b, &o.Prefix64)
	}
	n := len(b) - start - optHeaderSize
	binary.BigEndian.PutUint16(b[start+2:], uint16(n))
	for ; n%4 != 0; n++ {
		b = append(b, 0)
	}
	return b
}
