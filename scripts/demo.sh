#!/bin/bash
# demo.sh shows pcpgw at work, in plain words, in a lab of network
# namespaces on this machine (the topology of ../shared/LAB.md):
#
#   lan (LAN host) -- cpe (home router, pcpgw) -- isp (provider's CGN,
#   miniupnpd 2.3.9 with PCP) -- net (a host on the internet)
#
# A LAN host asks for port mappings with upnpc and natpmpc, pcpgw carries
# them to the provider's NAT with PCP, and the host on the internet reaches
# the LAN service at the provider's public address. Second act: the same
# home behind an ISP box that speaks UPnP IGD instead (double NAT), which
# pcpgw finds by itself on the WAN link. Everything it makes
# (namespaces, processes, a temporary directory) is removed when it ends,
# also on error or Ctrl-C; it touches no nftables table outside its own
# namespaces.
#
# Usage (as root): scripts/demo.sh [PCPGW_BINARY]   (default bin/pcpgw)
# `make demo` installs the peers (scripts/deps-test.sh), builds bin/pcpgw and
# runs this. miniupnpd 2.3.9 is looked for under $PCPGW_PEERS/root (default
# /var/cache/pcpgw-peers/root). Exits 0 when every step worked, 1 otherwise.
# -E: the ERR trap (which names the failed step) also fires inside functions.
set -Eeuo pipefail

# The addresses of LAB.md (documentation and shared ranges only).
LAN_HOST=192.0.2.100
CPE_LAN=192.0.2.1
CPE_WAN=100.64.0.2
CGN=100.64.0.1
CGN_PUBLIC=203.0.113.1
NET_HOST=203.0.113.50

# Ports of the story: the LAN host serves TCP 8080 and UDP 9090; they are
# asked for at the public ports 18080 (UPnP IGD) and 19090 (NAT-PMP).
TCP_PORT=8080
TCP_PUBLIC=18080
UDP_PORT=9090
UDP_PUBLIC=19090

PEERS=${PCPGW_PEERS:-/var/cache/pcpgw-peers}
ROOT=$PEERS/root
LIBDIR=$ROOT/usr/lib/x86_64-linux-gnu
MINIUPNPD=$ROOT/usr/sbin/miniupnpd

start_time=$(date +%s)
step=0
step_name="checking the machine"

# ---------------------------------------------------------------- output

say() { printf '%s\n' "$*"; }
indent() { sed 's/^/      /'; }

# header N TITLE: a numbered step.
header() {
	step=$1
	step_name=$2
	printf '\n== %s. %s\n' "$1" "$2"
}

# fail MSG: says which step failed, shows pcpgw's log, exits 1 (the EXIT
# trap cleans up).
fail() {
	printf '\nFAILED at step %s (%s): %s\n' "$step" "$step_name" "$*" >&2
	if [ -n "${tmp:-}" ] && [ -s "$tmp/pcpgw.log" ]; then
		printf -- '--- pcpgw log (last 40 lines):\n' >&2
		tail -n 40 "$tmp/pcpgw.log" | indent >&2
	fi
	exit 1
}

on_err() {
	fail "command failed (line $1, status $2)"
}
trap 'on_err $LINENO $?' ERR

# ---------------------------------------------------------------- checks

if [ "$(id -u)" != 0 ]; then
	say "demo: needs root (it builds network namespaces and nftables tables); run it with sudo or as root" >&2
	exit 1
fi
PCPGW=${1:-bin/pcpgw}
if [ ! -x "$PCPGW" ]; then
	say "demo: no pcpgw binary at $PCPGW: run 'make demo' (or 'make build' and then $0 bin/pcpgw)" >&2
	exit 1
fi
PCPGW=$(readlink -f "$PCPGW")
missing=""
for cmd in ip nft upnpc natpmpc nc timeout; do
	command -v "$cmd" >/dev/null 2>&1 || missing="$missing $cmd"
done
if [ ! -x "$LIBDIR/ld-linux-x86-64.so.2" ] || [ ! -x "$MINIUPNPD" ]; then
	missing="$missing miniupnpd-2.3.9(in $ROOT)"
fi
if [ -n "$missing" ]; then
	say "demo: missing:$missing; run scripts/deps-test.sh (as root) to install the peers" >&2
	exit 1
fi
nc_help=$(nc -h 2>&1 || true)
if ! grep -q -- '-N' <<<"$nc_help"; then
	say "demo: nc is not OpenBSD netcat (apt-get install netcat-openbsd, or run scripts/deps-test.sh)" >&2
	exit 1
fi

# ---------------------------------------------------------------- cleanup

