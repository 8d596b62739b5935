#!/bin/sh
# Pack pcpgw as an OpenWrt .ipk without the SDK, with standard tools only
# (go, install, tar, gzip, printf):
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

mkvar() { sed -n "s/^$1:=//p" "$TOP/openwrt/pcpgw/Makefile" | head -n 1; }
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
	"$GO" build -trimpath -ldflags "-s -w -X main.version=$VERSION" -o "$W/pcpgw" ./cmd/pcpgw)

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
printf '2.0\n' >"$W/debian-binary"

tarball() { # DIR OUT
	tar --format=gnu --numeric-owner --owner=0 --group=0 --sort=name \
		${SOURCE_DATE_EPOCH:+--mtime=@$SOURCE_DATE_EPOCH} -C "$1" -cf - . | gzip -n -9 >"$2"
}
tarball "$D" "$W/data.tar.gz"
tarball "$C" "$W/control.tar.gz"

# The ar archive, written as dpkg-deb writes it: "!<arch>", then for each
# member a 60-byte header (name, mtime, uid 0, gid 0, mode 100644, size)
# and its bytes, padded to an even length. GNU ar would end member names
# with "/" (debian-binary/); dpkg-deb and opkg's own tools write none.
armember() { # NAME
	local size
	size=$(stat -c %s "$W/$1")
	printf '%-16s%-12s%-6s%-6s%-8s%-10s`\n' "$1" "${SOURCE_DATE_EPOCH:-$(date +%s)}" 0 0 100644 "$size"
	cat "$W/$1"
	[ $((size % 2)) = 0 ] || printf '\n'
}
IPK="$OUTDIR/pcpgw_${IPK_VERSION}_${ARCH}.ipk"
{
	printf '!<arch>\n'
	armember debian-binary
	armember control.tar.gz
	armember data.tar.gz
} >"$IPK.tmp"
mv -f "$IPK.tmp" "$IPK"
printf '%s\t%d bytes (pcpgw %d bytes, %s)\n' "$IPK" "$(stat -c %s "$IPK")" "$(stat -c %s "$D/usr/sbin/pcpgw")" "$goarch${goarm:+v$goarm}${gomips:+ $gomips}"
