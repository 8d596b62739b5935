package igdclient

import (
	"encoding/xml"
	"io"
	"strconv"
	"strings"
)

// Limits of SOAP parsing (the HTTP exchange caps the size first).
const (
	maxSOAPDepth    = 8
	maxSOAPElements = 256
	maxSOAPArgs     = 32
	maxSOAPValue    = 4096
)

// Arg is one argument of an action or its response.
type Arg struct{ Name, Value string }

// Error is a UPnP error a device answered: a SOAP fault whose detail is a
// UPnPError (UDA 1.1 §3.2.2). Check for it with errors.As.
type Error struct {
	Code        int
	Description string
}

// Error reads "UPnP error 718 ConflictInMappingEntry": the device's
// description, or the standard name when it sent none.
func (e *Error) Error() string {
	d := e.Description
	if d == "" {
		d = ErrorName(e.Code)
	}
	if d == "" {
		return "UPnP error " + strconv.Itoa(e.Code)
	}
	return "UPnP error " + strconv.Itoa(e.Code) + " " + d
}

// ErrorName is the standard name of a UPnP error code ("" if unknown).
func ErrorName(code int) string {
	switch code {
	case CodeInvalidAction:
		return "Invalid Action"
	case CodeInvalidArgs:
		return "Invalid Args"
	case CodeActionFailed:
		return "Action Failed"
	case CodeArgumentValueInvalid:
		return "Argument Value Invalid"
	case CodeArgumentValueOutOfRange:
		return "Argument Value Out of Range"
	case CodeOptionalActionNotImplemented:
		return "Optional Action Not Implemented"
	case CodeActionNotAuthorized:
		return "Action not authorized"
	case CodeNoSuchEntryInArray:
		return "NoSuchEntryInArray"
	case CodeWildCardNotPermittedInSrcIP:
		return "WildCardNotPermittedInSrcIP"
	case CodeWildCardNotPermittedInExtPort:
		return "WildCardNotPermittedInExtPort"
	case CodeConflictInMappingEntry:
		return "ConflictInMappingEntry"
	case CodeSamePortValuesRequired:
		return "SamePortValuesRequired"
	case CodeOnlyPermanentLeasesSupported:
		return "OnlyPermanentLeasesSupported"
	case CodeRemoteHostOnlySupportsWild:
		return "RemoteHostOnlySupportsWildcard"
	case CodeExternalPortOnlySupportsWild:
		return "ExternalPortOnlySupportsWildcard"
	case CodeNoPortMapsAvailable:
		return "NoPortMapsAvailable"
	case CodeConflictWithOtherMechanisms:
		return "ConflictWithOtherMechanisms"
	case CodeWildCardNotPermittedInIntPort:
		return "WildCardNotPermittedInIntPort"
	}
	return ""
}

// UPnP error codes pcpgw acts on: UDA 1.1 §3.2.2 and WANIPConnection:2
// §2.5 (WANIPConnection:1 and WANPPPConnection:1 share them).
const (
	CodeInvalidAction                 = 401
	CodeInvalidArgs                   = 402
	CodeActionFailed                  = 501
	CodeArgumentValueInvalid          = 600
	CodeArgumentValueOutOfRange       = 601
	CodeOptionalActionNotImplemented  = 602
	CodeActionNotAuthorized           = 606
	CodeNoSuchEntryInArray            = 714
	CodeWildCardNotPermittedInSrcIP   = 715
	CodeWildCardNotPermittedInExtPort = 716
	CodeConflictInMappingEntry        = 718
	CodeSamePortValuesRequired        = 724
	CodeOnlyPermanentLeasesSupported  = 725
	CodeRemoteHostOnlySupportsWild    = 726
	CodeExternalPortOnlySupportsWild  = 727
	CodeNoPortMapsAvailable           = 728
	CodeConflictWithOtherMechanisms   = 729
	CodeWildCardNotPermittedInIntPort = 732
)

const (
	soapEnvelopeStart = `<?xml version="1.0"?>` + "\r\n" +
		`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>`
	soapEnvelopeEnd = "</s:Body></s:Envelope>\r\n"
)

// SOAPAction is the SOAPACTION header value of an action (UDA 1.1
// §3.2.1): `"serviceType#action"`.
func SOAPAction(serviceType, action string) string {
	return `"` + serviceType + "#" + action + `"`
}

// AppendRequest appends the SOAP envelope of an action request (UDA 1.1
// §3.2.1), its arguments in the given order.
func AppendRequest(b []byte, serviceType, action string, args []Arg) []byte {
	return appendAction(b, serviceType, action, args)
}

// AppendActionResponse appends the SOAP envelope of an action's answer
// (UDA 1.1 §3.2.2), as a device sends it.
func AppendActionResponse(b []byte, serviceType, action string, args []Arg) []byte {
	return appendAction(b, serviceType, action+"Response", args)
}