tmp=""
namespaces=""
pcpgw_pid=""
bg_pids=""
nft_before=$(nft list tables 2>&1 || true)

# alive PID: the process exists and is not a zombie.
alive() {
	local st
	st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
	[ -n "$st" ] && [ "$st" != Z ]
}

# wait_gone PID TENTHS: waits at most TENTHS/10 s for PID to end.
wait_gone() {
	local i
	for ((i = 0; i < $2; i++)); do
		alive "$1" || return 0
		sleep 0.1
	done
	! alive "$1"
}

# stop_pid PID: SIGTERM, repeated (miniupnpd can miss one that lands while
# it is busy), then SIGKILL after 5 s.
stop_pid() {
	local i
	for ((i = 0; i < 25; i++)); do
		alive "$1" || return 0
		kill -TERM "$1" 2>/dev/null || true
		wait_gone "$1" 2 && return 0
	done
	kill -KILL "$1" 2>/dev/null || true
	wait_gone "$1" 20 || true
}

miniupnpd_pid() {
	local f=$1 pid
	[ -s "$f" ] || return 1
	pid=$(tr -dc 0-9 <"$f")
	[ -n "$pid" ] && alive "$pid" && echo "$pid"
}

cleanup() {
	local rc=$? ns pid pids="" left="" note=""
	trap - ERR EXIT INT TERM
	set +e
	printf '\n== Cleaning up\n'
	if [ -n "$pcpgw_pid" ]; then stop_pid "$pcpgw_pid"; fi
	if [ -n "$tmp" ]; then
		for f in "$tmp"/*/miniupnpd.pid; do
			[ -f "$f" ] || continue
			pid=$(miniupnpd_pid "$f") && stop_pid "$pid"
		done
	fi
	for pid in $bg_pids; do stop_pid "$pid"; done
	# Whatever still runs inside the demo's own namespaces was started
	# by the demo (they were created empty): end it before deleting them.
	for ns in $namespaces; do
		for pid in $(ip netns pids "$ns" 2>/dev/null); do
			pids="$pids $pid"
			stop_pid "$pid"
		done
	done
	for ns in $namespaces; do
		ip netns del "$ns" 2>/dev/null || true
	done
	[ -z "$tmp" ] || rm -rf "$tmp"
	# Check that nothing is left.
	for ns in $namespaces; do
		[ ! -e "/run/netns/$ns" ] || left="$left netns:$ns"
	done
	for pid in $pcpgw_pid $bg_pids $pids; do
		alive "$pid" && left="$left pid:$pid"
	done
	[ -z "$tmp" ] || [ ! -e "$tmp" ] || left="$left dir:$tmp"
	# The demo never touches the machine's own namespace; say so if
	# something else changed its tables meanwhile.
	if [ "$(nft list tables 2>&1 || true)" != "$nft_before" ]; then
		note="note: the nftables tables of the machine's own namespace changed while the demo ran (not by the demo)"
	fi
	if [ -n "$left" ]; then
		say "left behind:$left" | indent
		[ "$rc" != 0 ] || rc=1
	elif [ -n "$namespaces" ]; then
		say "stopped every process the demo started; removed the namespaces ${P:-}-{lan,cpe,isp,net}" | indent
		say "(with their links and nftables tables) and $tmp: nothing is left" | indent
	fi
	if [ -n "$note" ]; then
		say "$note" | indent
	else
		say "the nftables tables of the machine's own namespace are as before" | indent
	fi
	if [ "$rc" = 0 ]; then
		printf '\ndone in %ss\n' "$(($(date +%s) - start_time))"
	else
		printf '\ndemo FAILED (exit %s) after %ss\n' "$rc" "$(($(date +%s) - start_time))" >&2
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'printf "\ninterrupted at step %s (%s)\n" "$step" "$step_name" >&2; exit 130' INT TERM

# ---------------------------------------------------------------- the lab

tag=""
for _ in 1 2 3 4 5 6 7 8 9 10; do
	tag=$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')
	# `ip netns add` fails when the name exists: that reserves the tag.
	if ip netns add "pcpgwdemo-$tag-lan" 2>/dev/null; then
		namespaces="pcpgwdemo-$tag-lan"
		break
	fi
	tag=""
done
[ -n "$tag" ] || fail "could not create a namespace pcpgwdemo-XXXX-lan"
P=pcpgwdemo-$tag
tmp=$(mktemp -d /tmp/pcpgwdemo-XXXXXX)
# Commands run as "pcpgw", whatever the binary's name.
mkdir "$tmp/bin"
ln -s "$PCPGW" "$tmp/bin/pcpgw"
PATH=$tmp/bin:$PATH

NS_LAN=$P-lan
NS_CPE=$P-cpe
NS_ISP=$P-isp
NS_NET=$P-net

# on ROLE CMD...: runs CMD in the namespace of ROLE (lan, cpe, isp, net).
on() {
	local role=$1
	shift
	ip netns exec "$P-$role" "$@"
}

# show ROLE CMD...: prints the command as typed on that host (or $disp when
# set), runs it (for at most 30 s) and prints its output indented; returns
# its status and leaves the output in $out.
disp=""
show() {
	local role=$1 rc=0
	shift
	printf '   %s# %s\n' "$role" "${disp:-$*}"
	disp=""
	# stdbuf: stdout line-buffered, so that it interleaves with stderr
	# in the order things happened.
	out=$(on "$role" timeout 30 stdbuf -oL "$@" 2>&1) || rc=$?
	# upnpc's four-line banner says nothing about the story.
	out=$(printf '%s\n' "$out" | grep -v -e '^upnpc : miniupnpc library test client' \
		-e '^ (c) 20[0-9-]* Thomas Bernard' -e '^Go to http://miniupnp' -e '^for more information\.$' || true)
	if [ -n "$out" ]; then
		printf '%s\n' "$out" | indent
	else
		say "(no output)" | indent
	fi
	return "$rc"
}

# ---------------------------------------------------------------- 1

header 1 "Building the lab: four network namespaces linked by veth pairs"
say "   A LAN host, the home router (CPE), the provider's carrier-grade NAT (CGN)"
say "   and a host on the internet, each in its own network namespace ($P-*):"
say "     lan ($LAN_HOST) -- ($CPE_LAN) cpe ($CPE_WAN) -- ($CGN) isp ($CGN_PUBLIC) -- ($NET_HOST) net"
say "   The CPE's WAN address $CPE_WAN is a CGN-shared address: only the CGN holds"
say "   a public address ($CGN_PUBLIC), so a port opened on the CPE alone is useless."
for role in cpe isp net; do
	namespaces="$namespaces $P-$role"
	ip netns add "$P-$role"
done
for role in lan cpe isp net; do
	# IPv6 duplicate address detection off, so addresses are usable at once.
	on "$role" sh -c 'echo 0 >/proc/sys/net/ipv6/conf/all/accept_dad; echo 0 >/proc/sys/net/ipv6/conf/default/accept_dad'
done
for role in cpe isp; do
	on "$role" sh -c 'echo 1 >/proc/sys/net/ipv4/ip_forward; echo 1 >/proc/sys/net/ipv6/conf/all/forwarding'
done
# Each veth is made inside a namespace with its peer sent to the other one,
# so the names of LAB.md (c0, l0, ...) never appear in the machine's own
# namespace.
ip -n "$NS_CPE" link add c0 type veth peer name l0 netns "$NS_LAN"
ip -n "$NS_CPE" link add c1 type veth peer name i0 netns "$NS_ISP"
ip -n "$NS_ISP" link add i1 type veth peer name n0 netns "$NS_NET"
ip -n "$NS_LAN" -batch - <<EOF
link set lo up
addr add $LAN_HOST/24 dev l0
addr add 2001:db8:1::100/64 dev l0 nodad
link set l0 up
route add default via $CPE_LAN
route add ::/0 via 2001:db8:1::1
EOF
ip -n "$NS_CPE" -batch - <<EOF
link set lo up
addr add $CPE_LAN/24 dev c0
addr add 2001:db8:1::1/64 dev c0 nodad
link set c0 up
addr add $CPE_WAN/24 dev c1
addr add 2001:db8:ff::2/64 dev c1 nodad
link set c1 up
route add default via $CGN
route add ::/0 via 2001:db8:ff::1
EOF
ip -n "$NS_ISP" -batch - <<EOF
link set lo up
addr add $CGN/24 dev i0
addr add 2001:db8:ff::1/64 dev i0 nodad
addr add $CGN_PUBLIC/24 dev i1
link set i0 up
link set i1 up
route add 2001:db8:1::/64 via 2001:db8:ff::2
EOF
ip -n "$NS_NET" -batch - <<EOF
link set lo up
addr add $NET_HOST/24 dev n0
link set n0 up
EOF
# Wait (at most 10 s) until every link is up and no IPv6 address is tentative.
ready=""
for ((i = 0; i < 100; i++)); do
	ready=yes
	for role in lan cpe isp net; do
		links=$(ip -n "$P-$role" -o link show)
		if grep -v ' lo:' <<<"$links" | grep -qv 'state UP' ||
			[ -n "$(ip -n "$P-$role" -6 addr show tentative)" ]; then
			ready=""
		fi
	done
	[ -z "$ready" ] || break
	sleep 0.1
done
[ -n "$ready" ] || fail "the links did not come up within 10 s"
show cpe ip -brief addr show
show cpe ip route

# ---------------------------------------------------------------- 2

header 2 "Starting the provider's CGN: miniupnpd 2.3.9 with PCP, in namespace isp"
say "   The CGN masquerades to $CGN_PUBLIC and lets its customers map ports with PCP."
say "   pcp_allow_thirdparty=yes, ext_allow_private_ipv4=yes (every lab address is a"
say "   documentation address); miniupnpd writes its DNATs into table inet cgn."
mkdir -p "$tmp/cgn"
cat >"$tmp/cgn/cgn.nft" <<'EOF'
table inet cgn {
	chain forward {
		type filter hook forward priority 0; policy accept;
		jump forward_pcp
	}
	chain forward_pcp {
	}
	chain prerouting {
		type nat hook prerouting priority -100; policy accept;
		jump prerouting_pcp
	}
	chain postrouting {
		type nat hook postrouting priority 100; policy accept;
		jump postrouting_pcp
		oifname "i1" masquerade
	}
	chain prerouting_pcp {
	}
	chain postrouting_pcp {
	}
}
EOF
on isp nft -f "$tmp/cgn/cgn.nft"
cat >"$tmp/cgn/miniupnpd.conf" <<EOF
ext_ifname=i1
listening_ip=i0
ext_allow_private_ipv4=yes
enable_natpmp=yes
enable_pcp_pmp=yes
enable_upnp=no
secure_mode=no
pcp_allow_thirdparty=yes
min_lifetime=120
max_lifetime=86400
lease_file=$tmp/cgn/leases
uuid=3d3cec3a-8cf0-11e0-98ee-001a6bd2d07c
upnp_table_name=cgn
upnp_nat_table_name=cgn
upnp_forward_chain=forward_pcp
upnp_nat_chain=prerouting_pcp
upnp_nat_postrouting_chain=postrouting_pcp
allow 1024-65535 100.64.0.0/24 1-65535
allow 1024-65535 192.0.2.0/24 1-65535
deny 0-65535 0.0.0.0/0 0-65535
EOF
printf '   isp# miniupnpd -f miniupnpd.conf -P miniupnpd.pid   (forks; logs to syslog)\n'
# Without -d it forks: the parent exits once the daemon runs.
timeout 10 ip netns exec "$NS_ISP" "$LIBDIR/ld-linux-x86-64.so.2" --library-path "$LIBDIR" \
	"$MINIUPNPD" -f "$tmp/cgn/miniupnpd.conf" -P "$tmp/cgn/miniupnpd.pid" 2>&1 | indent
cgn_pid=""
for ((i = 0; i < 50; i++)); do
	cgn_pid=$(miniupnpd_pid "$tmp/cgn/miniupnpd.pid") && break
	sleep 0.1
done
[ -n "$cgn_pid" ] || fail "miniupnpd wrote no pid file of a live process within 5 s"
# It is ready when it answers a NAT-PMP request from the CPE (20 tries of at
# most 1 s).
answer=""
for ((i = 0; i < 20; i++)); do
	answer=$(on cpe timeout 1 natpmpc -g "$CGN" 2>&1) && break
	answer=""
	sleep 0.2
done
[ -n "$answer" ] || fail "miniupnpd (pid $cgn_pid) does not answer NAT-PMP at $CGN:5351 (20 tries)"
say "   miniupnpd runs (pid $cgn_pid); asked from the CPE, it tells its public address:"
printf '   cpe# natpmpc -g %s\n' "$CGN"
printf '%s\n' "$answer" | grep -i 'public ip address' | indent

# ---------------------------------------------------------------- 3

header 3 "The usual way fails here: miniupnpd as the home router's own UPnP IGD and NAT-PMP"
say "   Every OpenWrt router runs miniupnpd. On this CPE its WAN address is $CPE_WAN,"
say "   not a public one, and it can only open ports on the CPE's own NAT: it says so"
say "   and refuses. (Run in the foreground for a few seconds, then stopped.)"
mkdir -p "$tmp/router"
cat >"$tmp/router/miniupnpd.conf" <<EOF
ext_ifname=c1
listening_ip=c0
http_port=5000
enable_natpmp=yes
enable_pcp_pmp=yes
enable_upnp=yes
secure_mode=yes
lease_file=$tmp/router/leases
uuid=3d3cec3a-8cf0-11e0-98ee-001a6bd2d07d
allow 1024-65535 192.0.2.0/24 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
EOF
printf '   cpe# miniupnpd -d -f miniupnpd.conf   (the usual router setup: ext_ifname=c1, listening_ip=c0)\n'
: >"$tmp/router/log"
timeout 30 ip netns exec "$NS_CPE" "$LIBDIR/ld-linux-x86-64.so.2" --library-path "$LIBDIR" \
	"$MINIUPNPD" -d -f "$tmp/router/miniupnpd.conf" -P "$tmp/router/miniupnpd.pid" \
	>"$tmp/router/log" 2>&1 &
router_pid=$!
bg_pids="$bg_pids $router_pid"
for ((i = 0; i < 50; i++)); do
	grep -q 'Listening for NAT-PMP/PCP traffic' "$tmp/router/log" && break
	alive "$router_pid" || break
	sleep 0.1
done
grep -q 'Listening for NAT-PMP/PCP traffic' "$tmp/router/log" ||
	fail "miniupnpd on the CPE did not start within 5 s: $(tail -n 5 "$tmp/router/log")"
grep -e 'Reserved / private IP address' -e 'Public IP address is required' "$tmp/router/log" |
	sed 's/^miniupnpd\[[0-9]*\]: //' | indent
say "   A LAN app asks it for a port with UPnP IGD (-i: go on although upnpc finds"
say "   the IGD \"not connected\"), then with NAT-PMP:"
show lan upnpc -i -a "$LAN_HOST" "$TCP_PORT" "$TCP_PUBLIC" TCP || true
show lan natpmpc -g "$CPE_LAN" -a "$TCP_PUBLIC" "$TCP_PORT" tcp 3600 || true
stop_pid "$router_pid"
wait "$router_pid" 2>/dev/null || true
say "   (miniupnpd stopped: error 501 and a NAT-PMP network failure, no port anywhere)"

# ---------------------------------------------------------------- 4

header 4 "Starting pcpgw on the CPE"
say "   pcpgw serves UPnP IGD, NAT-PMP and PCP on the LAN interface c0 only, and carries"
say "   each request to the provider's PCP server $CGN, keeping the CPE's own"
say "   nftables DNAT in step. --mode defaults to auto, which picks nat444 here."
mkdir -p "$tmp/pcpgw"
SOCK=$tmp/pcpgw.sock
printf '   cpe# pcpgw run --lan c0 --wan c1 --pcp-server %s --state-dir %s --socket %s &\n' \
	"$CGN" "$tmp/pcpgw" "$SOCK"
ip netns exec "$NS_CPE" pcpgw run --lan c0 --wan c1 --pcp-server "$CGN" \
	--state-dir "$tmp/pcpgw" --socket "$SOCK" >"$tmp/pcpgw.log" 2>&1 &
pcpgw_pid=$!
# Ready when its control socket answers and it knows the provider's address
# (at most 15 s).
st=""
for ((i = 0; i < 75; i++)); do
	alive "$pcpgw_pid" || fail "pcpgw exited at start"
	st=$(on cpe timeout 5 pcpgw status --json --socket "$SOCK" 2>/dev/null) &&
		grep -q "\"external_addr\": *\"$CGN_PUBLIC\"" <<<"$st" && break
	st=""
	sleep 0.2
done
[ -n "$st" ] || fail "pcpgw status did not show the provider's address $CGN_PUBLIC within 15 s"
show cpe pcpgw status --socket "$SOCK"

# ---------------------------------------------------------------- 5

header 5 "The LAN host runs a TCP service and opens a port for it with UPnP IGD (upnpc)"
say "   A tiny server on $LAN_HOST:$TCP_PORT answers every connection with one line."
# One nc per connection; a bounded number of connections. ($1 and $2 are
# expanded by the inner shell.)
# shellcheck disable=SC2016
on lan bash -c 'for i in $(seq 50); do
	echo "hello from the LAN host $1 (connection $i)" | nc -n -v -N -l "$1" "$2" || sleep 0.1
done' tcp-server "$LAN_HOST" "$TCP_PORT" >"$tmp/tcp-server.log" 2>&1 &
bg_pids="$bg_pids $!"
# UDP: writes what it receives, answers with one line.
# shellcheck disable=SC2016
on lan bash -c 'echo "hello over UDP from the LAN host $1" | nc -n -u -l "$1" "$2"' \
	udp-server "$LAN_HOST" "$UDP_PORT" >"$tmp/udp-server.log" 2>&1 &
bg_pids="$bg_pids $!"
for ((i = 0; i < 50; i++)); do
	[ -n "$(on lan ss -Hltn "sport = :$TCP_PORT")" ] && [ -n "$(on lan ss -Hlun "sport = :$UDP_PORT")" ] && break
	sleep 0.1
done
[ -n "$(on lan ss -Hltn "sport = :$TCP_PORT")" ] || fail "the TCP server on the LAN host does not listen"
[ -n "$(on lan ss -Hlun "sport = :$UDP_PORT")" ] || fail "the UDP server on the LAN host does not listen"
say "   upnpc finds pcpgw by SSDP on the LAN, reads the external address (the provider's,"
say "   $CGN_PUBLIC) and asks for public port $TCP_PUBLIC -> $LAN_HOST:$TCP_PORT."
ok=""
for ((i = 0; i < 3; i++)); do
	out=$(on lan timeout 20 upnpc -i -e "demo web server" -a "$LAN_HOST" "$TCP_PORT" "$TCP_PUBLIC" TCP 3600 2>&1) || true
	if grep -q "external $CGN_PUBLIC:$TCP_PUBLIC TCP is redirected to internal $LAN_HOST:$TCP_PORT" <<<"$out"; then
		ok=yes
		break
	fi
	sleep 1
done
printf '   lan# upnpc -i -e "demo web server" -a %s %s %s TCP 3600\n' "$LAN_HOST" "$TCP_PORT" "$TCP_PUBLIC"
printf '%s\n' "$out" | grep -v -e '^upnpc : miniupnpc library test client' \
	-e '^ (c) 20[0-9-]* Thomas Bernard' -e '^Go to http://miniupnp' -e '^for more information\.$' | indent
[ -n "$ok" ] || fail "upnpc -a did not map $CGN_PUBLIC:$TCP_PUBLIC to $LAN_HOST:$TCP_PORT (3 tries)"

# ---------------------------------------------------------------- 6

header 6 "The LAN host opens a UDP port with NAT-PMP (natpmpc)"
say "   natpmpc asks its default gateway, the CPE: public port $UDP_PUBLIC -> its port $UDP_PORT."
out=$(on lan timeout 10 natpmpc -g "$CPE_LAN" -a "$UDP_PUBLIC" "$UDP_PORT" udp 3600 2>&1) || true
printf '   lan# natpmpc -g %s -a %s %s udp 3600\n' "$CPE_LAN" "$UDP_PUBLIC" "$UDP_PORT"
printf '%s\n' "$out" | indent
grep -q "Public IP address : $CGN_PUBLIC" <<<"$out" ||
	fail "natpmpc did not show the provider's address $CGN_PUBLIC"
udp_public=$(printf '%s' "$out" | sed -n 's/.*Mapped public port \([0-9]*\) protocol UDP.*/\1/p' | head -n 1)
[ -n "$udp_public" ] || fail "natpmpc -a made no UDP mapping"

# ---------------------------------------------------------------- 7

header 7 "What the CPE and the CGN now hold"
say "   pcpgw's table: each mapping with the provider's external address and port,"
say "   the CPE's WAN port, the LAN host's port, and who asked (origin):"
show cpe pcpgw list --socket "$SOCK"
say "   On the CPE, pcpgw's own nftables DNAT from its WAN ports to the LAN host:"
show cpe nft list map inet pcpgw fwd4 || say "(pcpgw's table is laid out differently; see nft list table inet pcpgw)" | indent
say "   At the CGN, miniupnpd made a DNAT from its public address to the CPE's WAN"
say "   address $CPE_WAN for each, because pcpgw asked it with PCP MAP:"
show isp nft list chain inet cgn prerouting_pcp
out=$(on isp nft list chain inet cgn prerouting_pcp)
grep -q "dnat ip to $CPE_WAN" <<<"$out" || fail "no DNAT to $CPE_WAN at the CGN"

# ---------------------------------------------------------------- 8

header 8 "A host on the internet ($NET_HOST) reaches the LAN services at $CGN_PUBLIC"
say "   TCP: connect to $CGN_PUBLIC:$TCP_PUBLIC and print what comes back:"
for ((i = 0; i < 3; i++)); do
	if [ "$i" -gt 0 ]; then sleep 1; fi
	show net nc -n -w 3 "$CGN_PUBLIC" "$TCP_PUBLIC" </dev/null || true
	case $out in *"hello from the LAN host"*) break ;; esac
