package igdclient

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Device and service types pcpgw looks for (UPnP IGD:1 and IGD:2).
const (
	DeviceIGD1     = "urn:schemas-upnp-org:device:InternetGatewayDevice:1"
	DeviceIGD2     = "urn:schemas-upnp-org:device:InternetGatewayDevice:2"
	ServiceWANIP1  = "urn:schemas-upnp-org:service:WANIPConnection:1"
	ServiceWANIP2  = "urn:schemas-upnp-org:service:WANIPConnection:2"
	ServiceWANPPP1 = "urn:schemas-upnp-org:service:WANPPPConnection:1"
)

// SearchTargets are the STs pcpgw searches for.
var SearchTargets = []string{DeviceIGD2, DeviceIGD1, ServiceWANIP2, ServiceWANIP1, ServiceWANPPP1}

// Limits of SSDP parsing.
const (
	// MaxSSDPSize is the largest SSDP datagram taken; longer ones are
	// malformed (a reader should read into MaxSSDPSize+1 bytes to see it).
	MaxSSDPSize  = 4096
	maxSSDPLines = 32  // header lines
	maxSSDPValue = 512 // bytes of a header value pcpgw keeps
)

// ErrMalformed is an SSDP message, description or SOAP body that does not
// parse or breaks a limit.
var ErrMalformed = errors.New("igdclient: malformed")

func malformed(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, a...)...)
}

// SearchResponse is the answer to an M-SEARCH (UDA 1.1 §1.3.3).
type SearchResponse struct {
	ST, USN, Location, Server string
	// MaxAge is CACHE-CONTROL's max-age (0: none).
	MaxAge uint32
	// BootID and ConfigID are BOOTID.UPNP.ORG and CONFIGID.UPNP.ORG
	// (UDA 1.1), valid when HasBootID and HasConfigID.
	BootID, ConfigID       uint32
	HasBootID, HasConfigID bool
}

// NTS is a NOTIFY's subtype.
type NTS uint8

const (
	NTSAlive  NTS = iota + 1 // ssdp:alive (UDA 1.1 §1.2.2)
	NTSByeBye                // ssdp:byebye (§1.2.3)
	NTSUpdate                // ssdp:update (§1.2.4)
)

var ntsNames = [...]string{NTSAlive: "ssdp:alive", NTSByeBye: "ssdp:byebye", NTSUpdate: "ssdp:update"}

func (n NTS) String() string {
	if n >= NTSAlive && n <= NTSUpdate {
		return ntsNames[n]
	}
	return "nts-" + strconv.Itoa(int(n))
}

// Notify is an SSDP advertisement (UDA 1.1 §1.2).
type Notify struct {
	NTS                       NTS
	NT, USN, Location, Server string
	MaxAge                    uint32
	// NextBootID is NEXTBOOTID.UPNP.ORG of ssdp:update.
	BootID, ConfigID, NextBootID          uint32
	HasBootID, HasConfigID, HasNextBootID bool
}

// AppendMSearch appends an M-SEARCH request (UDA 1.1 §1.3.2) for st, sent
// to host ("239.255.255.250:1900", or a unicast address:port), with
// answers spread over mx seconds (1 to 5).
func AppendMSearch(b []byte, host, st string, mx int) []byte {
	mx = min(max(mx, 1), 5)
	b = append(b, "M-SEARCH * HTTP/1.1\r\nHOST: "...)
	b = append(b, host...)
	b = append(b, "\r\nMAN: \"ssdp:discover\"\r\nMX: "...)
	b = strconv.AppendInt(b, int64(mx), 10)
	b = append(b, "\r\nST: "...)
	b = append(b, st...)
	b = append(b, "\r\nUSER-AGENT: Linux UPnP/1.1 pcpgw/1\r\n\r\n"...)
	return b
}

// header is one header field of an SSDP message.
type header struct{ name, value string }

