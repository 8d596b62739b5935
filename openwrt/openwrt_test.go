package openwrt_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/pcpgw/pcpgw/internal/lab"
)

// TestScripts runs the shell harness test/run.sh (the procd init script,
// the DHCP hooks and the miniupnpd migration against stubs of procd, uci
// and the network functions), with a freshly built pcpgw checking every
// resulting /etc/config/pcpgw.
func TestScripts(t *testing.T) {
	needTools(t, "sh", "awk", "diff")
	bin := lab.PcpgwBinary(t)
	c := exec.Command("sh", "test/run.sh", bin)
	c.Env = append(os.Environ(), "TMPDIR="+t.TempDir())
	out, err := c.CombinedOutput()
	t.Logf("test/run.sh:\n%s", out)
	if err != nil {
		t.Fatalf("test/run.sh: %v", err)
	}
	if !regexp.MustCompile(`(?m)^\d+ cases, 0 failures$`).Match(out) {
		t.Fatal("test/run.sh did not report its cases")
	}
}

func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: the OpenWrt package tests need it", tool)
		}
	}
}

// ipkFile is one entry of data.tar.gz.
type ipkFile struct {
	Mode int64
	Size int64
}

// TestIPK builds the x86_64 package with build-ipk.sh and unpacks it with
// ar and tar: ar member order and names, control fields, conffiles, maintainer scripts,
// the names and modes of the data files, and a static stripped binary;
// then luci-app-pcpgw's package, which the same run builds.
func TestIPK(t *testing.T) {
	needTools(t, "sh", "ar", "tar", "gzip", "go")
	out := t.TempDir()
	c := exec.Command("sh", "build-ipk.sh", "x86_64", "v9.8.7-test", out)
	c.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=1700000000", "TMPDIR="+t.TempDir())
	if b, err := c.CombinedOutput(); err != nil {
		t.Fatalf("build-ipk.sh: %v\n%s", err, b)
	}
	version := makeVar(t, "PKG_VERSION") + "-r" + makeVar(t, "PKG_RELEASE")
	ipk := filepath.Join(out, "pcpgw_"+version+"_x86_64.ipk")

	members, err := exec.Command("ar", "t", ipk).Output()
	if err != nil {
		t.Fatalf("ar t %s: %v", ipk, err)
	}
	if diff := cmp.Diff("debian-binary\ncontrol.tar.gz\ndata.tar.gz\n", string(members)); diff != "" {
		t.Errorf("ar members (-want +got):\n%s", diff)
	}
	// Member names as dpkg-deb writes them: space-padded, no GNU "/".
	raw := readFile(t, ipk)
	if !bytes.HasPrefix(raw, []byte("!<arch>\ndebian-binary   ")) {
		t.Errorf("ipk does not start with the ar magic and a plain debian-binary member: %q", raw[:min(len(raw), 24)])
	}
	member := func(name string) []byte {
		b, err := exec.Command("ar", "p", ipk, name).Output()
		if err != nil {
			t.Fatalf("ar p %s: %v", name, err)
		}
		return b
	}
	if got := string(member("debian-binary")); got != "2.0\n" {
		t.Errorf("debian-binary = %q, want \"2.0\\n\"", got)
	}

	control := untar(t, member("control.tar.gz"))
	wantControl := map[string]ipkFile{
		"control": {0o644, -1}, "conffiles": {0o644, -1},
		"postinst": {0o755, -1}, "prerm": {0o755, -1}, "postrm": {0o755, -1},
	}
	if diff := cmp.Diff(wantControl, modes(control.files, true)); diff != "" {
		t.Errorf("control.tar.gz entries (-want +got):\n%s", diff)
	}
	data := untar(t, member("data.tar.gz"))
	wantData := map[string]ipkFile{
		"usr/sbin/pcpgw":                                      {0o755, -1},
		"etc/init.d/pcpgw":                                    {0o755, -1},
		"etc/config/pcpgw":                                    {0o600, -1},
		"etc/uci-defaults/90-pcpgw-migrate":                   {0o755, -1},
		"usr/lib/pcpgw/pcpgw.config":                          {0o644, -1},
		"usr/lib/pcpgw/dhcp.sh":                               {0o644, -1},
		"etc/udhcpc.user.d/pcpgw":                             {0o644, -1},
		"etc/odhcp6c.user.d/pcpgw":                            {0o644, -1},
		"usr/share/nftables.d/chain-pre/forward/30-pcpgw.nft": {0o644, -1},
		"usr/libexec/rpcd/pcpgw":                              {0o755, -1},
		"usr/share/rpcd/acl.d/pcpgw.json":                     {0o644, -1},
	}
	if diff := cmp.Diff(wantData, modes(data.files, true)); diff != "" {
		t.Errorf("data.tar.gz files (-want +got):\n%s", diff)
	}
	if len(data.notRoot) > 0 || len(control.notRoot) > 0 {
		t.Errorf("entries not owned by 0:0: %v %v", data.notRoot, control.notRoot)
	}
	// Installed files are the sources, byte for byte.
	for dst, src := range map[string]string{
		"etc/init.d/pcpgw": "pcpgw/files/pcpgw.init",
		"etc/config/pcpgw": "pcpgw/files/pcpgw.config",
		"usr/share/nftables.d/chain-pre/forward/30-pcpgw.nft": "../firewall/fw4-include.nft",
		"usr/libexec/rpcd/pcpgw":                              "pcpgw/files/pcpgw.rpcd",
		"usr/share/rpcd/acl.d/pcpgw.json":                     "pcpgw/files/pcpgw.acl.json",
	} {
		if want := readFile(t, src); !bytes.Equal(data.content[dst], want) {
			t.Errorf("%s in the package is not %s", dst, src)
		}
	}
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		if want := readFile(t, "pcpgw/files/pcpgw."+s); !bytes.Equal(control.content[s], want) {
			t.Errorf("%s is not pcpgw/files/pcpgw.%s", s, s)
		}
	}
	if got := string(control.content["conffiles"]); got != "/etc/config/pcpgw\n" {
		t.Errorf("conffiles = %q", got)
	}

	fields := controlFields(t, string(control.content["control"]))
	var size int64
	for _, f := range data.files {
		size += f.Size
	}
	for k, want := range map[string]string{
		"Package":        "pcpgw",
		"Version":        version,
		"Architecture":   "x86_64",
		"Depends":        "kmod-nft-core, kmod-nft-nat",
		"Section":        "net",
		"License":        makeVar(t, "PKG_LICENSE"),
		"Maintainer":     makeVar(t, "PKG_MAINTAINER"),
		"Installed-Size": strconv.FormatInt(size, 10),
	} {
		if fields[k] != want {
			t.Errorf("control %s = %q, want %q", k, fields[k], want)
		}
	}
	if !strings.Contains(fields["Description"], "PCP") {
		t.Errorf("control Description = %q", fields["Description"])
	}

	// The binary: static (no interpreter, no shared libraries), stripped,
	// and stamped with the version given.
	bin := filepath.Join(t.TempDir(), "pcpgw")
	if err := os.WriteFile(bin, data.content["usr/sbin/pcpgw"], 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 {
		t.Errorf("binary machine %v, want EM_X86_64", f.Machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("binary has an interpreter: not static")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("binary needs %v: not static", libs)
	}
	if f.Section(".symtab") != nil {
		t.Error("binary has a symbol table: not stripped")
	}
	v, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || !strings.Contains(string(v), "v9.8.7-test") {
		t.Errorf("pcpgw version: %v %q, want v9.8.7-test", err, v)
	}
	checkLuCIIPK(t, out)
}

type tarball struct {
	files   map[string]ipkFile
	content map[string][]byte
	notRoot []string
}

func untar(t *testing.T, b []byte) tarball {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	tb := tarball{files: map[string]ipkFile{}, content: map[string][]byte{}}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(h.Name, "./")
		if h.Uid != 0 || h.Gid != 0 {
			tb.notRoot = append(tb.notRoot, name)
		}
		if h.Typeflag != tar.TypeReg {
			if h.Typeflag == tar.TypeDir && h.Mode&0o777 != 0o755 {
				t.Errorf("directory %s has mode %o", name, h.Mode&0o777)
			}
			continue
		}
		c, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		tb.files[name] = ipkFile{h.Mode & 0o7777, h.Size}
		tb.content[name] = c
	}
	return tb
}