done
case $out in
*"hello from the LAN host"*) ;;
*) fail "no answer from the LAN service at $CGN_PUBLIC:$TCP_PUBLIC" ;;
esac
say "   The LAN host's server saw the internet host's own address (two NATs, one path):"
grep 'Connection received' "$tmp/tcp-server.log" | tail -n 1 | indent
say "   UDP: send a datagram to $CGN_PUBLIC:$udp_public and print the answer:"
disp="echo \"ping from $NET_HOST\" | nc -n -u -w 2 $CGN_PUBLIC $udp_public"
show net nc -n -u -w 2 "$CGN_PUBLIC" "$udp_public" <<<"ping from $NET_HOST" || true
case $out in
*"hello over UDP"*) ;;
*) fail "no UDP answer from the LAN host through $CGN_PUBLIC:$udp_public" ;;
esac
say "   and the LAN host received:"
grep -v '^Connection' "$tmp/udp-server.log" | indent

# ---------------------------------------------------------------- 9

header 9 "The LAN host deletes the TCP mapping; the internet host is turned away"
show lan upnpc -i -d "$TCP_PUBLIC" TCP
# pcpgw deletes the provider's mapping too (at most 10 s).
for ((i = 0; i < 50; i++)); do
	out=$(on isp nft list chain inet cgn prerouting_pcp)
	grep -q "dport $TCP_PUBLIC " <<<"$out" || break
	sleep 0.2
