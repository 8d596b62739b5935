package upnpigd

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"slices"
)

// Kinds of service.
type svcKind uint8

const (
	svcWANIPConn svcKind = iota + 1
	svcWANCommon
	svcWANIPv6FC
)

// service is one service of one root device.
type service struct {
	kind    svcKind
	typ     string // urn:schemas-upnp-org:service:WANIPConnection:2
	id      string // urn:upnp-org:serviceId:WANIPConn1
	igd     int    // version of the root device it belongs to
	path    string // /igd2/WANIPConn1: SCPD at path+".xml", control path+"/ctl", events path+"/evt"
	actions map[string]*action
	vars    []stateVar
	scpd    []byte
}

func (sv *service) scpdURL() string    { return sv.path + ".xml" }
func (sv *service) controlURL() string { return sv.path + "/ctl" }
func (sv *service) eventURL() string   { return sv.path + "/evt" }

// rootDevice is one InternetGatewayDevice tree.
type rootDevice struct {
	version  int
	descPath string // /igd1.xml
	// uuids of InternetGatewayDevice, WANDevice, WANConnectionDevice.
	uuidIGD, uuidWAN, uuidConn string
	services                   []*service
	friendly                   string
}

const (
	urnDevice  = "urn:schemas-upnp-org:device:"
	urnService = "urn:schemas-upnp-org:service:"
)

func (d *rootDevice) igdType() string {
	return fmt.Sprintf("%sInternetGatewayDevice:%d", urnDevice, d.version)
}
func (d *rootDevice) wanType() string { return fmt.Sprintf("%sWANDevice:%d", urnDevice, d.version) }
func (d *rootDevice) connType() string {
	return fmt.Sprintf("%sWANConnectionDevice:%d", urnDevice, d.version)
}

func newRootDevice(version int, cfg Config) *rootDevice {
	d := &rootDevice{
		version:  version,
		descPath: fmt.Sprintf("/igd%d.xml", version),
		uuidIGD:  deviceUUID(cfg.UUID, fmt.Sprintf("igd%d", version)),
		uuidWAN:  deviceUUID(cfg.UUID, fmt.Sprintf("igd%d-wandevice", version)),
		uuidConn: deviceUUID(cfg.UUID, fmt.Sprintf("igd%d-wanconnectiondevice", version)),
		friendly: cfg.Friendly,
	}
	prefix := fmt.Sprintf("/igd%d/", version)
	d.services = append(d.services,
		newService(svcWANCommon, version, 1, "WANCommonInterfaceConfig", "WANCommonIFC1", prefix),
		newService(svcWANIPConn, version, version, "WANIPConnection", "WANIPConn1", prefix))
	if version >= 2 {
		d.services = append(d.services, newService(svcWANIPv6FC, version, 1, "WANIPv6FirewallControl", "WANIPv6Firewall1", prefix))
	}
	return d
}

func newService(kind svcKind, igd, version int, name, id, prefix string) *service {
	sv := &service{
		kind: kind,
		typ:  fmt.Sprintf("%s%s:%d", urnService, name, version),
		id:   "urn:upnp-org:serviceId:" + id,
		igd:  igd,
		path: prefix + id,
	}
	var acts []*action
	switch kind {
	case svcWANIPConn:
		acts, sv.vars = wanIPConnActions(igd), wanIPConnVars(igd)
	case svcWANCommon:
		acts, sv.vars = wanCommonActions(), wanCommonVars()
	case svcWANIPv6FC:
		acts, sv.vars = firewallActions(), firewallVars()
	}
	sv.actions = make(map[string]*action, len(acts))
	for _, a := range acts {
		sv.actions[a.name] = a
	}
	sv.scpd = marshalSCPD(acts, sv.vars)
	if kind == svcWANIPConn && igd < 2 {
		// miniupnpd serves the actions WANIPConnection:2 added on any
		// control URL, also when it describes itself as IGD:1: served
		// here too, not described.
		for _, a := range wanIPConnActions(2) {
			if sv.actions[a.name] == nil {
				sv.actions[a.name] = a
			}
		}
	}
	return sv
}

