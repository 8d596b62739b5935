package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/pcpgw/pcpgw/config/ucied"
	"github.com/pcpgw/pcpgw/webui"
	"golang.org/x/term"
)

// minPassword is the shortest password pcpgw passwd accepts.
const minPassword = 8

// cmdPasswd sets the subscriber page's password: it reads it twice (from
// the terminal without echo, or two lines of stdin) and writes its hash as
// option password_hash of the pcpgw section, editing the file in place.
func cmdPasswd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pcpgw passwd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("c", "/etc/config/pcpgw", "configuration file (UCI syntax)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintln(stderr, "pcpgw passwd: no arguments expected (the password is read from the terminal or stdin)")
		return 2
	}
	data, err := os.ReadFile(*file)
	if err != nil {
		fmt.Fprintln(stderr, "pcpgw passwd:", err)
		return 1
	}
	doc, err := ucied.Parse(*file, data)
	if err != nil {
		fmt.Fprintln(stderr, "pcpgw passwd:", err)
		return 1
	}
	pw, err := readPassword(stdin, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "pcpgw passwd:", err)
		return 1
	}
	hash, err := webui.HashPassword(pw)
	if err != nil {
		fmt.Fprintln(stderr, "pcpgw passwd:", err)
		return 1
	}
	if err := doc.SetOption("pcpgw", "", "password_hash", hash); err != nil {
		fmt.Fprintln(stderr, "pcpgw passwd:", err)
		return 1
	}
	if err := ucied.WriteFile(*file, doc.Bytes(), 0o600); err != nil {
		fmt.Fprintln(stderr, "pcpgw passwd:", err)
		return 1
	}
	fmt.Fprintf(stdout, "password set in %s (sessions with the old one end)\n", *file)
	return 0
}

// readPassword reads the new password twice.
func readPassword(stdin io.Reader, prompt io.Writer) (string, error) {
	var read func(string) (string, error)
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		read = func(p string) (string, error) {
			fmt.Fprint(prompt, p)
			b, err := term.ReadPassword(int(f.Fd()))
			fmt.Fprintln(prompt)
			return string(b), err
		}
	} else {
		br := bufio.NewReader(io.LimitReader(stdin, 4096))
		read = func(string) (string, error) {
			l, err := br.ReadString('\n')
			if err != nil && (err != io.EOF || l == "") {
				return "", errors.New("two lines expected on stdin: the password and again")
			}
			return strings.TrimRight(l, "\r\n"), nil
		}
	}
	pw, err := read("New password: ")
	if err != nil {
		return "", err
	}
	if len(pw) < minPassword {
		return "", fmt.Errorf("the password needs at least %d characters", minPassword)
	}
	again, err := read("Again: ")
	if err != nil {
		return "", err
	}
	if again != pw {
		return "", errors.New("the two passwords differ: nothing changed")
	}
	return pw, nil
}