done
say "   The CGN's DNAT for port $TCP_PUBLIC is gone (the NAT-PMP UDP one stays):"
show isp nft list chain inet cgn prerouting_pcp
case $out in *"dport $TCP_PUBLIC "*) fail "the CGN still holds the DNAT of TCP port $TCP_PUBLIC" ;; esac
say "   The TCP server still listens on the LAN host, but nothing leads there:"
if show net nc -n -v -w 3 "$CGN_PUBLIC" "$TCP_PUBLIC" </dev/null; then
	fail "$CGN_PUBLIC:$TCP_PUBLIC is still reachable after the mapping was deleted"
fi
case $out in *"hello from the LAN host"*) fail "the LAN service still answered after the mapping was deleted" ;; esac

# ---------------------------------------------------------------- 10

header 10 "Stopping pcpgw and the CGN"
say "   On SIGTERM pcpgw writes its mappings to its state file (for its next start),"
say "   removes its nftables table from the CPE and exits."
kill -TERM "$pcpgw_pid"
wait_gone "$pcpgw_pid" 50 || fail "pcpgw did not exit within 5 s of SIGTERM"
rc=0
wait "$pcpgw_pid" 2>/dev/null || rc=$?
pcpgw_pid=""
[ "$rc" = 0 ] || fail "pcpgw exited with status $rc"
state=$(cd "$tmp/pcpgw" && echo *)
[ "$state" != "*" ] || fail "pcpgw left no state file in its --state-dir"
say "   pcpgw exited with status 0; its --state-dir holds: $state; the CPE's nftables"
say "   tables now:"
show cpe nft list tables
case $out in *pcpgw*) fail "pcpgw left its nftables table behind" ;; esac
stop_pid "$cgn_pid"
say "   miniupnpd stopped."

