package upnpigd

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Limits of SOAP parsing.
const (
	maxSOAPAction = 256 // bytes of the SOAPACTION header
	maxXMLDepth   = 8   // element nesting of a control request
	maxArgs       = 32  // arguments of one action
	maxArgLen     = 4096
	maxXMLAttrs   = 16 // attributes of one element
)

var (
	errBadSOAPAction = errors.New("upnpigd: malformed SOAPACTION")
	errBadEnvelope   = errors.New("upnpigd: malformed SOAP envelope")
	// errBadArgs: the envelope parses but an argument cannot be taken as
	// it is (too long): 402 Invalid Args.
	errBadArgs = errors.New("upnpigd: invalid SOAP arguments")
)

// parseSOAPAction splits a SOAPACTION header value,
// `"urn:schemas-upnp-org:service:WANIPConnection:1#AddPortMapping"`, with or
// without quotes, into the service type and the action name.
func parseSOAPAction(h string) (ns, name string, err error) {
	h = strings.TrimSpace(h)
	if len(h) > maxSOAPAction {
		return "", "", errBadSOAPAction
	}
	if len(h) >= 2 && h[0] == '"' && h[len(h)-1] == '"' {
		h = h[1 : len(h)-1]
	}
	i := strings.LastIndexByte(h, '#')
	if i <= 0 || i == len(h)-1 {
		return "", "", errBadSOAPAction
	}
	ns, name = h[:i], h[i+1:]
	if !isName(name) || strings.ContainsAny(ns, " \t\"<>&") {
		return "", "", errBadSOAPAction
	}
	return ns, name, nil
}

func isName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// soapRequest is a parsed control request.
type soapRequest struct {
	ns, action string
	args       map[string]string
	// argErr (wrapping errBadArgs) is set when an argument was longer
	// than maxArgLen: the action must not run on a truncated value, and
	// the answer is 402 rather than 401.
	argErr error
}

// parseEnvelope parses a SOAP 1.1 control request: Envelope, Body, one
// action element whose children are the arguments (text only). As
// miniupnpd, whose parser most control points were tested against, it
// also takes the action element without Envelope and Body around it,
// takes the last of an argument given twice, and skips arguments whose
// name is no UPnP name (isName) and those beyond maxArgs. DTDs,
// processing instructions other than the XML declaration, charsets other
// than UTF-8, US-ASCII and ISO-8859-1, and deep or wide documents
// (elements nested deeper than maxXMLDepth, with more than maxXMLAttrs
// attributes) are refused. An argument longer than maxArgLen is reported
// in r.argErr.
func parseEnvelope(body []byte) (soapRequest, error) {
	var r soapRequest
	d := xml.NewDecoder(bytes.NewReader(body))
	d.Strict = true
	d.CharsetReader = func(charset string, in io.Reader) (io.Reader, error) {
		switch strings.ToLower(charset) {
		case "utf-8", "utf8", "us-ascii", "ascii":
			return in, nil
		case "iso-8859-1", "latin1", "iso_8859-1":
			return latin1Reader{in}, nil
		}
		return nil, fmt.Errorf("charset %q", charset)
	}
	depth := 0
	// actionDepth is the depth of the action element: 3 in an
	// Envelope, 1 when the action is the root.
	actionDepth := 3
	var argName string
	var argText strings.Builder
	inArg, skipArg, inBody, done := false, false, false, false
	badArg := func(format string, a ...any) {
		if r.argErr == nil {
			r.argErr = fmt.Errorf("%w: "+format, append([]any{errBadArgs}, a...)...)
		}
	}
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return r, fmt.Errorf("%w: %v", errBadEnvelope, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth > maxXMLDepth {
				return r, fmt.Errorf("%w: too deep", errBadEnvelope)
			}
			if len(t.Attr) > maxXMLAttrs {
				return r, fmt.Errorf("%w: too many attributes", errBadEnvelope)
			}
			if depth == 1 && t.Name.Local != "Envelope" {
				// A bare action element (miniupnpd reads any element).
				actionDepth, inBody = 1, true
			}
			switch depth {
			case 1:
				if actionDepth == 3 {
					continue
				}
			case 2:
				if actionDepth == 3 {
					// Header elements are skipped; Body holds the action.
					inBody = t.Name.Local == "Body"
					continue
				}
			}
			switch depth {
			case actionDepth:
				if !inBody {
					continue
				}
				if done {
					return r, fmt.Errorf("%w: two actions", errBadEnvelope)
				}
				if r.action != "" || !isName(t.Name.Local) {
					return r, fmt.Errorf("%w: action name", errBadEnvelope)
				}
				r.ns, r.action = t.Name.Space, t.Name.Local
				r.args = make(map[string]string)
			case actionDepth + 1:
				if !inBody || r.action == "" {
					continue
				}
				argName, inArg = t.Name.Local, true
				argText.Reset()
				_, seen := r.args[argName]
				skipArg = !isName(argName) || (!seen && len(r.args) >= maxArgs)
			default:
				if depth > actionDepth && inBody && r.action != "" && !done {
					return r, fmt.Errorf("%w: nested argument", errBadEnvelope)
				}
			}
		case xml.EndElement:
			if depth == actionDepth+1 && inArg {
				if !skipArg {
					r.args[argName] = argText.String() // the last one wins
				}
				inArg = false
			}
			if depth == actionDepth && inBody && r.action != "" {
				done = true
			}
			if depth == 2 && actionDepth == 3 {
				inBody = false
			}
			depth--
		case xml.CharData:
			if inArg && !skipArg {
				if argText.Len()+len(t) > maxArgLen {
					badArg("%s longer than %d bytes", argName, maxArgLen)
					skipArg = true // the rest of the text is not kept
					continue
				}
				argText.Write(t)
			}
		case xml.Directive:
			return r, fmt.Errorf("%w: directive", errBadEnvelope)
		case xml.ProcInst:
			if t.Target != "xml" {
				return r, fmt.Errorf("%w: processing instruction", errBadEnvelope)
			}
		}
	}
	if r.action == "" || !done {
		return r, fmt.Errorf("%w: no action", errBadEnvelope)
	}
	return r, nil
}