// parseSSDP splits an SSDP message into its start line and header fields.
// Lines end with CRLF or LF; the header ends at an empty line or at the
// end of the datagram; whatever follows an empty line is ignored (SSDP
// messages have no body). Folded lines, lines without a colon, names that
// are not tokens and control characters in values are malformed.
func parseSSDP(b []byte) (start string, hs []header, err error) {
	if len(b) > MaxSSDPSize {
		return "", nil, malformed("SSDP message of %d bytes", len(b))
	}
	first := true
	for len(b) > 0 {
		var line []byte
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			line, b = b, nil
		}
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if first {
			first = false
			if !printable(line, false) || len(line) == 0 {
				return "", nil, malformed("SSDP start line")
			}
			start = string(line)
			continue
		}
		if len(line) == 0 {
			break
		}
		if len(hs) == maxSSDPLines {
			return "", nil, malformed("more than %d SSDP header lines", maxSSDPLines)
		}
		name, value, ok := bytes.Cut(line, []byte{':'})
		if !ok || !isToken(name) {
			return "", nil, malformed("SSDP header line %.40q", line)
		}
		value = bytes.Trim(value, " \t")
		if !printable(value, true) {
			return "", nil, malformed("control character in SSDP header %.40q", name)
		}
		hs = append(hs, header{strings.ToUpper(string(name)), string(value)})
	}
	if first {
		return "", nil, malformed("empty SSDP message")
	}
	return start, hs, nil
}