# ---------------------------------------------------------------- 11

header 11 "Second home: double NAT behind an ISP box that speaks UPnP IGD, not PCP"
say "   Most homes have no PCP server upstream but an ISP box in front of the router."
say "   The same miniupnpd now plays that box: UPnP IGD on $CGN:5000 toward the CPE,"
say "   no NAT-PMP, no PCP; its table is emptied first."
on isp nft flush chain inet cgn prerouting_pcp
on isp nft flush chain inet cgn forward_pcp
on isp nft flush chain inet cgn postrouting_pcp
mkdir -p "$tmp/box"
sed -e 's/^enable_natpmp=yes/enable_natpmp=no/' -e 's/^enable_pcp_pmp=yes/enable_pcp_pmp=no/' \
	-e 's/^enable_upnp=no/enable_upnp=yes/' -e "s|^lease_file=.*|lease_file=$tmp/box/leases|" \
	"$tmp/cgn/miniupnpd.conf" >"$tmp/box/miniupnpd.conf"
printf 'ext_ip=%s\nport=5000\nfriendly_name=ISP box\nmodel_name=LabBox\n' "$CGN_PUBLIC" >>"$tmp/box/miniupnpd.conf"
printf '   isp# miniupnpd -f box.conf   (enable_upnp=yes, enable_natpmp=no, ext_ip=%s)\n' "$CGN_PUBLIC"
timeout 10 ip netns exec "$NS_ISP" "$LIBDIR/ld-linux-x86-64.so.2" --library-path "$LIBDIR" \
	"$MINIUPNPD" -f "$tmp/box/miniupnpd.conf" -P "$tmp/box/miniupnpd.pid" 2>&1 | indent