// actionFor returns the action name as served on the control URL of sv:
// sv's own, else one of another service of the same root device (as
// miniupnpd, which serves every action on every control URL: some control
// points send WANCommonInterfaceConfig actions to the WANIPConnection
// URL), with the service that defines it.
func (s *Server) actionFor(sv *service, name string) (*service, *action) {
	if a := sv.actions[name]; a != nil {
		return sv, a
	}
	for _, d := range s.devices {
		if !slices.Contains(d.services, sv) {
			continue
		}
		for _, o := range d.services {
			if a := o.actions[name]; a != nil {
				return o, a
			}
		}
	}
	return nil, nil
}

// findService returns the service of a control or event path.
func (s *Server) findService(path string) (*service, string) {
	for _, d := range s.devices {
		for _, sv := range d.services {
			switch path {
			case sv.controlURL():
				return sv, "ctl"
			case sv.eventURL():
				return sv, "evt"
			case sv.scpdURL():
				return sv, "scpd"
			}
		}
	}
	return nil, ""
}

// description returns the device description of d; base is
// "http://addr:port".
func (d *rootDevice) description(base string) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0"?>` + "\n")
	b.WriteString(`<root xmlns="urn:schemas-upnp-org:device-1-0" configId="1">`)
	b.WriteString(`<specVersion><major>1</major><minor>1</minor></specVersion>`)
	svcs := func(kinds ...svcKind) {
		b.WriteString("<serviceList>")
		for _, sv := range d.services {
			for _, k := range kinds {
				if sv.kind != k {
					continue
				}
				fmt.Fprintf(&b, "<service><serviceType>%s</serviceType><serviceId>%s</serviceId>"+
					"<SCPDURL>%s</SCPDURL><controlURL>%s</controlURL><eventSubURL>%s</eventSubURL></service>",
					sv.typ, sv.id, sv.scpdURL(), sv.controlURL(), sv.eventURL())
			}
		}
		b.WriteString("</serviceList>")
	}
	head := func(typ, name, uuid string) {
		fmt.Fprintf(&b, "<device><deviceType>%s</deviceType><friendlyName>", typ)
		xml.EscapeText(&b, []byte(name))
		b.WriteString("</friendlyName><manufacturer>pcpgw</manufacturer>" +
			"<manufacturerURL>https://github.com/pcpgw/pcpgw</manufacturerURL>" +
			"<modelDescription>pcpgw: UPnP IGD carried through PCP (RFC 6970)</modelDescription>" +
			"<modelName>pcpgw</modelName><modelNumber>1</modelNumber>" +
			"<modelURL>https://github.com/pcpgw/pcpgw</modelURL>")
		fmt.Fprintf(&b, "<UDN>uuid:%s</UDN>", uuid)
	}
	head(d.igdType(), d.friendly, d.uuidIGD)
	b.WriteString("<deviceList>")
	head(d.wanType(), "WANDevice", d.uuidWAN)
	svcs(svcWANCommon)
	b.WriteString("<deviceList>")
	head(d.connType(), "WANConnectionDevice", d.uuidConn)
	svcs(svcWANIPConn, svcWANIPv6FC)
	b.WriteString("</device></deviceList></device></deviceList>")
	b.WriteString("<presentationURL>")
	xml.EscapeText(&b, []byte(base+"/"))
	b.WriteString("</presentationURL></device></root>\n")
	return b.Bytes()
}

// An SCPD argument.
type arg struct {
	name, sv string
}

// action is one SOAP action: its SCPD arguments and its implementation,
// which returns the out arguments' values in order.
type action struct {
	name string
	in   []arg
	out  []arg
	fn   func(c *call) ([]string, error)
}

type stateVar struct {
	name    string
	typ     string
	events  bool
	allowed []string
	min     string
	max     string
}