// latin1Reader decodes ISO-8859-1 to UTF-8.
type latin1Reader struct{ r io.Reader }

func (l latin1Reader) Read(p []byte) (int, error) {
	// Each input octet takes at most two octets of output.
	buf := make([]byte, max(len(p)/2, 1))
	n, err := l.r.Read(buf)
	out := p[:0]
	for _, c := range buf[:n] {
		out = utf8.AppendRune(out, rune(c))
	}
	return len(out), err
}

const (
	soapHead = `<?xml version="1.0"?>` + "\n" + `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>`
	soapTail = "</s:Body></s:Envelope>\n"
)

// appendResponse appends the SOAP response of action name in namespace ns.
func appendResponse(b []byte, ns, name string, out []arg, vals []string) []byte {
	w := bytes.NewBuffer(b)
	w.WriteString(soapHead)
	fmt.Fprintf(w, `<u:%sResponse xmlns:u="`, name)
	xml.EscapeText(w, []byte(ns))
	w.WriteString(`">`)
	for i, a := range out {
		fmt.Fprintf(w, "<%s>", a.name)
		switch {
		case i >= len(vals):
		case a.sv == "A_ARG_TYPE_PortListing" && !strings.Contains(vals[i], "]]>"):
			// An XML document inside the argument: as CDATA, the way
			// miniupnpd sends it, since miniupnpc's parser does not
			// decode entities (the listing's own text is escaped, so it
			// holds no "]]>").
			w.WriteString("<![CDATA[" + vals[i] + "]]>")
		default:
			xml.EscapeText(w, []byte(vals[i]))
		}
		fmt.Fprintf(w, "</%s>", a.name)
	}
	fmt.Fprintf(w, "</u:%sResponse>", name)
	w.WriteString(soapTail)
	return w.Bytes()
}

// appendFault appends a SOAP fault carrying a UPnPError.
func appendFault(b []byte, code int, desc string) []byte {
	w := bytes.NewBuffer(b)
	w.WriteString(soapHead)
	w.WriteString(`<s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail>` +
		`<UPnPError xmlns="urn:schemas-upnp-org:control-1-0">`)
	fmt.Fprintf(w, "<errorCode>%d</errorCode><errorDescription>", code)
	xml.EscapeText(w, []byte(desc))
	w.WriteString("</errorDescription></UPnPError></detail></s:Fault>")
	w.WriteString(soapTail)
	return w.Bytes()
}

var errBadBoolean = errors.New("upnpigd: not a UPnP boolean")

// parseBoolean reads a UPnP boolean (UDA 1.1 §2.5: "0", "false", "no" or
// "1", "true", "yes").
func parseBoolean(s string) (bool, error) {
	switch s {
	case "0", "false", "no":
		return false, nil
	case "1", "true", "yes":
		return true, nil
	}
	return false, errBadBoolean
}