box_pid=""
for ((i = 0; i < 50; i++)); do
	box_pid=$(miniupnpd_pid "$tmp/box/miniupnpd.pid") && break
	sleep 0.1
done
[ -n "$box_pid" ] || fail "the ISP box's miniupnpd wrote no pid file of a live process within 5 s"
for ((i = 0; i < 50; i++)); do
	on cpe timeout 1 bash -c "exec 3<>/dev/tcp/$CGN/5000" 2>/dev/null && break
	sleep 0.1
done

# ---------------------------------------------------------------- 12

header 12 "pcpgw starts with no hint of what is upstream, and finds the box"
say "   No --pcp-server this time: pcpgw asks the default router with PCP and NAT-PMP"
say "   and searches for an IGD with SSDP on the WAN link, all at once, and takes"
say "   what answers (about 3 s). pcpgw status names the box:"
mkdir -p "$tmp/pcpgw2"
printf '   cpe# pcpgw run --lan c0 --wan c1 --state-dir %s --socket %s &\n' "$tmp/pcpgw2" "$SOCK"
ip netns exec "$NS_CPE" pcpgw run --lan c0 --wan c1 \
	--state-dir "$tmp/pcpgw2" --socket "$SOCK" >"$tmp/pcpgw2.log" 2>&1 &