func marshalSCPD(acts []*action, vars []stateVar) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0"?>` + "\n")
	b.WriteString(`<scpd xmlns="urn:schemas-upnp-org:service-1-0"><specVersion><major>1</major><minor>0</minor></specVersion><actionList>`)
	for _, a := range acts {
		fmt.Fprintf(&b, "<action><name>%s</name>", a.name)
		if len(a.in)+len(a.out) > 0 {
			b.WriteString("<argumentList>")
			for _, x := range a.in {
				fmt.Fprintf(&b, "<argument><name>%s</name><direction>in</direction><relatedStateVariable>%s</relatedStateVariable></argument>", x.name, x.sv)
			}
			for _, x := range a.out {
				fmt.Fprintf(&b, "<argument><name>%s</name><direction>out</direction><relatedStateVariable>%s</relatedStateVariable></argument>", x.name, x.sv)
			}
			b.WriteString("</argumentList>")
		}
		b.WriteString("</action>")
	}
	b.WriteString("</actionList><serviceStateTable>")
	for _, v := range vars {
		ev := "no"
		if v.events {
			ev = "yes"
		}
		fmt.Fprintf(&b, `<stateVariable sendEvents="%s"><name>%s</name><dataType>%s</dataType>`, ev, v.name, v.typ)
		if len(v.allowed) > 0 {
			b.WriteString("<allowedValueList>")
			for _, a := range v.allowed {
				fmt.Fprintf(&b, "<allowedValue>%s</allowedValue>", a)
			}
			b.WriteString("</allowedValueList>")
		}
		if v.min != "" {
			fmt.Fprintf(&b, "<allowedValueRange><minimum>%s</minimum><maximum>%s</maximum></allowedValueRange>", v.min, v.max)
		}
		b.WriteString("</stateVariable>")
	}
	b.WriteString("</serviceStateTable></scpd>\n")
	return b.Bytes()
}

// Evented variable names.
const (
	varExternalIPAddress          = "ExternalIPAddress"
	varPortMappingNumberOfEntries = "PortMappingNumberOfEntries"
	varConnectionStatus           = "ConnectionStatus"
	varSystemUpdateID             = "SystemUpdateID"
	varPossibleConnectionTypes    = "PossibleConnectionTypes"
	varPhysicalLinkStatus         = "PhysicalLinkStatus"
	varFirewallEnabled            = "FirewallEnabled"
	varInboundPinholeAllowed      = "InboundPinholeAllowed"
)

func wanIPConnVars(igd int) []stateVar {
	vs := []stateVar{
		{name: "ConnectionType", typ: "string"},
		{name: varPossibleConnectionTypes, typ: "string", events: true, allowed: []string{"Unconfigured", "IP_Routed", "IP_Bridged"}},
		{name: varConnectionStatus, typ: "string", events: true, allowed: []string{"Unconfigured", "Connecting", "Connected", "PendingDisconnect", "Disconnecting", "Disconnected"}},
		{name: "Uptime", typ: "ui4"},
		{name: "LastConnectionError", typ: "string", allowed: []string{"ERROR_NONE", "ERROR_COMMAND_ABORTED", "ERROR_NOT_ENABLED_FOR_INTERNET", "ERROR_USER_DISCONNECT", "ERROR_ISP_DISCONNECT", "ERROR_IDLE_DISCONNECT", "ERROR_FORCED_DISCONNECT", "ERROR_NO_CARRIER", "ERROR_IP_CONFIGURATION", "ERROR_UNKNOWN"}},
		{name: "RSIPAvailable", typ: "boolean"},
		{name: "NATEnabled", typ: "boolean"},
		{name: varExternalIPAddress, typ: "string", events: true},
		{name: varPortMappingNumberOfEntries, typ: "ui2", events: true},
		{name: "PortMappingEnabled", typ: "boolean"},
		{name: "PortMappingLeaseDuration", typ: "ui4"},
		{name: "RemoteHost", typ: "string"},
		{name: "ExternalPort", typ: "ui2"},
		{name: "InternalPort", typ: "ui2", min: "1", max: "65535"},
		{name: "PortMappingProtocol", typ: "string", allowed: []string{"TCP", "UDP"}},
		{name: "InternalClient", typ: "string"},
		{name: "PortMappingDescription", typ: "string"},
	}
	if igd >= 2 {
		vs[10].min, vs[10].max = "0", "604800"
		vs = append(vs,
			stateVar{name: varSystemUpdateID, typ: "ui4", events: true},
			stateVar{name: "A_ARG_TYPE_Manage", typ: "boolean"},
			stateVar{name: "A_ARG_TYPE_PortListing", typ: "string"})
	}
	return vs
}

