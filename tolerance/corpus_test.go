package tolerance

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/pcpgw/pcpgw/pcp"
)

// The corpus. It was seeded from miniupnpd's upnpsoap.c (how each action
// reads its arguments: atoi, strtol, strcasecmp, missing arguments taken
// as NULL), upnpreplyparse.c and minixml.c (namespace prefixes dropped,
// the last of two equal arguments wins, entities not decoded), natpmp.c
// and pcpserver.c (lengths, lifetimes, deletes), and from what LAN
// clients send (miniupnpc, libnatpmp, goupnp, tailscale's portmapper).
//
// Ports: a case maps external 28080 to self:8080 unless it is about
// that; the other host holds 28090 -> other:8090 where a case needs a
// mapping of another host.

const (
	eport = "28080"
	iport = "8080"
)

// Arguments of the WANIPConnection actions, valid.
func addArgs() []kv {
	return []kv{
		{"NewRemoteHost", ""}, {"NewExternalPort", eport}, {"NewProtocol", "TCP"},
		{"NewInternalPort", iport}, {"NewInternalClient", "{self}"}, {"NewEnabled", "1"},
		{"NewPortMappingDescription", "tol"}, {"NewLeaseDuration", "3600"},
	}
}

func keyArgs() []kv {
	return []kv{{"NewRemoteHost", ""}, {"NewExternalPort", eport}, {"NewProtocol", "TCP"}}
}

func rangeArgs() []kv {
	return []kv{{"NewStartPort", "28000"}, {"NewEndPort", "28999"}, {"NewProtocol", "TCP"}, {"NewManage", "1"}}
}

func listArgs() []kv { return append(rangeArgs(), kv{"NewNumberOfPorts", "10"}) }

// Setup steps: self's mapping 28080 -> self:8080 (and UDP), the other
// host's 28090 -> other:8090.
var (
	mine    = soapStep{from: self, svc: "igd2", action: "AddPortMapping", args: addArgs()}
	mineUDP = soapStep{from: self, svc: "igd2", action: "AddPortMapping", args: with(addArgs(), "NewProtocol", "UDP")}
	theirs  = soapStep{from: other, svc: "igd2", action: "AddPortMapping", args: []kv{
		{"NewRemoteHost", ""}, {"NewExternalPort", "28090"}, {"NewProtocol", "TCP"},
		{"NewInternalPort", "8090"}, {"NewInternalClient", "{other}"}, {"NewEnabled", "1"},
		{"NewPortMappingDescription", "theirs"}, {"NewLeaseDuration", "3600"},
	}}
	minePMP = natpmp(self, 2, 8080, 28080, 3600)
)

// with returns args with name's value set to v.
func with(args []kv, name, v string) []kv {
	out := slices.Clone(args)
	for i := range out {
		if out[i].name == name {
			out[i].value = v
		}
	}
	return out
}

// Value variants by argument type.
var (
	portValues = []string{"0", "1", "1023", "1024", "65535", "65536", "-1", "+28080", "028080",
		"28080abc", "abc", "0x6db0", "28080.0", "4294996376"}
	// Not "UDPLITE": miniupnpd maps it (protocol 136), but its nftables
	// backend then lists the mapping with another external port and
	// lease 0, and DeletePortMapping cannot remove it.
	protoValues  = []string{"tcp", "Tcp", "udp", "UDP", "xyz", "6", "ANY"}
	clientValues = []string{"{other}", "0.0.0.0", "{gw}", "127.0.0.1", "255.255.255.255", "::ffff:{self}", "*", "::1", "self.lan"}
	remoteValues = []string{"*", "0.0.0.0", "203.0.113.50", "{self}", "abc", "::1", "self.lan"}
	boolValues   = []string{"0", "true", "True", "TRUE", "yes", "no", "false", "2", "abc"}
	leaseValues  = []string{"0", "5", "119", "120", "86400", "86401", "604800", "604801", "4294967295",
		"4294967296", "-1", "abc", "3600abc", "+3600"}
	descValues = []string{strings.Repeat("d", 300), "a&amp;b", "&lt;b&gt;", "<![CDATA[x<y]]>", "é", "a\tb"}
)

// argVariants are the value variants of an argument by name.
func argVariants(name string) []string {
	switch name {
	case "NewExternalPort", "NewInternalPort", "NewStartPort", "NewEndPort":
		return portValues
	case "NewProtocol":
		return protoValues
	case "NewInternalClient":
		return clientValues
	case "NewRemoteHost":
		return remoteValues
	case "NewEnabled", "NewManage":
		return boolValues
	case "NewLeaseDuration":
		return leaseValues
	case "NewPortMappingDescription":
		return descValues
	case "NewPortMappingIndex":
		return []string{"1", "-1", "99999", "0abc", "abc", "+0", "00"}
	case "NewNumberOfPorts":
		return []string{"0", "1", "65536", "abc", "-1"}
	case "NewConnectionType":
		return []string{"ip_routed", "IP_Bridged", "PPPoE_Bridged", "Unconfigured"}
	}
	return nil
}

// shape variants apply to every argument.
var shapes = []struct {
	name string
	f    func(kv) []kv // nil: the argument is left out
}{
	{"missing", func(kv) []kv { return nil }},
	{"empty", func(a kv) []kv { return []kv{{a.name, ""}} }},
	{"selfclosing", func(a kv) []kv { return []kv{{a.name, selfClosing}} }},
	{"spaces", func(a kv) []kv { return []kv{{a.name, "  " + a.value + "  "}} }},
	{"pretty", func(a kv) []kv { return []kv{{a.name, "\r\n\t\t" + a.value + "\r\n\t"}} }},
	{"lowername", func(a kv) []kv { return []kv{{strings.ToLower(a.name), a.value}} }},
	{"prefixed", func(a kv) []kv { return []kv{{"u:" + a.name, a.value}} }},
	{"twice", func(a kv) []kv { return []kv{{a.name, "zzz"}, a} }},
}

