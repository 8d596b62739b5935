package igdclient

import (
	"encoding/xml"
	"io"
	"net/netip"
	"net/url"
	"strings"
)

// Limits of description parsing (the HTTP fetch caps the size first).
const (
	maxDescDepth    = 16   // root/device/deviceList/device/deviceList/device/serviceList/service/controlURL is 9
	maxDescElements = 4096 // miniupnpd's IGD:2 description has 105
	maxDescDevices  = 32
	maxDescServices = 64
	maxDescText     = 1024 // bytes of one field pcpgw keeps
)

// DeviceInfo is what pcpgw keeps of a device element.
type DeviceInfo struct {
	DeviceType, FriendlyName, Manufacturer, ModelName, UDN string
}

// ServiceInfo is a WAN connection service of a description, with the URLs
// as written (relative or absolute).
type ServiceInfo struct {
	ServiceType, ServiceID           string
	ControlURL, EventSubURL, SCPDURL string
	DeviceType                       string // of the device holding it (WANConnectionDevice)
}

// Description is what pcpgw keeps of a root device description (UDA 1.1
// §2.3): the root device, URLBase (UDA 1.0; deprecated in 1.1 but still
// sent), and the WAN connection services of the whole device tree
// (WANIPConnection:1/:2, WANPPPConnection:1) in document order.
type Description struct {
	URLBase  string
	Root     DeviceInfo
	Services []ServiceInfo
}

// wanServiceRank orders the WAN connection services: lower is preferred.
func wanServiceRank(st string) int {
	switch st {
	case ServiceWANIP2:
		return 0
	case ServiceWANIP1:
		return 1
	case ServiceWANPPP1:
		return 2
	}
	return -1
}

// ParseDescription parses a root device description. It keeps the root
// device's identity, URLBase and every WAN connection service (anywhere in
// the tree: IGDs put them under WANDevice/WANConnectionDevice). Element
// names are matched by local name whatever the namespace prefix. A
// description with a DTD, more than maxDescDepth levels, maxDescElements
// elements, maxDescDevices devices or maxDescServices services, or a kept
// field longer than maxDescText, is malformed.
func ParseDescription(b []byte) (Description, error) {
	x := newXMLReader(b, maxDescDepth, maxDescElements)
	var d Description
	var (
		path     []string // local names of the open elements
		devices  []*DeviceInfo
		devCount int
		svc      *ServiceInfo
		svcs     int
		text     []byte
		rooted   bool
	)
	parent := func(n int) string { // n = 1: the element's parent
		if len(path) > n {
			return path[len(path)-1-n]
		}
		return ""
	}
	for {
		tok, _, err := x.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return Description{}, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			name := t.Name.Local
			if len(path) == 0 {
				if name != "root" || rooted {
					return Description{}, malformed("description root element <%.20s>", name)
				}
				rooted = true
			}
			path = append(path, name)
			text = text[:0]
			switch {
			case name == "device" && (parent(1) == "root" || parent(1) == "deviceList"):
				devCount++
				if devCount > maxDescDevices {
					return Description{}, malformed("description with more than %d devices", maxDescDevices)
				}
				if parent(1) == "root" && devCount != 1 {
					return Description{}, malformed("description with two root devices")
				}
				devices = append(devices, &DeviceInfo{})
			case name == "service" && parent(1) == "serviceList" && parent(2) == "device" && len(devices) > 0:
				svcs++
				if svcs > maxDescServices {
					return Description{}, malformed("description with more than %d services", maxDescServices)
				}
				svc = &ServiceInfo{DeviceType: devices[len(devices)-1].DeviceType}
			}
		case xml.CharData:
			if len(text)+len(t) > maxDescText {
				if keptField(path) {
					return Description{}, malformed("description field <%s> longer than %d bytes", path[len(path)-1], maxDescText)
				}
				continue
			}
			text = append(text, t...)
		case xml.EndElement:
			name := t.Name.Local
			v := strings.TrimSpace(string(text))
			text = text[:0]
			switch {
			case svc != nil && parent(1) == "service":
				switch name {
				case "serviceType":
					svc.ServiceType = v
				case "serviceId":
					svc.ServiceID = v
				case "controlURL":
					svc.ControlURL = v
				case "eventSubURL":
					svc.EventSubURL = v
				case "SCPDURL":
					svc.SCPDURL = v
				}
			case name == "service" && svc != nil:
				if wanServiceRank(svc.ServiceType) >= 0 {
					d.Services = append(d.Services, *svc)
				}
				svc = nil
			case len(devices) > 0 && parent(1) == "device":
				dev := devices[len(devices)-1]
				switch name {
				case "deviceType":
					dev.DeviceType = v
				case "friendlyName":
					dev.FriendlyName = v
				case "manufacturer":
					dev.Manufacturer = v
				case "modelName":
					dev.ModelName = v
				case "UDN":
					dev.UDN = v
				}
			case name == "device" && len(devices) > 0 && (parent(1) == "root" || parent(1) == "deviceList"):
				if parent(1) == "root" {
					d.Root = *devices[len(devices)-1]
				}
				devices = devices[:len(devices)-1]
			case name == "URLBase" && parent(1) == "root":
				d.URLBase = v
			}
			path = path[:len(path)-1]
		}
	}
	if !rooted || d.Root.DeviceType == "" {
		return Description{}, malformed("description without a root device")
	}
	return d, nil
}