var (
	argsMappingKey = []arg{{"NewRemoteHost", "RemoteHost"}, {"NewExternalPort", "ExternalPort"}, {"NewProtocol", "PortMappingProtocol"}}
	argsMappingVal = []arg{{"NewInternalPort", "InternalPort"}, {"NewInternalClient", "InternalClient"}, {"NewEnabled", "PortMappingEnabled"}, {"NewPortMappingDescription", "PortMappingDescription"}, {"NewLeaseDuration", "PortMappingLeaseDuration"}}
)

func cat(a ...[]arg) []arg {
	var out []arg
	for _, x := range a {
		out = append(out, x...)
	}
	return out
}

func wanIPConnActions(igd int) []*action {
	acts := []*action{
		{name: "SetConnectionType", in: []arg{{"NewConnectionType", "ConnectionType"}}, fn: (*call).setConnectionType},
		{name: "GetConnectionTypeInfo", out: []arg{{"NewConnectionType", "ConnectionType"}, {"NewPossibleConnectionTypes", varPossibleConnectionTypes}}, fn: (*call).getConnectionTypeInfo},
		{name: "RequestConnection", fn: (*call).notAuthorized},
		{name: "RequestTermination", fn: (*call).cannot},
		{name: "ForceTermination", fn: (*call).notAuthorized},
		{name: "GetStatusInfo", out: []arg{{"NewConnectionStatus", varConnectionStatus}, {"NewLastConnectionError", "LastConnectionError"}, {"NewUptime", "Uptime"}}, fn: (*call).getStatusInfo},
		{name: "GetNATRSIPStatus", out: []arg{{"NewRSIPAvailable", "RSIPAvailable"}, {"NewNATEnabled", "NATEnabled"}}, fn: (*call).getNATRSIPStatus},
		{name: "GetGenericPortMappingEntry", in: []arg{{"NewPortMappingIndex", varPortMappingNumberOfEntries}}, out: cat(argsMappingKey, argsMappingVal), fn: (*call).getGenericPortMappingEntry},
		{name: "GetSpecificPortMappingEntry", in: argsMappingKey, out: argsMappingVal, fn: (*call).getSpecificPortMappingEntry},
		{name: "AddPortMapping", in: cat(argsMappingKey, argsMappingVal), fn: (*call).addPortMapping},
		{name: "DeletePortMapping", in: argsMappingKey, fn: (*call).deletePortMapping},
		{name: "GetExternalIPAddress", out: []arg{{"NewExternalIPAddress", varExternalIPAddress}}, fn: (*call).getExternalIPAddress},
	}
	if igd >= 2 {
		rng := []arg{{"NewStartPort", "ExternalPort"}, {"NewEndPort", "ExternalPort"}, {"NewProtocol", "PortMappingProtocol"}, {"NewManage", "A_ARG_TYPE_Manage"}}
		acts = append(acts,
			&action{name: "DeletePortMappingRange", in: rng, fn: (*call).deletePortMappingRange},
			&action{name: "GetListOfPortMappings", in: cat(rng, []arg{{"NewNumberOfPorts", varPortMappingNumberOfEntries}}), out: []arg{{"NewPortListing", "A_ARG_TYPE_PortListing"}}, fn: (*call).getListOfPortMappings},
			&action{name: "AddAnyPortMapping", in: cat(argsMappingKey, argsMappingVal), out: []arg{{"NewReservedPort", "ExternalPort"}}, fn: (*call).addAnyPortMapping})
	}
	return acts
}

func wanCommonVars() []stateVar {
	return []stateVar{
		{name: "WANAccessType", typ: "string", allowed: []string{"DSL", "POTS", "Cable", "Ethernet"}},
		{name: "Layer1UpstreamMaxBitRate", typ: "ui4"},
		{name: "Layer1DownstreamMaxBitRate", typ: "ui4"},
		{name: varPhysicalLinkStatus, typ: "string", events: true, allowed: []string{"Up", "Down"}},
		{name: "TotalBytesSent", typ: "ui4"},
		{name: "TotalBytesReceived", typ: "ui4"},
		{name: "TotalPacketsSent", typ: "ui4"},
		{name: "TotalPacketsReceived", typ: "ui4"},
	}
}