// actionCases are the per-argument cases of one action on one service.
func actionCases(svc, action string, args []kv, setup []step, full bool) []tcase {
	var out []tcase
	name := svc + " " + action
	mk := func(id string, a []kv, mod func(*side, *httpReq)) tcase {
		return tcase{id: name + " " + id, setup: setup, req: soapStep{from: self, svc: svc, action: action, args: a, mod: mod}}
	}
	out = append(out, mk("valid", args, nil))
	for i, a := range args {
		for _, sh := range shapes {
			if !full && sh.name != "missing" && sh.name != "empty" && sh.name != "spaces" {
				continue
			}
			rep := slices.Clone(args[:i])
			rep = append(rep, sh.f(a)...)
			rep = append(rep, args[i+1:]...)
			out = append(out, mk(a.name+" "+sh.name, rep, nil))
		}
		for _, v := range argVariants(a.name) {
			c := mk(fmt.Sprintf("%s=%q", a.name, v), with(args, a.name, v), nil)
			// miniupnpd's AddAnyPortMapping takes these leases as
			// 4294967295 s, which wraps its clock: the mapping expires
			// at once.
			c.replyOnly = action == "AddAnyPortMapping" && a.name == "NewLeaseDuration" && (v == "-1" || v == "4294967295")
			out = append(out, c)
		}
	}
	if len(args) > 0 {
		out = append(out,
			mk("extra argument", append(slices.Clone(args), kv{"NewFoo", "1"}), nil),
			mk("extra argument with a dash", append(slices.Clone(args), kv{"New-Foo", "1"}), nil),
			mk("40 extra arguments", append(slices.Clone(args), extraArgs(40)...), nil),
			mk("reversed", reversed(args), nil))
	}
	return out
}

func extraArgs(n int) []kv {
	var out []kv
	for i := range n {
		out = append(out, kv{fmt.Sprintf("NewExtra%d", i), "x"})
	}
	return out
}

func reversed(a []kv) []kv {
	out := slices.Clone(a)
	slices.Reverse(out)
	return out
}

// Whole-request variants.
var requestShapes = []struct {
	name string
	mod  func(action string) func(*side, *httpReq)
}{
	{"SOAPAction unquoted", func(action string) func(*side, *httpReq) {
		return func(_ *side, h *httpReq) {
			v, _ := h.header("SOAPAction")
			h.setHeader("SOAPAction", strings.Trim(v, `"`))
		}
	}},
	{"SOAPAction missing", func(string) func(*side, *httpReq) {
		return func(_ *side, h *httpReq) { h.delHeader("SOAPAction") }
	}},
	{"SOAPAction lower-case name", func(string) func(*side, *httpReq) {
		return func(_ *side, h *httpReq) {
			v, _ := h.header("SOAPAction")
			h.delHeader("SOAPAction")
			h.setHeader("soapaction", v)
		}
	}},
	{"SOAPAction with spaces", func(string) func(*side, *httpReq) {
		return func(_ *side, h *httpReq) { v, _ := h.header("SOAPAction"); h.setHeader("SOAPAction", " "+v+" ") }
	}},
	{"SOAPAction IGD:1 namespace", func(action string) func(*side, *httpReq) { return setNS(serviceNS["igd1"], action, true) }},
	{"SOAPAction IGD:2 namespace", func(action string) func(*side, *httpReq) { return setNS(serviceNS["igd2"], action, true) }},
	{"SOAPAction WANCommonInterfaceConfig namespace", func(action string) func(*side, *httpReq) {
		return setNS(serviceNS["ifc1"], action, true)
	}},
	{"SOAPAction WANPPPConnection:1 namespace", func(action string) func(*side, *httpReq) {
		return setNS("urn:schemas-upnp-org:service:WANPPPConnection:1", action, true)
	}},
	{"body IGD:1 namespace", func(action string) func(*side, *httpReq) { return setNS(serviceNS["igd1"], action, false) }},
	{"body IGD:2 namespace", func(action string) func(*side, *httpReq) { return setNS(serviceNS["igd2"], action, false) }},
	{"body action without namespace", func(action string) func(*side, *httpReq) {
		return func(_ *side, h *httpReq) {
			i := strings.Index(h.body, "<u:"+action)
			j := strings.Index(h.body[i:], ">")
			h.body = h.body[:i] + "<" + action + h.body[i+j:]
			h.body = strings.Replace(h.body, "</u:"+action+">", "</"+action+">", 1)
		}
	}},
	{"body action name differs", func(action string) func(*side, *httpReq) {
		return func(_ *side, h *httpReq) { h.body = strings.ReplaceAll(h.body, "u:"+action, "u:GetStatusInfo") }
	}},
	{"no XML declaration", func(string) func(*side, *httpReq) {
		return func(_ *side, h *httpReq) { _, h.body, _ = strings.Cut(h.body, "\r\n") }
	}},
	{"XML declaration ISO-8859-1", func(string) func(*side, *httpReq) {
		return func(_ *side, h *httpReq) {
			h.body = strings.Replace(h.body, `<?xml version="1.0"?>`, `<?xml version="1.0" encoding="ISO-8859-1"?>`, 1)
		}
	}},
	{"SOAP-ENV prefix", func(string) func(*side, *httpReq) {
		return func(_ *side, h *httpReq) {
			h.body = strings.ReplaceAll(strings.ReplaceAll(h.body, "<s:", "<SOAP-ENV:"), "</s:", "</SOAP-ENV:")
			h.body = strings.ReplaceAll(h.body, "xmlns:s=", "xmlns:SOAP-ENV=")
			h.body = strings.ReplaceAll(h.body, "s:encodingStyle", "SOAP-ENV:encodingStyle")
		}
	}},
	{"no envelope", func(action string) func(*side, *httpReq) {
		return func(_ *side, h *httpReq) {
			i := strings.Index(h.body, "<u:"+action)
			j := strings.Index(h.body, "</s:Body>")
			h.body = h.body[i:j]
		}
	}},
	{"SOAP header", func(string) func(*side, *httpReq) {
		return func(_ *side, h *httpReq) {
			h.body = strings.Replace(h.body, "<s:Body>", "<s:Header><x:a xmlns:x=\"urn:x\">1</x:a></s:Header><s:Body>", 1)
		}
	}},
	{"comment", func(string) func(*side, *httpReq) {
		return func(_ *side, h *httpReq) { h.body = strings.Replace(h.body, "<s:Body>", "<s:Body><!-- c -->", 1) }
	}},
	{"chunked", func(string) func(*side, *httpReq) { return func(_ *side, h *httpReq) { h.chunked = true } }},
	{"no Content-Type", func(string) func(*side, *httpReq) {
		return func(_ *side, h *httpReq) { h.delHeader("Content-Type") }
	}},
	{"Content-Type text/xml", func(string) func(*side, *httpReq) {
		return func(_ *side, h *httpReq) { h.setHeader("Content-Type", "text/xml") }
	}},
	{"Host name", func(string) func(*side, *httpReq) {
		return func(s *side, h *httpReq) { h.setHeader("Host", fmt.Sprintf("router.lan:%d", s.port)) }
	}},
	{"Host without port", func(string) func(*side, *httpReq) {
		return func(s *side, h *httpReq) { h.setHeader("Host", s.gw.String()) }
	}},
}

