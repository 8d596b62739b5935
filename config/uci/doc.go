// Package uci reads and writes files in the syntax of OpenWrt's Unified
// Configuration Interface (/etc/config/*), as libuci's parser accepts them.
//
//	package 'pcpgw'              # optional; ignored apart from its name
//	config TYPE ['NAME']         # a section; anonymous without NAME
//		option KEY 'VALUE'   # one value; an empty value removes KEY
//		list KEY 'VALUE'     # one item of a list, in order
//
// Keywords may be abbreviated to their first letter (p, c, o, l). An
// argument is made of bare text, '...' and "..." pieces written next to
// each other. Single quotes take everything up to the next single quote,
// newlines included. Outside single quotes a backslash takes the next byte
// as it is (no \n decoding, as libuci), and a backslash at the end of a line
// joins the next line. '#' outside quotes starts a comment up to the end of
// the line, and ';' outside quotes ends a statement, so that another may
// follow on the same line. Section and option names are ASCII letters,
// digits and '_'; a section type is printable ASCII without spaces.
//
// As in libuci, a named section that appears again is continued (with the
// same type; another type is an error), an `option` replaces an earlier
// value of the same name, and a `list` after an `option` of the same name
// turns it into a list. Comments and layout are not kept: [File.Format]
// writes the canonical form `uci export` writes.
package uci