func wanCommonActions() []*action {
	return []*action{
		{name: "GetCommonLinkProperties", out: []arg{{"NewWANAccessType", "WANAccessType"}, {"NewLayer1UpstreamMaxBitRate", "Layer1UpstreamMaxBitRate"}, {"NewLayer1DownstreamMaxBitRate", "Layer1DownstreamMaxBitRate"}, {"NewPhysicalLinkStatus", varPhysicalLinkStatus}}, fn: (*call).getCommonLinkProperties},
		{name: "GetTotalBytesSent", out: []arg{{"NewTotalBytesSent", "TotalBytesSent"}}, fn: counter("tx_bytes")},
		{name: "GetTotalBytesReceived", out: []arg{{"NewTotalBytesReceived", "TotalBytesReceived"}}, fn: counter("rx_bytes")},
		{name: "GetTotalPacketsSent", out: []arg{{"NewTotalPacketsSent", "TotalPacketsSent"}}, fn: counter("tx_packets")},
		{name: "GetTotalPacketsReceived", out: []arg{{"NewTotalPacketsReceived", "TotalPacketsReceived"}}, fn: counter("rx_packets")},
	}
}

func firewallVars() []stateVar {
	return []stateVar{
		{name: varFirewallEnabled, typ: "boolean", events: true},
		{name: varInboundPinholeAllowed, typ: "boolean", events: true},
		{name: "A_ARG_TYPE_IPv6Address", typ: "string"},
		{name: "A_ARG_TYPE_Port", typ: "ui2", min: "0", max: "65535"},
		{name: "A_ARG_TYPE_Protocol", typ: "ui2", min: "0", max: "65535"},
		{name: "A_ARG_TYPE_LeaseTime", typ: "ui4", min: "1", max: "86400"},
		{name: "A_ARG_TYPE_UniqueID", typ: "ui2"},
		{name: "A_ARG_TYPE_OutboundPinholeTimeout", typ: "ui4"},
		{name: "A_ARG_TYPE_PinholePackets", typ: "ui4"},
		{name: "A_ARG_TYPE_Boolean", typ: "boolean"},
	}
}

func firewallActions() []*action {
	tuple := []arg{{"RemoteHost", "A_ARG_TYPE_IPv6Address"}, {"RemotePort", "A_ARG_TYPE_Port"}, {"InternalClient", "A_ARG_TYPE_IPv6Address"}, {"InternalPort", "A_ARG_TYPE_Port"}, {"Protocol", "A_ARG_TYPE_Protocol"}}
	id := []arg{{"UniqueID", "A_ARG_TYPE_UniqueID"}}
	return []*action{
		{name: "GetFirewallStatus", out: []arg{{"FirewallEnabled", varFirewallEnabled}, {"InboundPinholeAllowed", varInboundPinholeAllowed}}, fn: (*call).getFirewallStatus},
		{name: "GetOutboundPinholeTimeout", in: tuple, out: []arg{{"OutboundPinholeTimeout", "A_ARG_TYPE_OutboundPinholeTimeout"}}, fn: (*call).getOutboundPinholeTimeout},
		{name: "AddPinhole", in: cat(tuple, []arg{{"LeaseTime", "A_ARG_TYPE_LeaseTime"}}), out: id, fn: (*call).addPinhole},
		{name: "UpdatePinhole", in: cat(id, []arg{{"NewLeaseTime", "A_ARG_TYPE_LeaseTime"}}), fn: (*call).updatePinhole},
		{name: "DeletePinhole", in: id, fn: (*call).deletePinhole},
		{name: "GetPinholePackets", in: id, out: []arg{{"PinholePackets", "A_ARG_TYPE_PinholePackets"}}, fn: (*call).getPinholePackets},
		{name: "CheckPinholeWorking", in: id, out: []arg{{"IsWorking", "A_ARG_TYPE_Boolean"}}, fn: (*call).checkPinholeWorking},
	}
}