// setNS sets the namespace of the SOAPACTION header (header) or of the
// body's action element.
func setNS(ns, action string, header bool) func(*side, *httpReq) {
	return func(_ *side, h *httpReq) {
		if header {
			h.setHeader("SOAPAction", `"`+ns+"#"+action+`"`)
			return
		}
		i := strings.Index(h.body, `xmlns:u="`)
		j := strings.Index(h.body[i+9:], `"`)
		h.body = h.body[:i+9] + ns + h.body[i+9+j:]
	}
}

func requestCases(svc, action string, args []kv, setup []step) []tcase {
	var out []tcase
	for _, rs := range requestShapes {
		out = append(out, tcase{id: svc + " " + action + " " + rs.name, setup: setup,
			req: soapStep{from: self, svc: svc, action: action, args: args, mod: rs.mod(action)}})
	}
	return out
}

// upnpCases is the UPnP IGD corpus.
func upnpCases() []tcase {
	var out []tcase
	add := func(c ...tcase) { out = append(out, c...) }
	none := []step(nil)
	mineS := []step{mine}

	add(actionCases("igd2", "AddPortMapping", addArgs(), none, true)...)
	add(actionCases("igd1", "AddPortMapping", addArgs(), none, false)...)
	add(actionCases("igd2", "AddAnyPortMapping", addArgs(), none, false)...)
	add(actionCases("igd2", "DeletePortMapping", keyArgs(), mineS, true)...)
	add(actionCases("igd1", "DeletePortMapping", keyArgs(), mineS, false)...)
	add(actionCases("igd2", "GetSpecificPortMappingEntry", keyArgs(), mineS, true)...)
	add(actionCases("igd1", "GetSpecificPortMappingEntry", keyArgs(), mineS, false)...)
	add(actionCases("igd2", "GetGenericPortMappingEntry", []kv{{"NewPortMappingIndex", "0"}}, mineS, true)...)
	add(actionCases("igd1", "GetGenericPortMappingEntry", []kv{{"NewPortMappingIndex", "0"}}, mineS, false)...)
	add(actionCases("igd2", "DeletePortMappingRange", rangeArgs(), mineS, false)...)
	add(actionCases("igd2", "GetListOfPortMappings", listArgs(), mineS, false)...)
	add(actionCases("igd2", "SetConnectionType", []kv{{"NewConnectionType", "IP_Routed"}}, none, false)...)
	for _, svc := range []string{"igd1", "igd2"} {
		for _, a := range []string{"GetExternalIPAddress", "GetStatusInfo", "GetConnectionTypeInfo", "GetNATRSIPStatus",
			"RequestConnection", "RequestTermination", "ForceTermination"} {
			add(tcase{id: svc + " " + a + " valid", req: soapStep{from: self, svc: svc, action: a}})
		}
		add(tcase{id: svc + " GetExternalIPAddress extra argument", req: soapStep{from: self, svc: svc, action: "GetExternalIPAddress", args: []kv{{"NewFoo", "1"}}}})
		ifc := "ifc" + svc[3:]
		for _, a := range []string{"GetCommonLinkProperties", "GetTotalBytesSent", "GetTotalBytesReceived",
			"GetTotalPacketsSent", "GetTotalPacketsReceived"} {
			add(tcase{id: ifc + " " + a + " valid", req: soapStep{from: self, svc: ifc, action: a}})
		}
		// Actions sent to the control URL of another service.
		add(tcase{id: svc + " GetCommonLinkProperties on the WANIPConnection URL", req: soapStep{from: self, svc: svc, action: "GetCommonLinkProperties",
			mod: setNS(serviceNS["ifc1"], "GetCommonLinkProperties", true)}})
		add(tcase{id: ifc + " GetExternalIPAddress on the WANCommonInterfaceConfig URL", req: soapStep{from: self, svc: ifc, action: "GetExternalIPAddress",
			mod: setNS(serviceNS[svc], "GetExternalIPAddress", true)}})
		add(tcase{id: svc + " unknown action", req: soapStep{from: self, svc: svc, action: "GetFooBar"}})
	}
	// IGD:2 actions on the IGD:1 service.
	add(tcase{id: "igd1 AddAnyPortMapping valid", req: soapStep{from: self, svc: "igd1", action: "AddAnyPortMapping", args: addArgs()}})
	add(tcase{id: "igd1 GetListOfPortMappings valid", setup: mineS, req: soapStep{from: self, svc: "igd1", action: "GetListOfPortMappings", args: listArgs()}})
	add(tcase{id: "igd1 DeletePortMappingRange valid", setup: mineS, req: soapStep{from: self, svc: "igd1", action: "DeletePortMappingRange", args: rangeArgs()}})

	// Whole-request shapes.
	add(requestCases("igd2", "AddPortMapping", addArgs(), none)...)
	add(requestCases("igd1", "AddPortMapping", addArgs(), none)...)
	add(requestCases("igd2", "GetExternalIPAddress", nil, none)...)

	// The table as it is: another host's mapping, renewals, conflicts,
	// deletes in unusual forms.
	theirsS := []step{theirs}
	other := func(args []kv) []kv {
		return with(with(with(args, "NewExternalPort", "28090"), "NewInternalPort", "8090"), "NewInternalClient", "{other}")
	}
	for _, svc := range []string{"igd1", "igd2"} {
		add(
			tcase{id: svc + " AddPortMapping same again (renewal)", setup: mineS, req: soapStep{from: self, svc: svc, action: "AddPortMapping", args: addArgs()}},
			tcase{id: svc + " AddPortMapping same port, other internal port", setup: mineS, req: soapStep{from: self, svc: svc, action: "AddPortMapping", args: with(addArgs(), "NewInternalPort", "8081")}},
			tcase{id: svc + " AddPortMapping same port, new description and lease", setup: mineS, req: soapStep{from: self, svc: svc, action: "AddPortMapping",
				args: with(with(addArgs(), "NewPortMappingDescription", "new"), "NewLeaseDuration", "7200")}},
			tcase{id: svc + " AddPortMapping other port, same internal port", setup: mineS, req: soapStep{from: self, svc: svc, action: "AddPortMapping", args: with(addArgs(), "NewExternalPort", "28081")}},
			tcase{id: svc + " AddPortMapping port held by the other host", setup: theirsS, req: soapStep{from: self, svc: svc, action: "AddPortMapping", args: with(addArgs(), "NewExternalPort", "28090")}},
			tcase{id: svc + " AddPortMapping the other host's mapping for it", setup: theirsS, req: soapStep{from: self, svc: svc, action: "AddPortMapping", args: other(addArgs())}},
			tcase{id: svc + " AddPortMapping port 5000 (the daemon's HTTP port)", req: soapStep{from: self, svc: svc, action: "AddPortMapping", args: with(addArgs(), "NewExternalPort", "5000")}},
			tcase{id: svc + " AddPortMapping port 5351 UDP (the daemon's NAT-PMP port)", req: soapStep{from: self, svc: svc, action: "AddPortMapping",
				args: with(with(addArgs(), "NewExternalPort", "5351"), "NewProtocol", "UDP")}},
			tcase{id: svc + " AddPortMapping remote host on a mapping without", setup: mineS, req: soapStep{from: self, svc: svc, action: "AddPortMapping", args: with(addArgs(), "NewRemoteHost", "203.0.113.50")}},
			tcase{id: svc + " DeletePortMapping the other host's mapping", setup: theirsS, req: soapStep{from: self, svc: svc, action: "DeletePortMapping", args: with(keyArgs(), "NewExternalPort", "28090")}},
			tcase{id: svc + " DeletePortMapping nothing there", req: soapStep{from: self, svc: svc, action: "DeletePortMapping", args: keyArgs()}},
			tcase{id: svc + " DeletePortMapping wrong protocol", setup: mineS, req: soapStep{from: self, svc: svc, action: "DeletePortMapping", args: with(keyArgs(), "NewProtocol", "UDP")}},
			tcase{id: svc + " DeletePortMapping of a NAT-PMP mapping", setup: []step{minePMP}, req: soapStep{from: self, svc: svc, action: "DeletePortMapping", args: keyArgs()}},
			tcase{id: svc + " DeletePortMapping with the remote host of a mapping without", setup: mineS, req: soapStep{from: self, svc: svc, action: "DeletePortMapping", args: with(keyArgs(), "NewRemoteHost", "203.0.113.50")}},
			tcase{id: svc + " DeletePortMapping by the internal port", setup: mineS, req: soapStep{from: self, svc: svc, action: "DeletePortMapping", args: with(keyArgs(), "NewExternalPort", iport)}},
			tcase{id: svc + " GetSpecificPortMappingEntry the other host's mapping", setup: theirsS, req: soapStep{from: self, svc: svc, action: "GetSpecificPortMappingEntry", args: with(keyArgs(), "NewExternalPort", "28090")}},
			tcase{id: svc + " GetSpecificPortMappingEntry of a NAT-PMP mapping", setup: []step{minePMP}, req: soapStep{from: self, svc: svc, action: "GetSpecificPortMappingEntry", args: keyArgs()}},
			tcase{id: svc + " GetGenericPortMappingEntry the other host's mapping", setup: theirsS, req: soapStep{from: self, svc: svc, action: "GetGenericPortMappingEntry", args: []kv{{"NewPortMappingIndex", "0"}}}},
			tcase{id: svc + " GetGenericPortMappingEntry empty table", req: soapStep{from: self, svc: svc, action: "GetGenericPortMappingEntry", args: []kv{{"NewPortMappingIndex", "0"}}}},
		)
	}
	both := []step{mine, theirs}
	add(
		tcase{id: "igd2 DeletePortMappingRange with the other host's mapping", setup: both, req: soapStep{from: self, svc: "igd2", action: "DeletePortMappingRange", args: rangeArgs()}},
		tcase{id: "igd2 DeletePortMappingRange NewManage=0 with the other host's mapping", setup: both, req: soapStep{from: self, svc: "igd2", action: "DeletePortMappingRange", args: with(rangeArgs(), "NewManage", "0")}},
		tcase{id: "igd2 DeletePortMappingRange only the other host's mapping", setup: theirsS, req: soapStep{from: self, svc: "igd2", action: "DeletePortMappingRange", args: rangeArgs()}},
		tcase{id: "igd2 DeletePortMappingRange empty range", setup: mineS, req: soapStep{from: self, svc: "igd2", action: "DeletePortMappingRange", args: with(rangeArgs(), "NewStartPort", "29000")}},
		tcase{id: "igd2 DeletePortMappingRange start above end", setup: mineS, req: soapStep{from: self, svc: "igd2", action: "DeletePortMappingRange", args: with(rangeArgs(), "NewEndPort", "27000")}},
		tcase{id: "igd2 DeletePortMappingRange whole range both protocols", setup: []step{mine, mineUDP}, req: soapStep{from: self, svc: "igd2", action: "DeletePortMappingRange",
			args: with(with(rangeArgs(), "NewStartPort", "1"), "NewEndPort", "65535")}},
		tcase{id: "igd2 GetListOfPortMappings with the other host's mapping", setup: both, req: soapStep{from: self, svc: "igd2", action: "GetListOfPortMappings", args: listArgs()}},
		tcase{id: "igd2 GetListOfPortMappings NewManage=0 with the other host's mapping", setup: both, req: soapStep{from: self, svc: "igd2", action: "GetListOfPortMappings", args: with(listArgs(), "NewManage", "0")}},
		tcase{id: "igd2 GetListOfPortMappings empty table", req: soapStep{from: self, svc: "igd2", action: "GetListOfPortMappings", args: listArgs()}},
		tcase{id: "igd2 GetListOfPortMappings start above end", setup: mineS, req: soapStep{from: self, svc: "igd2", action: "GetListOfPortMappings", args: with(listArgs(), "NewEndPort", "27000")}},
		tcase{id: "igd2 GetListOfPortMappings NewNumberOfPorts=1 of two", setup: []step{mine, soapStep{from: self, svc: "igd2", action: "AddPortMapping", args: with(with(addArgs(), "NewExternalPort", "28081"), "NewInternalPort", "8081")}},
			req: soapStep{from: self, svc: "igd2", action: "GetListOfPortMappings", args: with(listArgs(), "NewNumberOfPorts", "1")}},
		tcase{id: "igd2 AddAnyPortMapping port held by the other host", setup: theirsS, req: soapStep{from: self, svc: "igd2", action: "AddAnyPortMapping", args: with(addArgs(), "NewExternalPort", "28090")}},
		tcase{id: "igd2 AddAnyPortMapping same again", setup: mineS, req: soapStep{from: self, svc: "igd2", action: "AddAnyPortMapping", args: addArgs()}},
		tcase{id: "igd2 AddAnyPortMapping privileged port", req: soapStep{from: self, svc: "igd2", action: "AddAnyPortMapping", args: with(addArgs(), "NewExternalPort", "80")}},
	)
	return out
}