func appendAction(b []byte, serviceType, element string, args []Arg) []byte {
	b = append(b, soapEnvelopeStart...)
	b = append(b, "<u:"...)
	b = append(b, element...)
	b = append(b, ` xmlns:u="`...)
	b = appendXMLText(b, serviceType)
	b = append(b, `">`...)
	for _, a := range args {
		b = append(b, '<')
		b = append(b, a.Name...)
		b = append(b, '>')
		b = appendXMLText(b, a.Value)
		b = append(b, "</"...)
		b = append(b, a.Name...)
		b = append(b, '>')
	}
	b = append(b, "</u:"...)
	b = append(b, element...)
	b = append(b, '>')
	return append(b, soapEnvelopeEnd...)
}

// AppendFault appends a SOAP fault carrying e (UDA 1.1 §3.2.2), as a
// device sends it.
func AppendFault(b []byte, e *Error) []byte {
	b = append(b, soapEnvelopeStart...)
	b = append(b, `<s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>`...)
	b = strconv.AppendInt(b, int64(e.Code), 10)
	b = append(b, "</errorCode><errorDescription>"...)
	b = appendXMLText(b, e.Description)
	b = append(b, "</errorDescription></UPnPError></detail></s:Fault>"...)
	return append(b, soapEnvelopeEnd...)
}

// soapLeaves walks a SOAP envelope and calls leaf for each element
// holding text only at depth (Envelope is 1) under Body, with the local
// names of its ancestors below Body: ["GetExternalIPAddressResponse"] for
// an argument. It returns the local names of Body's children. An element
// at depth under Body that holds elements is malformed, so is an envelope
// without Envelope and Body, or with anything but Header and Body in it.
func soapLeaves(b []byte, depth int, leaf func(path []string, name, value string) error) ([]string, error) {
	x := newXMLReader(b, maxSOAPDepth, maxSOAPElements)
	var path []string // local names of the open elements below Envelope
	var children []string
	var text strings.Builder
	sawBody := false
	open := false // an element at depth under Body is open
	for {
		tok, d, err := x.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			name := t.Name.Local
			inBody := len(path) > 0 && path[0] == "Body"
			switch {
			case d == 1:
				if name != "Envelope" {
					return nil, malformed("SOAP element <%.20s> for Envelope", name)
				}
				continue
			case d == 2 && name == "Body":
				if sawBody {
					return nil, malformed("SOAP envelope with two Bodies")
				}
				sawBody = true
			case d == 2 && name != "Header":
				return nil, malformed("SOAP element <%.20s> in Envelope", name)
			case d == 3 && inBody:
				children = append(children, name)
			case open:
				return nil, malformed("SOAP value <%.20s> holds elements", path[len(path)-1])
			}
			path = append(path, name)
			text.Reset()
			open = d == depth && inBody
		case xml.CharData:
			if open {
				if text.Len()+len(t) > maxSOAPValue {
					return nil, malformed("SOAP value longer than %d bytes", maxSOAPValue)
				}
				text.Write(t)
			}
		case xml.EndElement:
			if d == 1 {
				continue
			}
			if open {
				if err := leaf(path[1:len(path)-1], path[len(path)-1], text.String()); err != nil {
					return nil, err
				}
			}
			open = false
			path = path[:len(path)-1]
		}
	}
	if !sawBody {
		return nil, malformed("SOAP envelope without a Body")
	}
	return children, nil
}

// ParseActionResponse parses the answer to action: Envelope, Body, one
// <actionResponse> whose children are the output arguments (text only,
// each named once, at most maxSOAPArgs of at most maxSOAPValue bytes).
// Values are returned as sent (not trimmed).
func ParseActionResponse(b []byte, action string) ([]Arg, error) {
	var args []Arg
	want := action + "Response"
	children, err := soapLeaves(b, 4, func(path []string, name, value string) error {
		if path[0] != want {
			return nil
		}
		for _, a := range args {
			if a.Name == name {
				return malformed("SOAP argument %.20s given twice", name)
			}
		}
		if len(args) == maxSOAPArgs {
			return malformed("more than %d SOAP arguments", maxSOAPArgs)
		}
		args = append(args, Arg{name, value})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(children) != 1 || children[0] != want {
		return nil, malformed("SOAP body holds %.80q, want one <%s>", children, want)
	}
	return args, nil
}

// ParseFault parses a SOAP fault and returns its UPnPError: errorCode (a
// number from 100 to 999) and errorDescription.
func ParseFault(b []byte) (*Error, error) {
	var e Error
	var code string
	var haveCode bool
	_, err := soapLeaves(b, 6, func(path []string, name, value string) error {
		if path[0] != "Fault" || path[1] != "detail" || path[2] != "UPnPError" {
			return nil
		}
		switch name {
		case "errorCode":
			if haveCode {
				return malformed("UPnPError with two codes")
			}
			code, haveCode = strings.TrimSpace(value), true
		case "errorDescription":
			e.Description = value
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	n, perr := strconv.Atoi(code)
	if !haveCode || perr != nil || n < 100 || n > 999 {
		return nil, malformed("SOAP fault without a UPnP errorCode")
	}
	e.Code = n
	return &e, nil
}

// Value returns the named argument's value and whether it is there.
func Value(args []Arg, name string) (string, bool) {
	for _, a := range args {
		if a.Name == name {
			return a.Value, true
		}
	}
	return "", false
}
