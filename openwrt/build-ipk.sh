#!/bin/sh
# Pack pcpgw, and its LuCI pages, as OpenWrt .ipk files without the SDK,
# with standard tools only (go, install, tar, gzip, printf):
#
#   openwrt/build-ipk.sh ARCH [BINARY_VERSION [OUTDIR]]
#
# ARCH is an OpenWrt package architecture; the Go target is the one
# `make cross` builds for it. The package version (PKG_VERSION-rPKG_RELEASE)
# comes from openwrt/pcpgw/Makefile, the files from openwrt/pcpgw/files and
# firewall/fw4-include.nft, as the feed Makefile installs them. The binary
# is static and stripped (CGO_ENABLED=0, -trimpath, -s -w), stamped with
# BINARY_VERSION (default: git describe).
#
# luci-app-pcpgw_VERSION_all.ipk holds openwrt/luci-app-pcpgw as the luci
# feed's luci.mk installs it: htdocs/ under /www, root/ under /; its
# version comes from openwrt/luci-app-pcpgw/Makefile.
#
# The .ipk is an ar archive of debian-binary ("2.0"), control.tar.gz and
# data.tar.gz, in that order, as opkg (OpenWrt 19.07 and later) reads it;
# OpenWrt's own ipkg-build used to wrap the three in a tar.gz instead,
# which opkg also reads. Owners are root (0:0); with SOURCE_DATE_EPOCH
# set, the archive is reproducible.
set -eu

usage() {
	echo "usage: $0 ARCH [BINARY_VERSION [OUTDIR]]" >&2
	echo "ARCH: x86_64 aarch64_generic arm_cortex-a7_neon-vfpv4 mipsel_24kc mips_24kc" >&2
	exit 2
}
[ $# -ge 1 ] || usage
ARCH="$1"
TOP="$(cd "$(dirname "$0")/.." && pwd)"
VERSION="${2:-$(git -C "$TOP" describe --tags --always --dirty 2>/dev/null || echo dev)}"
OUTDIR="${3:-$TOP/out}"
GO="${GO:-go}"

goarch="" goarm="" gomips=""
case "$ARCH" in
x86_64) goarch=amd64 ;;
aarch64_generic | aarch64_cortex-a53 | aarch64_cortex-a72) goarch=arm64 ;;
arm_cortex-a7_neon-vfpv4 | arm_cortex-a9_vfpv3-d16 | arm_cortex-a15_neon-vfpv4) goarch=arm goarm=7 ;;
mipsel_24kc) goarch=mipsle gomips=softfloat ;;
mips_24kc) goarch=mips gomips=softfloat ;;
*) echo "$0: unknown ARCH '$ARCH'" >&2; usage ;;
esac

mkvar() { sed -n "s/^$1:=//p" "${2:-$TOP/openwrt/pcpgw/Makefile}" | head -n 1; }
PKG_VERSION=$(mkvar PKG_VERSION)
PKG_RELEASE=$(mkvar PKG_RELEASE)
PKG_LICENSE=$(mkvar PKG_LICENSE)
PKG_MAINTAINER=$(mkvar PKG_MAINTAINER)
IPK_VERSION="$PKG_VERSION-r$PKG_RELEASE"
FILES="$TOP/openwrt/pcpgw/files"

mkdir -p "$OUTDIR"
OUTDIR="$(cd "$OUTDIR" && pwd)"
W=$(mktemp -d "${TMPDIR:-/tmp}/pcpgw-ipk.XXXXXX")
trap 'rm -rf "$W"' EXIT INT TERM
D="$W/data" C="$W/control"
mkdir -p "$D" "$C"

(cd "$TOP" && CGO_ENABLED=0 GOOS=linux GOARCH="$goarch" GOARM="$goarm" GOMIPS="$gomips" \
	"$GO" build -trimpath -gcflags "github.com/pcpgw/pcpgw/...=-l" -ldflags "-s -w -X main.version=$VERSION" -o "$W/pcpgw" ./cmd/pcpgw)

install -D -m 0755 "$W/pcpgw" "$D/usr/sbin/pcpgw"
install -D -m 0755 "$FILES/pcpgw.init" "$D/etc/init.d/pcpgw"
install -D -m 0600 "$FILES/pcpgw.config" "$D/etc/config/pcpgw"
install -D -m 0755 "$FILES/pcpgw.uci-defaults" "$D/etc/uci-defaults/90-pcpgw-migrate"
install -D -m 0644 "$FILES/dhcp.sh" "$D/usr/lib/pcpgw/dhcp.sh"
install -D -m 0644 "$FILES/pcpgw.config" "$D/usr/lib/pcpgw/pcpgw.config"
install -D -m 0644 "$FILES/pcpgw.udhcpc" "$D/etc/udhcpc.user.d/pcpgw"
install -D -m 0644 "$FILES/pcpgw.odhcp6c" "$D/etc/odhcp6c.user.d/pcpgw"
install -D -m 0644 "$TOP/firewall/fw4-include.nft" "$D/usr/share/nftables.d/chain-pre/forward/30-pcpgw.nft"
install -D -m 0755 "$FILES/pcpgw.rpcd" "$D/usr/libexec/rpcd/pcpgw"
install -D -m 0644 "$FILES/pcpgw.acl.json" "$D/usr/share/rpcd/acl.d/pcpgw.json"
find "$D" -type d -exec chmod 0755 {} +