// Arguments of AddPinhole (WANIPv6FirewallControl:1), valid.
func pinArgs() []kv {
	return []kv{{"RemoteHost", ""}, {"RemotePort", "0"}, {"InternalClient", "{self6}"},
		{"InternalPort", iport}, {"Protocol", "6"}, {"LeaseTime", "3600"}}
}

// pinholeCases is the IGD:2 pinhole corpus (upnpsoap.c's AddPinhole and
// PinholeVerification), over IPv6: the pinhole a case makes, and whether
// it is still there afterwards, are the outcome ("pinN:there|gone").
func pinholeCases() []tcase {
	var out []tcase
	add := func(c ...tcase) { out = append(out, c...) }
	minePin := soapStep{from: self, svc: "fw", action: "AddPinhole", args: pinArgs()}
	theirsPin := soapStep{from: other, svc: "fw", action: "AddPinhole", args: with(pinArgs(), "InternalClient", "{other6}")}
	pinVariants := map[string][]string{
		"RemoteHost":     {"*", "::", "2001:db8:2::7", "203.0.113.50", "abc"},
		"RemotePort":     {"443", "65536", "-1", "abc"},
		"InternalClient": {"{other6}", "{gw6}", "::1", "{self}", "fe80::1", "*"},
		"InternalPort":   {"0", "80", "1023", "1024", "65535", "65536", "abc"},
		"Protocol":       {"17", "65535", "132", "0", "tcp", "abc", "-1"},
		"LeaseTime":      {"0", "1", "86400", "86401", "-1", "abc"},
	}
	mk := func(id string, setup []step, action string, args []kv) tcase {
		return tcase{id: "fw " + action + " " + id, setup: setup, req: soapStep{from: self, svc: "fw", action: action, args: args}}
	}
	args := pinArgs()
	add(mk("valid", nil, "AddPinhole", args))
	for i, a := range args {
		for _, sh := range shapes[:4] { // missing, empty, selfclosing, spaces
			rep := slices.Clone(args[:i])
			rep = append(rep, sh.f(a)...)
			rep = append(rep, args[i+1:]...)
			add(mk(a.name+" "+sh.name, nil, "AddPinhole", rep))
		}
		for _, v := range pinVariants[a.name] {
			add(mk(fmt.Sprintf("%s=%q", a.name, v), nil, "AddPinhole", with(args, a.name, v)))
		}
	}
	add(mk("extra argument", nil, "AddPinhole", append(slices.Clone(args), kv{"NewFoo", "1"})),
		mk("same again", []step{minePin}, "AddPinhole", args),
		mk("same again, other lease", []step{minePin}, "AddPinhole", with(args, "LeaseTime", "7200")))
	for _, action := range []string{"UpdatePinhole", "DeletePinhole", "GetPinholePackets", "CheckPinholeWorking"} {
		a := []kv{{"UniqueID", "{pin}"}}
		if action == "UpdatePinhole" {
			a = append(a, kv{"NewLeaseTime", "7200"})
		}
		add(mk("valid", []step{minePin}, action, a))
		for _, v := range []string{"", "0", "-1", "65536", "abc", "{pin}0"} {
			add(mk(fmt.Sprintf("UniqueID=%q", v), []step{minePin}, action, with(a, "UniqueID", v)))
		}
		add(mk("UniqueID missing", []step{minePin}, action, a[1:]),
			mk("the other host's pinhole", []step{theirsPin}, action, a))
		if action == "UpdatePinhole" {
			for _, v := range []string{"0", "1", "86400", "86401", "abc", ""} {
				add(mk(fmt.Sprintf("NewLeaseTime=%q", v), []step{minePin}, action, with(a, "NewLeaseTime", v)))
			}
		}
	}
	add(mk("valid", nil, "GetFirewallStatus", nil),
		mk("valid", nil, "GetOutboundPinholeTimeout", args[:5]),
		mk("Protocol=\"65535\"", nil, "GetOutboundPinholeTimeout", with(args[:5], "Protocol", "65535")),
		mk("InternalClient missing", nil, "GetOutboundPinholeTimeout", without(args[:5], "InternalClient")))
	return out
}