// isToken reports whether b is an HTTP token (RFC 9110 §5.6.2).
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// printable reports whether b holds no control characters (tab allowed
// with tab).
func printable(b []byte, tab bool) bool {
	for _, c := range b {
		if c < ' ' && !(tab && c == '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// ssdpFields collects the header fields pcpgw reads. A field given twice
// with different values is malformed (which one would count?).
type ssdpFields map[string]string

func collect(hs []header, want ...string) (ssdpFields, error) {
	f := ssdpFields{}
	for _, h := range hs {
		for _, w := range want {
			if h.name != w {
				continue
			}
			if old, dup := f[w]; dup && old != h.value {
				return nil, malformed("SSDP header %s given twice", w)
			}
			if len(h.value) > maxSSDPValue {
				return nil, malformed("SSDP header %s of %d bytes", w, len(h.value))
			}
			f[w] = h.value
		}
	}
	return f, nil
}

// number parses a decimal BOOTID.UPNP.ORG, CONFIGID.UPNP.ORG or
// NEXTBOOTID.UPNP.ORG: 0 to 2^31-1 (UDA 1.1 §1.2.2; CONFIGID 0 to
// 16777215, taken here with the same bound).
func (f ssdpFields) number(name string) (uint32, bool, error) {
	s, ok := f[name]
	if !ok {
		return 0, false, nil
	}
	v, err := strconv.ParseUint(s, 10, 31)
	if err != nil {
		return 0, false, malformed("%s %.20q", name, s)
	}
	return uint32(v), true, nil
}

// maxAge reads max-age from CACHE-CONTROL ("max-age=1800", other
// directives beside it); absent or unreadable: 0.
func (f ssdpFields) maxAge() uint32 {
	for d := range strings.SplitSeq(f["CACHE-CONTROL"], ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(d), "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), "max-age") {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 31)
			if err == nil {
				return uint32(n)
			}
		}
	}
	return 0
}

// ParseSearchResponse parses an answer to an M-SEARCH: status line
// "HTTP/1.x 200", with ST, USN and LOCATION present.
func ParseSearchResponse(b []byte) (SearchResponse, error) {
	start, hs, err := parseSSDP(b)
	if err != nil {
		return SearchResponse{}, err
	}
	proto, rest, _ := strings.Cut(start, " ")
	code, _, _ := strings.Cut(rest, " ")
	if (proto != "HTTP/1.1" && proto != "HTTP/1.0") || code != "200" {
		return SearchResponse{}, malformed("SSDP status line %.40q", start)
	}
	f, err := collect(hs, "ST", "USN", "LOCATION", "SERVER", "CACHE-CONTROL", "BOOTID.UPNP.ORG", "CONFIGID.UPNP.ORG")
	if err != nil {
		return SearchResponse{}, err
	}
	r := SearchResponse{ST: f["ST"], USN: f["USN"], Location: f["LOCATION"], Server: f["SERVER"], MaxAge: f.maxAge()}
	if r.ST == "" || r.USN == "" || r.Location == "" {
		return SearchResponse{}, malformed("SSDP answer without ST, USN or LOCATION")
	}
	if r.BootID, r.HasBootID, err = f.number("BOOTID.UPNP.ORG"); err != nil {
		return SearchResponse{}, err
	}
	if r.ConfigID, r.HasConfigID, err = f.number("CONFIGID.UPNP.ORG"); err != nil {
		return SearchResponse{}, err
	}
	return r, nil
}

// ParseNotify parses a NOTIFY: start line "NOTIFY * HTTP/1.x", with NT,
// NTS and USN present, LOCATION for ssdp:alive and ssdp:update.
func ParseNotify(b []byte) (Notify, error) {
	start, hs, err := parseSSDP(b)
	if err != nil {
		return Notify{}, err
	}
	if start != "NOTIFY * HTTP/1.1" && start != "NOTIFY * HTTP/1.0" {
		return Notify{}, malformed("SSDP request line %.40q", start)
	}
	f, err := collect(hs, "NT", "NTS", "USN", "LOCATION", "SERVER", "CACHE-CONTROL", "BOOTID.UPNP.ORG", "CONFIGID.UPNP.ORG", "NEXTBOOTID.UPNP.ORG")
	if err != nil {
		return Notify{}, err
	}
	n := Notify{NT: f["NT"], USN: f["USN"], Location: f["LOCATION"], Server: f["SERVER"], MaxAge: f.maxAge()}
	switch f["NTS"] {
	case "ssdp:alive":
		n.NTS = NTSAlive
	case "ssdp:byebye":
		n.NTS = NTSByeBye
	case "ssdp:update":
		n.NTS = NTSUpdate
	default:
		return Notify{}, malformed("NTS %.40q", f["NTS"])
	}
	if n.NT == "" || n.USN == "" || n.NTS != NTSByeBye && n.Location == "" {
		return Notify{}, malformed("NOTIFY without NT, USN or LOCATION")
	}
	if n.BootID, n.HasBootID, err = f.number("BOOTID.UPNP.ORG"); err != nil {
		return Notify{}, err
	}
	if n.ConfigID, n.HasConfigID, err = f.number("CONFIGID.UPNP.ORG"); err != nil {
		return Notify{}, err
	}
	if n.NextBootID, n.HasNextBootID, err = f.number("NEXTBOOTID.UPNP.ORG"); err != nil {
		return Notify{}, err
	}
	return n, nil
}

func appendField(b []byte, name, value string) []byte {
	if value == "" {
		return b
	}
	b = append(b, name...)
	b = append(b, ": "...)
	b = append(b, value...)
	return append(b, "\r\n"...)
}

func appendNumber(b []byte, name string, v uint32, ok bool) []byte {
	if !ok {
		return b
	}
	return appendField(b, name, strconv.FormatUint(uint64(v), 10))
}

func appendMaxAge(b []byte, v uint32) []byte {
	if v == 0 {
		return b
	}
	return appendField(b, "CACHE-CONTROL", "max-age="+strconv.FormatUint(uint64(v), 10))
}

// AppendMarshal appends r as a device sends it (header order and case
// of miniupnpd 2.3.9).
func (r *SearchResponse) AppendMarshal(b []byte) []byte {
	b = append(b, "HTTP/1.1 200 OK\r\n"...)
	b = appendMaxAge(b, r.MaxAge)
	b = appendField(b, "ST", r.ST)
	b = appendField(b, "USN", r.USN)
	b = append(b, "EXT:\r\n"...)
	b = appendField(b, "SERVER", r.Server)
	b = appendField(b, "LOCATION", r.Location)
	b = appendNumber(b, "BOOTID.UPNP.ORG", r.BootID, r.HasBootID)
	b = appendNumber(b, "CONFIGID.UPNP.ORG", r.ConfigID, r.HasConfigID)
	return append(b, "\r\n"...)
}

// AppendMarshal appends n as a device sends it to host.
func (n *Notify) AppendMarshal(b []byte, host string) []byte {
	b = append(b, "NOTIFY * HTTP/1.1\r\n"...)
	b = appendField(b, "HOST", host)
	b = appendMaxAge(b, n.MaxAge)
	b = appendField(b, "LOCATION", n.Location)
	b = appendField(b, "SERVER", n.Server)
	b = appendField(b, "NT", n.NT)
	b = appendField(b, "USN", n.USN)
	b = appendField(b, "NTS", n.NTS.String())
	b = appendNumber(b, "BOOTID.UPNP.ORG", n.BootID, n.HasBootID)
	b = appendNumber(b, "CONFIGID.UPNP.ORG", n.ConfigID, n.HasConfigID)
	b = appendNumber(b, "NEXTBOOTID.UPNP.ORG", n.NextBootID, n.HasNextBootID)
	return append(b, "\r\n"...)
}
