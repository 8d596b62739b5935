package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pcpgw/pcpgw/config"
	"github.com/pcpgw/pcpgw/webui"
)

func TestPasswd(t *testing.T) {
	conf := "# router\nconfig pcpgw 'main'\n\tlist lan 'br-lan'\n\toption wan 'eth1' # uplink\n\n# nas\nconfig forward 'nas'\n\toption ext_port '8443'\n\toption int_addr '192.0.2.100'\n"
	file := filepath.Join(t.TempDir(), "pcpgw")
	if err := os.WriteFile(file, []byte(conf), 0o640); err != nil {
		t.Fatal(err)
	}
	run := func(in string) (int, string) {
		var out, errb bytes.Buffer
		code := cmdPasswd([]string{"-c", file}, strings.NewReader(in), &out, &errb)
		return code, out.String() + errb.String()
	}
	for _, c := range []struct{ in, msg string }{
		{"", "two lines expected"},
		{"short\nshort\n", "at least 8"},
		{"long enough\nlong enuogh\n", "differ"},
		{"long enough\n", "two lines expected"},
	} {
		if code, out := run(c.in); code != 1 || !strings.Contains(out, c.msg) {
			t.Errorf("input %q: %d %s", c.in, code, out)
		}
	}
	b, _ := os.ReadFile(file)
	if string(b) != conf {
		t.Fatal("a refused passwd changed the file")
	}
	set := func(pw string) string {
		t.Helper()
		if code, out := run(pw + "\n" + pw + "\n"); code != 0 {
			t.Fatalf("passwd: %d %s", code, out)
		}
		b, _ := os.ReadFile(file)
		text := string(b)
		i := strings.Index(text, "\toption password_hash '")
		if i < 0 {
			t.Fatalf("no hash written:\n%s", text)
		}
		hash := strings.Split(text[i:], "'")[1]
		if ok, err := webui.CheckPassword(hash, pw); !ok || err != nil {
			t.Fatalf("hash does not check: %v %v", ok, err)
		}
		if got := strings.Replace(text, "\toption password_hash '"+hash+"'\n", "", 1); got != conf {
			t.Errorf("the rest of the file changed:\n%s", text)
		}
		return text
	}
	set("correct horse")
	text := set("battery staple") // replaced, not added twice
	if strings.Count(text, "password_hash") != 1 {
		t.Errorf("two hashes:\n%s", text)
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v", fi.Mode().Perm())
	}
	// config accepts the file, without warning about the option.
	if _, warns, err := config.Load(file, nil); err != nil || len(warns) != 0 {
		t.Errorf("config.Load: %v %v", warns, err)
	}
}