func without(args []kv, name string) []kv {
	return slices.DeleteFunc(slices.Clone(args), func(a kv) bool { return a.name == name })
}

// natpmpCases is the NAT-PMP corpus (RFC 6886, natpmp.c).
func natpmpCases() []tcase {
	var out []tcase
	add := func(c ...tcase) { out = append(out, c...) }
	n := func(id string, setup []step, req step) tcase {
		return tcase{id: "natpmp " + id, setup: setup, req: req}
	}
	pmpUDP := natpmp(self, 1, 8080, 28080, 3600)
	theirsPMP := natpmp(other, 2, 8090, 28090, 3600)
	add(
		n("external address", nil, rawUDP(self, []byte{0, 0})),
		n("external address padded to 12", nil, rawUDP(self, make([]byte, 12))),
		n("external address 1 octet", nil, rawUDP(self, []byte{0})),
		n("map TCP", nil, natpmp(self, 2, 8080, 28080, 3600)),
		n("map UDP", nil, natpmp(self, 1, 8080, 28080, 3600)),
		n("map suggested port 0", nil, natpmp(self, 2, 8080, 0, 3600)),
		n("map internal port 0", nil, natpmp(self, 2, 0, 28080, 3600)),
		n("map suggested port 1", nil, natpmp(self, 2, 8080, 1, 3600)),
		n("map suggested port 80", nil, natpmp(self, 2, 8080, 80, 3600)),
		n("map suggested port 1023", nil, natpmp(self, 2, 8080, 1023, 3600)),
		n("map suggested port 65535", nil, natpmp(self, 2, 8080, 65535, 3600)),
		n("map internal port 1", nil, natpmp(self, 2, 1, 28080, 3600)),
		n("map internal port 1023", nil, natpmp(self, 2, 1023, 28080, 3600)),
		n("map internal port 65535", nil, natpmp(self, 2, 65535, 28080, 3600)),
		n("map suggested port 5351 UDP", nil, natpmp(self, 1, 8080, 5351, 3600)),
		n("map suggested port 5000", nil, natpmp(self, 2, 8080, 5000, 3600)),
		n("map port held by the other host", []step{theirsPMP}, natpmp(self, 2, 8080, 28090, 3600)),
		n("map port held by the other host's UPnP mapping", []step{theirs}, natpmp(self, 2, 8080, 28090, 3600)),
		n("map again (renewal)", []step{minePMP}, natpmp(self, 2, 8080, 28080, 3600)),
		n("map again, other suggested port", []step{minePMP}, natpmp(self, 2, 8080, 28081, 3600)),
		n("map again, suggested port 0", []step{minePMP}, natpmp(self, 2, 8080, 0, 3600)),
		n("map over own UPnP mapping of the internal port", []step{mine}, natpmp(self, 2, 8080, 28080, 3600)),
		n("map length 11", nil, rawUDP(self, natpmpPkt(2, 8080, 28080, 3600)[:11], 8080, 28080)),
		n("map length 16", nil, rawUDP(self, append(natpmpPkt(2, 8080, 28080, 3600), 0, 0, 0, 0), 8080, 28080)),
		n("map length 1100", nil, rawUDP(self, append(natpmpPkt(2, 8080, 28080, 3600), make([]byte, 1088)...), 8080, 28080)),
		n("map reserved field set", nil, rawUDP(self, func() []byte { b := natpmpPkt(2, 8080, 28080, 3600); b[2], b[3] = 0xff, 0xff; return b }(), 8080, 28080)),
		n("opcode 3", nil, rawUDP(self, natpmpPkt(3, 8080, 28080, 3600))),
		n("opcode 127", nil, rawUDP(self, natpmpPkt(127, 8080, 28080, 3600))),
		n("response opcode 130", nil, rawUDP(self, natpmpPkt(130, 8080, 28080, 3600))),
		n("version 1", nil, rawUDP(self, func() []byte { b := natpmpPkt(2, 8080, 28080, 3600); b[0] = 1; return b }())),
		n("version 3", nil, rawUDP(self, func() []byte { b := natpmpPkt(2, 8080, 28080, 3600); b[0] = 3; return b }())),
		// Deletes.
		n("delete", []step{minePMP}, natpmp(self, 2, 8080, 0, 0)),
		n("delete with the suggested port set", []step{minePMP}, natpmp(self, 2, 8080, 28080, 0)),
		n("delete nothing there", nil, natpmp(self, 2, 8080, 0, 0)),
		n("delete other protocol", []step{minePMP}, natpmp(self, 1, 8080, 0, 0)),
		n("delete all TCP", []step{minePMP, pmpUDP, natpmp(self, 2, 8081, 28081, 3600)}, natpmp(self, 2, 0, 0, 0)),
		n("delete all UDP", []step{minePMP, pmpUDP}, natpmp(self, 1, 0, 0, 0)),
		n("delete all, the other host's stay", []step{minePMP, theirsPMP}, natpmp(self, 2, 0, 0, 0)),
		n("delete of own UPnP mapping", []step{mine}, natpmp(self, 2, 8080, 0, 0)),
		n("delete all with own UPnP mapping", []step{mine}, natpmp(self, 2, 0, 0, 0)),
		n("delete the other host's internal port", []step{theirsPMP}, natpmp(self, 2, 8090, 0, 0)),
	)
	for _, life := range []uint32{1, 60, 119, 120, 121, 86400, 86401, 1 << 31, 1<<32 - 1} {
		c := n(fmt.Sprintf("map lifetime %d", life), nil, natpmp(self, 2, 8080, 28080, life))
		// miniupnpd keeps the lifetime asked for: a mapping of a second,
		// or one whose end wraps its clock, expires at once.
		c.replyOnly = life < 60 || life >= 1<<31
		add(c)
	}
	return out
}

