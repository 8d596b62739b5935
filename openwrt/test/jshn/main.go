// Command jshn stands in for libubox's jshn in the test harness (Debian
// has no libubox): only what the package's scripts use through jshn.sh,
// "jshn -r JSON", which prints shell commands that rebuild the JSON
// object with jshn.sh's functions, as libubox's jshn.c does:
//
//	json_init;
//	json_add_string 'key' 'value';
//	json_add_int 'key' 42;
//	json_add_boolean 'key' 1;
//	json_add_double 'key' 1.500000;
//	json_add_null 'key';
//	json_add_object 'key';  ...  json_close_object;
//	json_add_array 'key';   ...  json_close_array;   (keys 0, 1, ...)
//
// Keys have every byte but letters and digits replaced by '_'; a ' in a
// string value is written '\”. Input that is not one JSON object: "Failed
// to parse message data" on stderr, exit 1, nothing on stdout.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

func main() {
	if len(os.Args) != 3 || os.Args[1] != "-r" {
		fmt.Fprintln(os.Stderr, "usage: jshn -r <message> (test stand-in: -r only)")
		os.Exit(2)
	}
	var out bytes.Buffer
	if err := parse(&out, os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "Failed to parse message data")
		os.Exit(1)
	}
	os.Stdout.Write(out.Bytes())
}

func parse(w io.Writer, s string) error {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok != json.Delim('{') {
		return errors.New("not an object")
	}
	fmt.Fprint(w, "json_init;\n")
	if err := members(w, dec, false); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the object")
	}
	return nil
}

// members writes the members of the object (or array) whose opening
// delimiter dec has just read, up to and including its closing one.
func members(w io.Writer, dec *json.Decoder, array bool) error {
	for i := 0; ; i++ {
		if !dec.More() {
			_, err := dec.Token() // } or ]
			return err
		}
		key := fmt.Sprint(i)
		if !array {
			tok, err := dec.Token()
			if err != nil {
				return err
			}
			key = tok.(string)
		}
		if err := value(w, dec, safeKey(key)); err != nil {
			return err
		}
	}
}

func value(w io.Writer, dec *json.Decoder, key string) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch v := tok.(type) {
	case json.Delim:
		kind := map[json.Delim]string{'{': "object", '[': "array"}[v]
		fmt.Fprintf(w, "json_add_%s '%s';\n", kind, key)
		if err := members(w, dec, v == '['); err != nil {
			return err
		}
		fmt.Fprintf(w, "json_close_%s;\n", kind)
	case string:
		fmt.Fprintf(w, "json_add_string '%s' '%s';\n", key, strings.ReplaceAll(v, "'", `'\''`))
	case json.Number:
		if n, err := v.Int64(); err == nil {
			fmt.Fprintf(w, "json_add_int '%s' %d;\n", key, n)
		} else if f, err := v.Float64(); err == nil {
			fmt.Fprintf(w, "json_add_double '%s' %f;\n", key, f)
		} else {
			return err
		}
	case bool:
		b := 0
		if v {
			b = 1
		}
		fmt.Fprintf(w, "json_add_boolean '%s' %d;\n", key, b)
	case nil:
		fmt.Fprintf(w, "json_add_null '%s';\n", key)
	}
	return nil
}

func safeKey(k string) string {
	b := []byte(k)
	for i, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			b[i] = '_'
		}
	}
	return string(b)
}