// modes drops the sizes (for comparison with a table of modes).
func modes(m map[string]ipkFile, dropSize bool) map[string]ipkFile {
	out := map[string]ipkFile{}
	for k, v := range m {
		if dropSize {
			v.Size = -1
		}
		out[k] = v
	}
	return out
}

// controlFields parses an opkg control file: "Key: value" lines, a leading
// space continuing the previous one.
func controlFields(t *testing.T, s string) map[string]string {
	t.Helper()
	m := map[string]string{}
	last := ""
	for _, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		if strings.HasPrefix(line, " ") && last != "" {
			m[last] += "\n" + line[1:]
			continue
		}
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			t.Fatalf("control: bad line %q", line)
		}
		if _, dup := m[k]; dup {
			t.Errorf("control: %s twice", k)
		}
		m[k], last = v, k
	}
	return m
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// makeVar returns VAR:=value of the feed Makefile.
func makeVar(t *testing.T, name string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `:=(.*)$`).FindSubmatch(readFile(t, "pcpgw/Makefile"))
	if m == nil {
		t.Fatalf("pcpgw/Makefile has no %s", name)
	}
	return string(m[1])
}

// TestFeedMakefile checks the feed Makefile against what build-ipk.sh
// packs: the same files at the same places, the same maintainer scripts
// (the Makefile's with $ doubled), and the golang-package.mk variables.
func TestFeedMakefile(t *testing.T) {
	mk := string(readFile(t, "pcpgw/Makefile"))
	for _, want := range []string{
		"include $(TOPDIR)/rules.mk",
		"include $(INCLUDE_DIR)/package.mk",
		"include ../../lang/golang/golang-package.mk",
		"GO_PKG:=github.com/pcpgw/pcpgw\n",
		"GO_PKG_BUILD_PKG:=github.com/pcpgw/pcpgw/cmd/pcpgw\n",
		"GO_PKG_LDFLAGS_X:=main.version=$(PKG_VERSION)\n",
		"PKG_BUILD_DEPENDS:=golang/host",
		"DEPENDS:=$(GO_ARCH_DEPENDS) +kmod-nft-core +kmod-nft-nat\n",
		"define Package/pcpgw/conffiles\n/etc/config/pcpgw\nendef",
		"$(eval $(call GoBinPackage,pcpgw))",
		"$(eval $(call BuildPackage,pcpgw))",
	} {
		if !strings.Contains(mk, want) {
			t.Errorf("pcpgw/Makefile lacks %q", want)
		}
	}
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		m := regexp.MustCompile(`(?s)define Package/pcpgw/` + s + "\n(.*?)endef\n").FindStringSubmatch(mk)
		if m == nil {
			t.Errorf("pcpgw/Makefile has no Package/pcpgw/%s", s)
			continue
		}
		want := strings.ReplaceAll(string(readFile(t, "pcpgw/files/pcpgw."+s)), "$", "$$")
		if diff := cmp.Diff(want, m[1]); diff != "" {
			t.Errorf("Package/pcpgw/%s is not pcpgw/files/pcpgw.%s (-want +got):\n%s", s, s, diff)
		}
	}

	// Installed files: "$(INSTALL_X) SRC $(1)/DST" in the Makefile and
	// "install -D -m MODE SRC "$D/DST"" in build-ipk.sh.
	modeOf := map[string]string{"INSTALL_BIN": "0755", "INSTALL_CONF": "0600", "INSTALL_DATA": "0644"}
	srcName := strings.NewReplacer("./files/", "", "$(PKG_BUILD_DIR)/", "../", "$(GO_PKG_BUILD_BIN_DIR)/pcpgw", "BINARY")
	var fromMk []string
	for _, m := range regexp.MustCompile(`\$\((INSTALL_BIN|INSTALL_CONF|INSTALL_DATA)\) (\S+) \\?\s*\$\(1\)(/\S+)`).FindAllStringSubmatch(mk, -1) {
		fromMk = append(fromMk, fmt.Sprintf("%s %s %s", modeOf[m[1]], srcName.Replace(m[2]), m[3]))
	}
	sh := string(readFile(t, "build-ipk.sh"))
	shName := strings.NewReplacer(`"$FILES/`, "", `"$TOP/firewall/`, "../firewall/", `"$W/pcpgw"`, "BINARY", `"`, "")
	var fromSh []string
	for _, m := range regexp.MustCompile(`install -D -m (\d+) (\S+) "\$D(/\S+)"`).FindAllStringSubmatch(sh, -1) {
		fromSh = append(fromSh, fmt.Sprintf("%s %s %s", m[1], shName.Replace(m[2]), m[3]))
	}
	sort.Strings(fromMk)
	sort.Strings(fromSh)
	if len(fromMk) < 8 {
		t.Errorf("found only %d installed files in pcpgw/Makefile: %q", len(fromMk), fromMk)
	}
	if diff := cmp.Diff(fromMk, fromSh); diff != "" {
		t.Errorf("files installed by pcpgw/Makefile and build-ipk.sh differ (-Makefile +build-ipk.sh):\n%s", diff)
	}
	// Every file under pcpgw/files is installed or is a maintainer script.
	entries, err := os.ReadDir("pcpgw/files")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		n := e.Name()
		if n == "pcpgw.postinst" || n == "pcpgw.prerm" || n == "pcpgw.postrm" {
			continue
		}
		if !strings.Contains(mk, "./files/"+n+" ") {
			t.Errorf("pcpgw/files/%s is not installed by pcpgw/Makefile", n)
		}
	}
}