pcpgw_pid=$!
st=""
for ((i = 0; i < 75; i++)); do
	alive "$pcpgw_pid" || fail "pcpgw exited at start"
	st=$(on cpe timeout 5 pcpgw status --json --socket "$SOCK" 2>/dev/null) &&
		grep -q '"kind": *"upnp"' <<<"$st" && break
	st=""
	sleep 0.2
done
[ -n "$st" ] || fail "pcpgw did not find the ISP box's IGD within 15 s"
show cpe pcpgw status --socket "$SOCK"

# ---------------------------------------------------------------- 13

header 13 "upnpc on the LAN opens a port through both NATs"
ok=""
for ((i = 0; i < 3; i++)); do
	out=$(on lan timeout 20 upnpc -i -e "demo web server" -a "$LAN_HOST" "$TCP_PORT" "$TCP_PUBLIC" TCP 3600 2>&1) || true
	if grep -q "external $CGN_PUBLIC:$TCP_PUBLIC TCP is redirected to internal $LAN_HOST:$TCP_PORT" <<<"$out"; then
		ok=yes
		break
	fi
	sleep 1
done
printf '   lan# upnpc -i -e "demo web server" -a %s %s %s TCP 3600\n' "$LAN_HOST" "$TCP_PORT" "$TCP_PUBLIC"
printf '%s\n' "$out" | grep -v -e '^upnpc : miniupnpc library test client' \
	-e '^ (c) 20[0-9-]* Thomas Bernard' -e '^Go to http://miniupnp' -e '^for more information\.$' | indent