size=$(find "$D" -type f -exec stat -c %s {} + | awk '{ s += $1 } END { print s }')
cat >"$C/control" <<CONTROL
Package: pcpgw
Version: $IPK_VERSION
Depends: kmod-nft-core, kmod-nft-nat
Source: feeds/packages/net/pcpgw
SourceName: pcpgw
License: $PKG_LICENSE
Section: net
URL: https://github.com/pcpgw/pcpgw
Maintainer: $PKG_MAINTAINER
Architecture: $ARCH
Installed-Size: $size
Description: UPnP IGD, NAT-PMP and PCP gateway for routers behind a provider's NAT.
 Serves UPnP IGD, NAT-PMP and PCP to LAN hosts and carries their port
 mappings to the provider's carrier-grade NAT with PCP, in its own nftables
 table (fw4 reloads leave it alone). Replaces miniupnpd.
CONTROL
echo "/etc/config/pcpgw" >"$C/conffiles"
install -m 0755 "$FILES/pcpgw.postinst" "$C/postinst"
install -m 0755 "$FILES/pcpgw.prerm" "$C/prerm"
install -m 0755 "$FILES/pcpgw.postrm" "$C/postrm"

tarball() { # DIR OUT
	tar --format=gnu --numeric-owner --owner=0 --group=0 --sort=name \
		${SOURCE_DATE_EPOCH:+--mtime=@$SOURCE_DATE_EPOCH} -C "$1" -cf - . | gzip -n -9 >"$2"
}

# The ar archive, written as dpkg-deb writes it: "!<arch>", then for each
# member a 60-byte header (name, mtime, uid 0, gid 0, mode 100644, size)
# and its bytes, padded to an even length. GNU ar would end member names
# with "/" (debian-binary/); dpkg-deb and opkg's own tools write none.
armember() { # DIR NAME
	local size
	size=$(stat -c %s "$1/$2")
	printf '%-16s%-12s%-6s%-6s%-8s%-10s`\n' "$2" "${SOURCE_DATE_EPOCH:-$(date +%s)}" 0 0 100644 "$size"
	cat "$1/$2"
	[ $((size % 2)) = 0 ] || printf '\n'
}

# ipk DATA CONTROL OUT: the package of DATA (the files) and CONTROL (the
# control file and maintainer scripts), written to OUT.
ipk() {
	local dir
	dir=$(mktemp -d "$W/ipk.XXXXXX")
	printf '2.0\n' >"$dir/debian-binary"
	tarball "$1" "$dir/data.tar.gz"
	tarball "$2" "$dir/control.tar.gz"
	{
		printf '!<arch>\n'
		armember "$dir" debian-binary
		armember "$dir" control.tar.gz
		armember "$dir" data.tar.gz
	} >"$3.tmp"
	mv -f "$3.tmp" "$3"
}

IPK="$OUTDIR/pcpgw_${IPK_VERSION}_${ARCH}.ipk"
ipk "$D" "$C" "$IPK"
printf '%s\t%d bytes (pcpgw %d bytes, %s)\n' "$IPK" "$(stat -c %s "$IPK")" "$(stat -c %s "$D/usr/sbin/pcpgw")" "$goarch${goarm:+v$goarm}${gomips:+ $gomips}"

# luci-app-pcpgw: architecture-independent.
LUCI="$TOP/openwrt/luci-app-pcpgw"
LUCI_VERSION="$(mkvar PKG_VERSION "$LUCI/Makefile")-r$(mkvar PKG_RELEASE "$LUCI/Makefile")"
LD="$W/luci-data" LC="$W/luci-control"
mkdir -p "$LD/www" "$LC"
cp -R "$LUCI/htdocs/." "$LD/www/"
cp -R "$LUCI/root/." "$LD/"
find "$LD" -type d -exec chmod 0755 {} +
find "$LD" -type f -exec chmod 0644 {} +
size=$(find "$LD" -type f -exec stat -c %s {} + | awk '{ s += $1 } END { print s }')
cat >"$LC/control" <<CONTROL
Package: luci-app-pcpgw
Version: $LUCI_VERSION
Depends: luci-base, pcpgw
Source: feeds/luci/applications/luci-app-pcpgw
SourceName: luci-app-pcpgw
License: $(mkvar PKG_LICENSE "$LUCI/Makefile")
Section: luci
URL: https://github.com/pcpgw/pcpgw
Maintainer: $(mkvar PKG_MAINTAINER "$LUCI/Makefile")
Architecture: all
Installed-Size: $size
Description: LuCI pages of pcpgw (Services > Port mapping, and its mappings on Status > Overview).
 The status, upstream and mappings of pcpgw, with a delete button, the
 static forwards and the main options of /etc/config/pcpgw.
CONTROL
# What luci.mk's postinst does: LuCI's menu and module caches are
# rebuilt, and rpcd takes the new ACL.
cat >"$LC/postinst" <<'POSTINST'
#!/bin/sh
[ -n "${IPKG_INSTROOT}" ] || {
	rm -f /tmp/luci-indexcache.*
	rm -rf /tmp/luci-modulecache/
	killall -HUP rpcd 2>/dev/null
	exit 0
}
POSTINST
chmod 0755 "$LC/postinst"
LIPK="$OUTDIR/luci-app-pcpgw_${LUCI_VERSION}_all.ipk"
ipk "$LD" "$LC" "$LIPK"
printf '%s\t%d bytes\n' "$LIPK" "$(stat -c %s "$LIPK")"
