#!/bin/sh
# deps-test.sh installs what pcpgw's tests need, idempotently:
#   - the real peers from Debian: nftables, miniupnpc (upnpc), natpmpc,
#     tayga (a userspace NAT64: the provider's NAT64 with nftables),
#     chromium (the subscriber page's browser test),
#     iproute2, netcat-openbsd, busybox (the rpcd plugin runs under its ash as on OpenWrt);
#   - miniupnpd 2.3.9 from Debian 13 (trixie), extracted into a private
#     directory (never installed over the system), to play the provider's PCP
#     server. Debian 12's miniupnpd refuses to run with a reserved external
#     address.
#
# The trixie source is derived from the machine's own apt sources (no host
# name of a package source is written here): the entry of the system's main
# archive (the one carrying its release codename) with its suite changed to
# trixie. It is used through a private apt configuration under DIR/apt, so the
# system's sources, pins and package lists are left as they are and nothing
# installed is upgraded.
#
# Usage: scripts/deps-test.sh [DIR]   (DIR defaults to $PCPGW_PEERS or /var/cache/pcpgw-peers)
# Prints nothing but progress; exits non-zero when something cannot be installed.
# Works as root on Debian 12 (bookworm); run again, it does nothing.
set -eu

dir=${1:-${PCPGW_PEERS:-/var/cache/pcpgw-peers}}
R="$dir/root"
LIBDIR=usr/lib/x86_64-linux-gnu
want_version="miniupnpd 2.3.9"

# miniupnpd_ok ROOT: the extracted miniupnpd runs with its own loader and
# libraries and is the wanted version.
miniupnpd_ok() {
	[ -x "$1/$LIBDIR/ld-linux-x86-64.so.2" ] && [ -x "$1/usr/sbin/miniupnpd" ] || return 1
	"$1/$LIBDIR/ld-linux-x86-64.so.2" --library-path "$1/$LIBDIR" \
		"$1/usr/sbin/miniupnpd" --version 2>&1 | grep -q "^$want_version"
}

# Debian packages of the peers, and the command each provides.
pkgs="nftables:nft miniupnpc:upnpc natpmpc:natpmpc tayga:tayga iproute2:ip netcat-openbsd:nc.openbsd chromium:chromium busybox:busybox"
missing=""
for pc in $pkgs; do
	pkg=${pc%%:*}
	cmd=${pc#*:}
	st=$(dpkg-query -W -f '${db:Status-Status}' "$pkg" 2>/dev/null || true)
	if [ "$st" != installed ] || ! command -v "$cmd" >/dev/null 2>&1; then
		missing="$missing $pkg"
	fi
done

if [ "$(id -u)" != 0 ]; then
	miniupnpd_ok "$R" || missing="$missing $want_version (in $R)"
	if [ -n "$missing" ]; then
		echo "deps-test: not root: cannot install the test peers; missing:$missing" >&2
		exit 1
	fi
	exit 0
fi

export DEBIAN_FRONTEND=noninteractive

if [ -n "$missing" ]; then
	echo "deps-test: installing$missing"
	apt-get update -qq
	# shellcheck disable=SC2086 # one word per package
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# Earlier versions of this script added trixie to the system's own apt
# sources and pinned it; the private configuration below replaces that.
for f in /etc/apt/sources.list.d/pcpgw-trixie.sources /etc/apt/preferences.d/pcpgw-trixie; do
	if [ -f "$f" ]; then
		echo "deps-test: removing $f (no longer needed)"
		rm -f "$f"
	fi
done

if miniupnpd_ok "$R"; then
	exit 0
fi

# A private apt configuration that sees only Debian 13's main archive.
apt="$dir/apt"
rm -rf "$apt"
mkdir -p "$apt/sources.list.d" "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/preferences.d"
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
[ -n "$codename" ] || { echo "deps-test: no VERSION_CODENAME in /etc/os-release" >&2; exit 1; }

found=""
for src in /etc/apt/sources.list.d/*.sources; do
	[ -f "$src" ] || continue
	# The first deb822 stanza whose Suites holds the codename itself (not
	# CODENAME-security or -updates alone), with Types: deb and Suites: trixie.
	awk -v cn="$codename" '
		function flush() {
			if (!done && para != "" && hit && deb && !off) { printf "%s", para; done = 1 }
			para = ""; hit = 0; deb = 0; off = 0
		}
		/^[[:space:]]*$/ { flush(); next }
		{
			line = $0
			if (tolower($1) == "suites:") {
				for (i = 2; i <= NF; i++) if ($i == cn) hit = 1
				line = "Suites: trixie"
			} else if (tolower($1) == "types:") {
				for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1
				line = "Types: deb"
			} else if (tolower($1) == "enabled:" && tolower($2) == "no") {
				off = 1
			}
			para = para line "\n"
		}
		END { flush() }
	' "$src" >"$apt/sources.list.d/trixie.sources"
	if [ -s "$apt/sources.list.d/trixie.sources" ]; then
		found=$src
		break
	fi
done
if [ -z "$found" ] && [ -f /etc/apt/sources.list ]; then
	# One-line format: deb [options] URI SUITE COMPONENTS...
	awk -v cn="$codename" '
		$1 == "deb" {
			i = 2; opts = ""
			if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) { opts = opts " " $i; i++ } opts = opts " " $i; i++ }
			if ($(i+1) == cn) { print "deb" opts " " $i " trixie main"; exit }
		}
	' /etc/apt/sources.list >"$apt/sources.list"
	[ -s "$apt/sources.list" ] && found=/etc/apt/sources.list
fi
if [ -z "$found" ]; then
	echo "deps-test: no apt source for '$codename' to derive Debian 13 (trixie) from" >&2
	exit 1
fi
[ -f "$apt/sources.list" ] || : >"$apt/sources.list"

# apt_private runs apt-get with the private configuration (system keyrings
# and trusted keys are still used to check the index).
apt_private() {
	apt-get -qq \
		-o Dir::Etc::SourceList="$apt/sources.list" \
		-o Dir::Etc::SourceParts="$apt/sources.list.d" \
		-o Dir::Etc::Preferences=/dev/null \
		-o Dir::Etc::PreferencesParts="$apt/preferences.d" \
		-o Dir::State::Lists="$apt/lists" \
		-o Dir::Cache="$apt/cache" \
		-o APT::Sandbox::User=root \
		"$@"
}

echo "deps-test: fetching $want_version (Debian 13, source derived from $found) into $dir"
apt_private update
rm -rf "$dir/debs" "$dir/root.new"
mkdir -p "$dir/debs" "$dir/root.new"
(
	cd "$dir/debs"
	apt_private download miniupnpd-nftables libc6 libmnl0 libnftnl11
	for f in *.deb; do dpkg -x "$f" ../root.new; done
)
if ! miniupnpd_ok "$dir/root.new"; then
	echo "deps-test: the extracted miniupnpd does not run as $want_version:" >&2
	"$dir/root.new/$LIBDIR/ld-linux-x86-64.so.2" --library-path "$dir/root.new/$LIBDIR" \
		"$dir/root.new/usr/sbin/miniupnpd" --version >&2 || true
	exit 1
fi
rm -rf "$R.old"
[ ! -e "$R" ] || mv "$R" "$R.old"
mv "$dir/root.new" "$R"
rm -rf "$R.old" "$apt/lists" "$apt/cache"
"$R/$LIBDIR/ld-linux-x86-64.so.2" --library-path "$R/$LIBDIR" "$R/usr/sbin/miniupnpd" --version 2>&1 | head -1