// keptField reports whether the element at the end of path is a field
// ParseDescription keeps.
func keptField(path []string) bool {
	if len(path) < 2 {
		return false
	}
	switch path[len(path)-1] {
	case "serviceType", "serviceId", "controlURL", "eventSubURL", "SCPDURL":
		return path[len(path)-2] == "service"
	case "deviceType", "friendlyName", "manufacturer", "modelName", "UDN":
		return path[len(path)-2] == "device"
	case "URLBase":
		return path[len(path)-2] == "root"
	}
	return false
}

// Candidates returns the WAN connection services in the order pcpgw tries
// them: WANIPConnection:2, WANIPConnection:1, WANPPPConnection:1, each in
// document order.
func (d *Description) Candidates() []ServiceInfo {
	var out []ServiceInfo
	for rank := range 3 {
		for _, s := range d.Services {
			if wanServiceRank(s.ServiceType) == rank && s.ControlURL != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

// ParseLocation parses a LOCATION: an http:// URL whose host is an IPv4
// address literal (no name: pcpgw resolves none from an upstream), without
// user information.
func ParseLocation(loc string) (*url.URL, netip.AddrPort, error) {
	u, err := url.Parse(loc)
	if err != nil {
		return nil, netip.AddrPort{}, malformed("LOCATION %.80q: %v", loc, err)
	}
	ap, err := httpHost(u)
	if err != nil {
		return nil, netip.AddrPort{}, err
	}
	return u, ap, nil
}

// httpHost checks that u is http:// to an IPv4 literal without user
// information, and returns that address and port (80 when none).
func httpHost(u *url.URL) (netip.AddrPort, error) {
	if u.Scheme != "http" || u.User != nil || u.Opaque != "" {
		return netip.AddrPort{}, malformed("URL %.80q: not a plain http:// URL", u.Redacted())
	}
	a, err := netip.ParseAddr(u.Hostname())
	if err != nil || !a.Is4() {
		return netip.AddrPort{}, malformed("URL %.80q: host is not an IPv4 address", u.Redacted())
	}
	port := uint16(80)
	if p := u.Port(); p != "" {
		n, ok := parsePort(p)
		if !ok || n == 0 {
			return netip.AddrPort{}, malformed("URL %.80q: port", u.Redacted())
		}
		port = n
	}
	return netip.AddrPortFrom(a, port), nil
}

func parsePort(s string) (uint16, bool) {
	if s == "" || len(s) > 5 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	if n > 65535 {
		return 0, false
	}
	return uint16(n), true
}

// ResolveURL resolves ref (a service's controlURL) against urlBase, or
// location when urlBase is empty (UDA 1.1 §2.3), and checks that the
// result, and urlBase, stay on location's host: same IPv4 address (the
// port may differ), http://, no user information.
func ResolveURL(location, urlBase, ref string) (*url.URL, error) {
	loc, lap, err := ParseLocation(location)
	if err != nil {
		return nil, err
	}
	base := loc
	if urlBase != "" {
		bu, err := url.Parse(urlBase)
		if err != nil {
			return nil, malformed("URLBase %.80q: %v", urlBase, err)
		}
		bap, err := httpHost(bu)
		if err != nil {
			return nil, err
		}
		if bap.Addr() != lap.Addr() {
			return nil, malformed("URLBase %s is not on the description's host %s", bap.Addr(), lap.Addr())
		}
		base = bu
	}
	r, err := url.Parse(ref)
	if err != nil || ref == "" {
		return nil, malformed("URL %.80q", ref)
	}
	u := base.ResolveReference(r)
	u.Fragment, u.RawFragment = "", ""
	ap, err := httpHost(u)
	if err != nil {
		return nil, err
	}
	if ap.Addr() != lap.Addr() {
		return nil, malformed("URL %s is not on the description's host %s", ap.Addr(), lap.Addr())
	}
	return u, nil
}