// pcpCases is the PCP corpus (RFC 6887, pcpserver.c).
func pcpCases() []tcase {
	var out []tcase
	add := func(c ...tcase) { out = append(out, c...) }
	p := func(id string, setup []step, req step) tcase { return tcase{id: "pcp " + id, setup: setup, req: req} }
	def := pcpMapReq{life: 3600, proto: 6, iport: 8080, sugg: 28080}
	m := func(f func(*pcpMapReq)) udpStep {
		r := def
		f(&r)
		return pcpMap(self, r)
	}
	mineMap := pcpMap(self, def)
	theirsMap := pcpMap(other, pcpMapReq{life: 3600, proto: 6, iport: 8090, sugg: 28090})
	filter := func(a string, bits, port int) pcp.Option {
		pfx := netip.PrefixFrom(netip.MustParseAddr(a), bits)
		return pcp.Option{Code: pcp.OptFilter, Filter: pcp.Filter{Prefix: pfx, RemotePort: uint16(port)}}
	}
	add(
		p("announce", nil, pcpOther(self, pcp.OpAnnounce, 0, nil, nil)),
		p("announce with a lifetime", nil, pcpOther(self, pcp.OpAnnounce, 3600, nil, nil)),
		p("map TCP", nil, mineMap),
		p("map UDP", nil, m(func(r *pcpMapReq) { r.proto = 17 })),
		p("map again (renewal)", []step{mineMap}, mineMap),
		p("map again, other nonce", []step{mineMap}, m(func(r *pcpMapReq) { r.nonce = 1 })),
		p("map again, other suggested port", []step{mineMap}, m(func(r *pcpMapReq) { r.sugg = 28081 })),
		p("map suggested port 0", nil, m(func(r *pcpMapReq) { r.sugg = 0 })),
		p("map suggested port 80", nil, m(func(r *pcpMapReq) { r.sugg = 80 })),
		p("map internal port 80", nil, m(func(r *pcpMapReq) { r.iport = 80 })),
		p("map port held by the other host", []step{theirsMap}, m(func(r *pcpMapReq) { r.sugg = 28090 })),
		p("map port held by the other host, PREFER_FAILURE", []step{theirsMap}, m(func(r *pcpMapReq) {
			r.sugg = 28090
			r.opts = []pcp.Option{{Code: pcp.OptPreferFailure}}
		})),
		p("map PREFER_FAILURE", nil, m(func(r *pcpMapReq) { r.opts = []pcp.Option{{Code: pcp.OptPreferFailure}} })),
		p("map PREFER_FAILURE without suggestion", nil, m(func(r *pcpMapReq) {
			r.sugg = 0
			r.opts = []pcp.Option{{Code: pcp.OptPreferFailure}}
		})),
		p("map over own UPnP mapping", []step{mine}, mineMap),
		p("map protocol 0", nil, m(func(r *pcpMapReq) { r.proto, r.iport, r.sugg = 0, 0, 0 })),
		p("map protocol 0 with a port", nil, m(func(r *pcpMapReq) { r.proto = 0 })),
		p("map internal port 0", nil, m(func(r *pcpMapReq) { r.iport = 0 })),
		p("map internal and suggested port 0", nil, m(func(r *pcpMapReq) { r.iport, r.sugg = 0, 0 })),
		withCleanup(p("map ICMP", nil, m(func(r *pcpMapReq) { r.proto = 1 })), m(func(r *pcpMapReq) { r.proto, r.life = 1, 0 })),
		withCleanup(p("map SCTP", nil, m(func(r *pcpMapReq) { r.proto = 132 })), m(func(r *pcpMapReq) { r.proto, r.life = 132, 0 })),
		p("map suggested external address unspecified IPv4", nil, m(func(r *pcpMapReq) { r.suggAddr = "0.0.0.0" })),
		p("map suggested external address another", nil, m(func(r *pcpMapReq) { r.suggAddr = "198.51.100.1" })),
		p("map suggested external address another, PREFER_FAILURE", nil, m(func(r *pcpMapReq) {
			r.suggAddr = "198.51.100.1"
			r.opts = []pcp.Option{{Code: pcp.OptPreferFailure}}
		})),
		p("map client address of the other host", nil, m(func(r *pcpMapReq) { r.client = "{other}" })),
		p("map client address IPv6", nil, m(func(r *pcpMapReq) { r.client = "2001:db8::1" })),
		p("map FILTER one host", nil, m(func(r *pcpMapReq) { r.opts = []pcp.Option{filter("203.0.113.50", 32, 0)} })),
		p("map FILTER one host and port", nil, m(func(r *pcpMapReq) { r.opts = []pcp.Option{filter("203.0.113.50", 32, 443)} })),
		p("map FILTER a /24", nil, m(func(r *pcpMapReq) { r.opts = []pcp.Option{filter("203.0.113.0", 24, 0)} })),
		p("map FILTER two hosts", nil, m(func(r *pcpMapReq) {
			r.opts = []pcp.Option{filter("203.0.113.50", 32, 0), filter("203.0.113.51", 32, 0)}
		})),
		p("map THIRD_PARTY", nil, m(func(r *pcpMapReq) {
			r.opts = []pcp.Option{{Code: pcp.OptThirdParty, ThirdParty: netip.MustParseAddr("100.64.0.9")}}
		})),
		p("map DESCRIPTION", nil, m(func(r *pcpMapReq) { r.opts = []pcp.Option{{Code: pcp.OptDescription, Description: "tol"}} })),
		p("map unknown optional option", nil, m(func(r *pcpMapReq) { r.opts = []pcp.Option{{Code: 200, Raw: []byte{1, 2, 3, 4}}} })),
		p("map unknown mandatory option", nil, m(func(r *pcpMapReq) { r.opts = []pcp.Option{{Code: 99, Raw: []byte{1, 2, 3, 4}}} })),
		p("map version 1", nil, m(func(r *pcpMapReq) { r.version = 1 })),
		p("map version 3", nil, m(func(r *pcpMapReq) { r.version = 3 })),
		p("map length not a multiple of 4", nil, m(func(r *pcpMapReq) { r.raw = func(b []byte) []byte { return append(b, 0) } })),
		p("map trailing zeros", nil, m(func(r *pcpMapReq) { r.raw = func(b []byte) []byte { return append(b, 0, 0, 0, 0) } })),
		// 1100 octets, the longest request (all-zero options: an unknown
		// mandatory option); miniupnpd takes about half a second to
		// answer it. Longer ones are not in the corpus: miniupnpd reads
		// them truncated to its 1100-octet buffer, as this one.
		p("map length 1100", nil, func() udpStep {
			st := m(func(r *pcpMapReq) { r.raw = func(b []byte) []byte { return append(b, make([]byte, 1100-len(b))...) } })
			st.wait = 3 * time.Second
			return st
		}()),
		p("map truncated to 40", nil, m(func(r *pcpMapReq) { r.raw = func(b []byte) []byte { return b[:40] } })),
		p("map header only", nil, m(func(r *pcpMapReq) { r.raw = func(b []byte) []byte { return b[:24] } })),
		p("map 20 octets", nil, m(func(r *pcpMapReq) { r.raw = func(b []byte) []byte { return b[:20] } })),
		p("map reserved octet set", nil, m(func(r *pcpMapReq) { r.raw = func(b []byte) []byte { b[2] = 0xff; return b } })),
		p("unknown opcode 5", nil, pcpOther(self, 5, 3600, nil, nil)),
		p("peer without a mapping", nil, pcpOther(self, pcp.OpPeer, 3600, &pcp.Peer{
			Map:        pcp.Map{Nonce: nonceBase, Protocol: 6, InternalPort: 8080, ExternalAddr: netip.IPv6Unspecified()},
			RemotePort: 443, RemoteAddr: netip.MustParseAddr("203.0.113.50")}, nil, 8080)),
		p("peer with a mapping", []step{mineMap}, pcpOther(self, pcp.OpPeer, 3600, &pcp.Peer{
			Map:        pcp.Map{Nonce: nonceBase, Protocol: 6, InternalPort: 8080, ExternalAddr: netip.IPv6Unspecified()},
			RemotePort: 443, RemoteAddr: netip.MustParseAddr("203.0.113.50")}, nil, 8080, 28080)),
		// Deletes.
		p("delete", []step{mineMap}, m(func(r *pcpMapReq) { r.life = 0 })),
		p("delete, suggested port 0", []step{mineMap}, m(func(r *pcpMapReq) { r.life, r.sugg = 0, 0 })),
		p("delete other nonce", []step{mineMap}, m(func(r *pcpMapReq) { r.life, r.nonce = 0, 1 })),
		p("delete nothing there", nil, m(func(r *pcpMapReq) { r.life = 0 })),
		p("delete internal port 0 (all)", []step{mineMap}, m(func(r *pcpMapReq) { r.life, r.iport, r.sugg = 0, 0, 0 })),
		p("delete protocol 0 (all)", []step{mineMap}, m(func(r *pcpMapReq) { r.life, r.proto, r.iport, r.sugg = 0, 0, 0, 0 })),
		p("delete of a NAT-PMP mapping", []step{minePMP}, m(func(r *pcpMapReq) { r.life = 0 })),
		p("delete of own UPnP mapping", []step{mine}, m(func(r *pcpMapReq) { r.life = 0 })),
		p("delete the other host's internal port", []step{theirsMap}, m(func(r *pcpMapReq) { r.life, r.iport, r.sugg = 0, 8090, 28090 })),
	)
	for _, life := range []uint32{1, 119, 120, 121, 86400, 86401, 1<<32 - 1} {
		add(p(fmt.Sprintf("map lifetime %d", life), nil, m(func(r *pcpMapReq) { r.life = life })))
	}
	return out
}

func withCleanup(c tcase, st ...step) tcase {
	c.cleanup = st
	return c
}

// corpus is every case: all with secure mode on, and those about the
// other host again with secure mode off (id suffix "(secure_mode=no)").
func corpus() []tcase {
	all := slices.Concat(upnpCases(), pinholeCases(), natpmpCases(), pcpCases())
	for _, c := range all {
		if strings.Contains(c.id, "{other}") || strings.Contains(c.id, "other host") {
			c.id += " (secure_mode=no)"
			c.insecure = true
			all = append(all, c)
		}
	}
	return all
}
