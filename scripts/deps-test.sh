#!/bin/sh
# deps-test.sh installs what pcpgw's tests need, idempotently:
#   - the real peers from Debian: nftables, miniupnpc (upnpc), natpmpc, iproute2,
#     netcat-openbsd;
#   - miniupnpd 2.3.9 from Debian 13 (trixie), extracted into a private directory
#     (never installed over the system), to play the provider's PCP server.
#     Debian 12's miniupnpd refuses to run with a reserved external address.
#
# The trixie index is derived from the machine's own apt sources (no host name of
# a package source is written here) and pinned low, so nothing installed is
# upgraded.
#
# Usage: scripts/deps-test.sh [DIR]   (DIR defaults to $PCPGW_PEERS or /var/cache/pcpgw-peers)
# Prints nothing but progress; exits non-zero when something cannot be installed.
set -eu

dir=${1:-${PCPGW_PEERS:-/var/cache/pcpgw-peers}}
stamp="$dir/root/usr/sbin/miniupnpd"

need_apt=""
for cmd in nft upnpc natpmpc ip nc; do
	command -v "$cmd" >/dev/null 2>&1 || need_apt=1
done

if [ "$(id -u)" != 0 ]; then
	if [ -n "$need_apt" ] || [ ! -x "$stamp" ]; then
		echo "deps-test: not root: cannot install the test peers" >&2
		exit 1
	fi
	exit 0
fi

export DEBIAN_FRONTEND=noninteractive
updated=""
apt_update() {
	if [ -z "$updated" ]; then
		apt-get update -qq
		updated=1
	fi
}

if [ -n "$need_apt" ]; then
	echo "deps-test: installing nftables miniupnpc natpmpc iproute2 netcat-openbsd"
	apt_update
	apt-get install -y -qq --no-install-recommends \
		nftables miniupnpc natpmpc iproute2 netcat-openbsd >/dev/null
fi

if [ -x "$stamp" ]; then
	exit 0
fi

# Debian 13's index beside the system's, pinned low.
src=/etc/apt/sources.list.d/debian.sources
trixie=/etc/apt/sources.list.d/pcpgw-trixie.sources
pin=/etc/apt/preferences.d/pcpgw-trixie
if [ ! -f "$trixie" ]; then
	if [ -f "$src" ]; then
		# The first stanza of the system's own deb822 entry, with Suites: trixie.
		awk 'BEGIN{done=0} /^[[:space:]]*$/{if(seen){done=1}} !done{seen=1; print}' "$src" |
			sed -e 's/^Suites:.*/Suites: trixie/' >"$trixie"
	elif [ -f /etc/apt/sources.list ]; then
		uri=$(awk '$1=="deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list)
		[ -n "$uri" ] || { echo "deps-test: no apt source to derive trixie from" >&2; exit 1; }
		printf 'Types: deb\nURIs: %s\nSuites: trixie\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uri" >"$trixie"
	else
		echo "deps-test: no apt sources found" >&2
		exit 1
	fi
	printf 'Package: *\nPin: release n=trixie\nPin-Priority: 100\n' >"$pin"
	updated=""
fi
apt_update

echo "deps-test: fetching miniupnpd 2.3.9 (trixie) into $dir"
mkdir -p "$dir/debs" "$dir/root"
(
	cd "$dir/debs"
	apt-get download -qq miniupnpd-nftables/trixie libc6/trixie libmnl0/trixie libnftnl11/trixie
	for f in *.deb; do dpkg -x "$f" ../root; done
)
R="$dir/root"
"$R/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" --library-path "$R/usr/lib/x86_64-linux-gnu" \
	"$R/usr/sbin/miniupnpd" --version 2>&1 | head -1