[ -n "$ok" ] || fail "upnpc -a did not map $CGN_PUBLIC:$TCP_PUBLIC through the ISP box (3 tries)"
say "   pcpgw asked the box with AddPortMapping toward the CPE's WAN address; the box's DNAT:"
show isp nft list chain inet cgn prerouting_pcp
grep -q "dnat ip to $CPE_WAN:$TCP_PUBLIC" <<<"$out" || fail "no DNAT to $CPE_WAN:$TCP_PUBLIC at the ISP box"
show cpe pcpgw list --socket "$SOCK"
say "   The internet host connects to $CGN_PUBLIC:$TCP_PUBLIC:"
for ((i = 0; i < 3; i++)); do
	if [ "$i" -gt 0 ]; then sleep 1; fi
	show net nc -n -w 3 "$CGN_PUBLIC" "$TCP_PUBLIC" </dev/null || true
	case $out in *"hello from the LAN host"*) break ;; esac
done
case $out in
*"hello from the LAN host"*) ;;
*) fail "no answer from the LAN service through the ISP box at $CGN_PUBLIC:$TCP_PUBLIC" ;;
esac

# ---------------------------------------------------------------- 14

header 14 "Stopping pcpgw and the ISP box"
kill -TERM "$pcpgw_pid"
wait_gone "$pcpgw_pid" 50 || fail "pcpgw did not exit within 5 s of SIGTERM"
rc=0
wait "$pcpgw_pid" 2>/dev/null || rc=$?
pcpgw_pid=""
[ "$rc" = 0 ] || fail "pcpgw exited with status $rc"
stop_pid "$box_pid"
say "   pcpgw exited with status 0; the ISP box's miniupnpd stopped."
