package igdclient

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// xmlReader reads a description or SOAP body as a stream of tokens with
// limits: no DTD (so no entity can be declared, let alone expanded: the
// decoder knows the five predefined entities and character references
// only, and Strict refuses any other), no processing instruction but the
// XML declaration, UTF-8 only, elements nested at most maxDepth deep and
// at most maxElems of them, at most maxAttrs attributes per element.
type xmlReader struct {
	d        *xml.Decoder
	depth    int
	elems    int
	maxDepth int
	maxElems int
}

const maxAttrs = 16

func newXMLReader(b []byte, maxDepth, maxElems int) *xmlReader {
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	d.CharsetReader = func(charset string, in io.Reader) (io.Reader, error) {
		if strings.EqualFold(charset, "utf-8") || strings.EqualFold(charset, "us-ascii") {
			return in, nil
		}
		return nil, fmt.Errorf("charset %q", charset)
	}
	return &xmlReader{d: d, maxDepth: maxDepth, maxElems: maxElems}
}

// next returns the next token (io.EOF at the end), with the depth of
// elements open after a StartElement and before an EndElement's close
// (so a StartElement and its EndElement report the same depth).
func (x *xmlReader) next() (xml.Token, int, error) {
	tok, err := x.d.Token()
	if err != nil {
		if err == io.EOF {
			return nil, 0, io.EOF
		}
		return nil, 0, malformed("XML: %v", err)
	}
	switch t := tok.(type) {
	case xml.StartElement:
		x.depth++
		x.elems++
		if x.depth > x.maxDepth {
			return nil, 0, malformed("XML nested deeper than %d", x.maxDepth)
		}
		if x.elems > x.maxElems {
			return nil, 0, malformed("XML with more than %d elements", x.maxElems)
		}
		if len(t.Attr) > maxAttrs {
			return nil, 0, malformed("XML element with %d attributes", len(t.Attr))
		}
		return tok, x.depth, nil
	case xml.EndElement:
		d := x.depth
		x.depth--
		return tok, d, nil
	case xml.Directive:
		return nil, 0, malformed("XML with a DTD or declaration <!%.20s", t)
	case xml.ProcInst:
		if t.Target != "xml" {
			return nil, 0, malformed("XML processing instruction %q", t.Target)
		}
	}
	return tok, x.depth, nil
}

// appendXMLText appends s escaped as XML character data (and attribute
// values): & < > " ' and CR, which a parser would otherwise turn into LF.
// What XML 1.0 cannot carry (control characters other than tab and line
// ends, U+FFFE, U+FFFF, invalid UTF-8) becomes U+FFFD.
func appendXMLText(b []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		switch c {
		case '&':
			b = append(b, "&amp;"...)
		case '<':
			b = append(b, "&lt;"...)
		case '>':
			b = append(b, "&gt;"...)
		case '"':
			b = append(b, "&#34;"...)
		case '\'':
			b = append(b, "&#39;"...)
		case '\r':
			b = append(b, "&#xD;"...)
		case '\t', '\n':
			b = append(b, c)
		default:
			if c < ' ' {
				b = append(b, "\uFFFD"...)
			} else if c < utf8.RuneSelf {
				b = append(b, c)
			} else {
				r, n := utf8.DecodeRuneInString(s[i:])
				if r == utf8.RuneError && n == 1 || r == 0xFFFE || r == 0xFFFF {
					b = append(b, "\uFFFD"...)
				} else {
					b = append(b, s[i:i+n]...)
				}
				i += n
				continue
			}
		}
		i++
	}
	return b
}
