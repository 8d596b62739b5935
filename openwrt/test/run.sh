#!/bin/sh
# Shell harness for the OpenWrt package's scripts (openwrt/pcpgw/files):
# the procd init script, the DHCP hooks, the miniupnpd migration and the
# rpcd plugin run against stubs of procd/rc.common, uci, /lib/functions.sh,
# /lib/functions/network.sh and libubox's jshn (test/stubs, test/jshn),
# each in a scratch root ($IPKG_INSTROOT). Asserts the exact procd calls
# (command line), the resulting /etc/config files and the plugin's answers
# (here without a daemon; with pcpgw running: rpcd_test.go).
#
#   sh openwrt/test/run.sh [PCPGW_BINARY]
#
# With a pcpgw binary (or $PCPGW_BIN), every resulting /etc/config/pcpgw
# must also pass `pcpgw check-config`. Exit status 1 when a case fails.
set -u
T="$(cd "$(dirname "$0")" && pwd)"
FILES="$T/../pcpgw/files"
STUBS="$T/stubs"
BIN="${1:-${PCPGW_BIN:-}}"
# The rpcd cases link it into scratch roots: an absolute path.
case "$BIN" in
"" | /*) ;;
*) BIN="$PWD/$BIN" ;;
esac
fails=0
cases=0
WORK=$(mktemp -d "${TMPDIR:-/tmp}/pcpgw-owrt.XXXXXX") || exit 1
trap 'rm -rf "$WORK"' EXIT INT TERM
PATH="$STUBS/bin:$PATH"
export PATH

fail() { echo "FAIL $case: $*"; fails=$((fails + 1)); }

# begin NAME: a fresh root with the package's files installed as the ipk
# installs them, plus stub init scripts that log to $ROOT/init.log.
begin() {
	case="$1"
	cases=$((cases + 1))
	ROOT="$WORK/$cases"
	mkdir -p "$ROOT/etc/config" "$ROOT/etc/init.d" "$ROOT/usr/lib/pcpgw" "$ROOT/var/run"
	cp "$FILES/pcpgw.config" "$ROOT/etc/config/pcpgw"
	cp "$FILES/dhcp.sh" "$ROOT/usr/lib/pcpgw/dhcp.sh"
	cp "$FILES/pcpgw.config" "$ROOT/usr/lib/pcpgw/pcpgw.config"
	for s in pcpgw miniupnpd; do
		printf '#!/bin/sh\necho "%s $*" >>"%s/init.log"\n' "$s" "$ROOT" >"$ROOT/etc/init.d/$s"
		chmod 755 "$ROOT/etc/init.d/$s"
	done
	: >"$ROOT/init.log"
	IPKG_INSTROOT="$ROOT" PROCD_LOG="$ROOT/procd.log" UCI_LOG="$ROOT/uci.log" STUB_NETWORK="$ROOT/network"
	export IPKG_INSTROOT PROCD_LOG UCI_LOG STUB_NETWORK
	: >"$PROCD_LOG"
	: >"$UCI_LOG"
	: >"$STUB_NETWORK"
}

# same WHAT FILE: FILE equals the expected text on stdin.
same() {
	cat >"$WORK/want"
	if ! diff -u "$WORK/want" "$2" >"$WORK/diff" 2>&1; then
		fail "$1 differs (-want +got):"
		sed 's/^/    /' "$WORK/diff"
	fi
}

check_config() {
	[ -n "$BIN" ] || return 0
	if ! "$BIN" check-config -c "$ROOT/etc/config/pcpgw" >"$WORK/cc.out" 2>&1; then
		fail "pcpgw check-config rejects the result:"
		sed 's/^/    /' "$WORK/cc.out"
	elif grep -q '^warning' "$WORK/cc.out"; then
		fail "pcpgw check-config warns:"
		grep '^warning' "$WORK/cc.out" | sed 's/^/    /'
	fi
}

# initd ACTION: the init script, installed as /etc/init.d/pcpgw would be.
initd() {
	mkdir -p "$ROOT/initd"
	cp "$FILES/pcpgw.init" "$ROOT/initd/pcpgw"
	sh "$STUBS/rc.common" "$ROOT/initd/pcpgw" "$@" 2>"$ROOT/init.err"
}

ok() { [ "$fails" = "$1" ] && echo "ok   $case"; }

# --- the procd init script -------------------------------------------------

begin "init: default config, logical networks resolved to devices"
f0=$fails
printf 'lan br-lan\nwan eth1\nwan6 eth1\n' >"$STUB_NETWORK"
initd start
same "procd calls" "$PROCD_LOG" <<'EOF'
procd_open_service pcpgw
procd_open_instance
procd_set_param command /usr/sbin/pcpgw run -c /etc/config/pcpgw --lan br-lan --wan eth1 --wan6 eth1
procd_set_param respawn
procd_set_param stdout 1
procd_set_param stderr 1
procd_close_instance
procd_open_trigger
procd_add_reload_trigger pcpgw
procd_add_interface_trigger interface.* wan /etc/init.d/pcpgw reload
procd_add_interface_trigger interface.* wan6 /etc/init.d/pcpgw reload
procd_close_trigger
procd_close_service
EOF
check_config
ok $f0

begin "init: reload is procd's start (restarts only on a changed command line) and SIGHUP"
f0=$fails
printf 'lan br-lan\nwan pppoe-wan\n' >"$STUB_NETWORK"
initd reload
same "procd calls" "$PROCD_LOG" <<'EOF'
procd_open_service pcpgw
procd_open_instance
procd_set_param command /usr/sbin/pcpgw run -c /etc/config/pcpgw --lan br-lan --wan pppoe-wan
procd_set_param respawn
procd_set_param stdout 1
procd_set_param stderr 1
procd_close_instance
procd_open_trigger
procd_add_reload_trigger pcpgw
procd_add_interface_trigger interface.* wan /etc/init.d/pcpgw reload
procd_add_interface_trigger interface.* wan6 /etc/init.d/pcpgw reload
procd_close_trigger
procd_close_service
procd_send_signal pcpgw
EOF
ok $f0

begin "init: several LANs, a device name passes through, no wan6"
f0=$fails
printf 'lan br-lan\nguest br-guest\nwan6 eth1\n' >"$STUB_NETWORK"
cat >"$ROOT/etc/config/pcpgw" <<'EOF'
config pcpgw 'main'
	list lan 'lan'
	list lan 'guest'
	option wan 'lo'
EOF
initd start
same "procd calls" "$PROCD_LOG" <<'EOF'
procd_open_service pcpgw
procd_open_instance
procd_set_param command /usr/sbin/pcpgw run -c /etc/config/pcpgw --lan br-lan --lan br-guest --wan lo
procd_set_param respawn
procd_set_param stdout 1
procd_set_param stderr 1
procd_close_instance
procd_open_trigger
procd_add_reload_trigger pcpgw
procd_add_interface_trigger interface.* lo /etc/init.d/pcpgw reload
procd_close_trigger
procd_close_service
EOF
check_config
ok $f0

begin "init: WAN down: no instance, the WAN trigger starts it later"
f0=$fails
printf 'lan br-lan\n' >"$STUB_NETWORK"
initd start
same "procd calls" "$PROCD_LOG" <<'EOF'
procd_open_service pcpgw
procd_open_trigger
procd_add_reload_trigger pcpgw
procd_add_interface_trigger interface.* wan /etc/init.d/pcpgw reload
procd_add_interface_trigger interface.* wan6 /etc/init.d/pcpgw reload
procd_close_trigger
procd_close_service
EOF
grep -q "WAN 'wan' has no device" "$ROOT/init.err" || fail "no message about the WAN: $(cat "$ROOT/init.err")"
ok $f0

begin "init: enabled 0: no instance"
f0=$fails
printf 'lan br-lan\nwan eth1\n' >"$STUB_NETWORK"
uci set pcpgw.main.enabled=0
initd start
grep -q procd_open_instance "$PROCD_LOG" && fail "an instance was opened while disabled"
grep -q "procd_add_reload_trigger pcpgw" "$PROCD_LOG" || fail "no reload trigger while disabled (enabling it must start it)"
ok $f0

# --- DHCP hooks ------------------------------------------------------------

dhcp4() { (INTERFACE="$1" interface="$2" opt158="$4" sh -c '. "$IPKG_INSTROOT/hook4" "$@"' hook "$3"); }
dhcp6() { (INTERFACE="$1" OPTION_86="$4" AFTR="$5" sh -c '. "$IPKG_INSTROOT/hook6" "$@"' hook "$2" "$3"); }
hooks() {
	cp "$FILES/pcpgw.udhcpc" "$ROOT/hook4"
	cp "$FILES/pcpgw.odhcp6c" "$ROOT/hook6"
	SF="$ROOT/var/run/pcpgw/pcp-servers"
	uci set pcpgw.main.pcp_servers_file="$SF"
}

begin "dhcp: option 158 (two lists) and option 86 merged into the servers file"
f0=$fails
hooks
# 158: a list of two addresses (100.64.0.1, 198.51.100.1), then one of one
# (203.0.113.1) (RFC 7291 section 5).
dhcp4 wan eth1 bound "0864400001C6336401 04cb007101"
# 86: 2001:db8:ff::1 and the IPv4-mapped ::ffff:100.64.0.1 (RFC 7291 section 4).
dhcp6 wan6 eth1 bound 20010db800ff0000000000000000000100000000000000000000ffff64400001 ""
same "servers file" "$SF" <<'EOF'
100.64.0.1
198.51.100.1
203.0.113.1
2001:db8:ff:0:0:0:0:1
EOF
check_config
ok $f0

begin "dhcp: a renewal with the same servers leaves the file alone; deconfig and unbound clear"
f0=$fails
hooks
dhcp4 wan eth1 bound 0464400001
dhcp6 wan6 eth1 bound 20010db800ff0000000000000000000a ""
touch -d '2001-01-01 00:00:00' "$SF"
dhcp4 wan eth1 renew 0464400001
dhcp6 wan6 eth1 ra-updated "" ""
dhcp6 wan6 eth1 updated 20010db800ff0000000000000000000a ""
[ "$(date -r "$SF" +%Y)" = 2001 ] || fail "the servers file was rewritten with the same content"
dhcp4 wan eth1 deconfig ""
same "servers file after deconfig" "$SF" <<'EOF'
2001:db8:ff:0:0:0:0:a
EOF
dhcp6 wan6 eth1 unbound "" ""
[ -s "$SF" ] && fail "servers file not empty after unbound: $(cat "$SF")"
ok $f0

begin "dhcp: malformed options and other interfaces are ignored"
f0=$fails
hooks
dhcp4 wan eth1 bound 0464400001
dhcp4 guest br-guest bound 04c0000201
dhcp6 lan6 br-lan bound 20010db800000000000000000000000b ""
same "servers file" "$SF" <<'EOF'
100.64.0.1
EOF
dhcp4 wan eth1 renew 0564400001ff
dhcp6 wan6 eth1 bound 2001 ""
[ -s "$SF" ] && fail "malformed options left servers: $(cat "$SF")"
ok $f0

begin "dhcp: AFTR name (option 64) stored, pcpgw reloaded once"
f0=$fails
hooks
dhcp6 wan6 eth1 bound "" aftr.example.net
dhcp6 wan6 eth1 updated "" aftr.example.net
[ "$(uci -q get pcpgw.main.aftr_name)" = aftr.example.net ] || fail "aftr_name not stored"
same "init calls" "$ROOT/init.log" <<'EOF'
pcpgw enabled
pcpgw reload
EOF
grep -qx "uci commit pcpgw" "$UCI_LOG" || fail "no uci commit"
check_config
ok $f0

# --- migration from miniupnpd ------------------------------------------------

migrate() { sh "$FILES/pcpgw.uci-defaults" 2>"$ROOT/migrate.err"; echo $? >"$ROOT/migrate.rc"; }

begin "migrate: OpenWrt's default /etc/config/upnpd (22.03-24.10)"
f0=$fails
cp "$T/testdata/upnpd.classic" "$ROOT/etc/config/upnpd"
migrate
[ "$(cat "$ROOT/migrate.rc")" = 0 ] || fail "exit status $(cat "$ROOT/migrate.rc"): $(cat "$ROOT/migrate.err")"
same "/etc/config/pcpgw" "$ROOT/etc/config/pcpgw" <<'EOF'

config pcpgw 'main'
	option enabled '0'
	option wan 'wan'
	option wan6 'wan6'
	option mode 'auto'
	option secure_mode '1'
	option upnp '1'
	option natpmp '1'
	option pcp '1'
	option http_port '5000'
	option lease_file '/var/run/miniupnpd.leases'
	option state_dir '/var/lib/pcpgw'
	option syslog '0'
	option log_level 'info'
	option igdv1 '1'
	list lan 'lan'

config perm_rule
	option action 'allow'
	option ext_ports '1024-65535'
	option int_addr '0.0.0.0/0'
	option int_ports '1024-65535'
	option comment 'Allow high ports'

config perm_rule
	option action 'deny'
	option ext_ports '0-65535'
	option int_addr '0.0.0.0/0'
	option int_ports '0-65535'
	option comment 'Default deny'
EOF
same "miniupnpd init calls" "$ROOT/init.log" <<'EOF'
miniupnpd stop
miniupnpd disable
EOF
[ "$(uci -q get upnpd.config.migrated_to)" = pcpgw ] || fail "no migration marker in upnpd"
[ "$(uci -q get upnpd.config.enabled)" = 0 ] || fail "upnpd still enabled"
grep -qx "uci commit pcpgw" "$UCI_LOG" || fail "no uci commit pcpgw"
check_config
# Once only: a second run (reinstall, upgrade) changes nothing.
cp "$ROOT/etc/config/pcpgw" "$WORK/before"
: >"$ROOT/init.log"
migrate
cmp -s "$WORK/before" "$ROOT/etc/config/pcpgw" || fail "a second run changed /etc/config/pcpgw"
[ -s "$ROOT/init.log" ] && fail "a second run touched miniupnpd: $(cat "$ROOT/init.log")"
ok $f0

begin "migrate: customised upnpd with perm_rules"
f0=$fails
cp "$T/testdata/upnpd.custom" "$ROOT/etc/config/upnpd"
migrate
same "/etc/config/pcpgw" "$ROOT/etc/config/pcpgw" <<'EOF'

config pcpgw 'main'
	option enabled '1'
	option wan 'wan'
	option wan6 'wan6'
	option mode 'auto'
	option secure_mode '0'
	option upnp '1'
	option natpmp '0'
	option pcp '0'
	option http_port '5555'
	option lease_file '/tmp/upnp.leases'
	option state_dir '/var/lib/pcpgw'
	option syslog '0'
	option log_level 'info'
	option ipv6_pinholes '0'
	list lan 'lan'
	list lan 'guest'

config perm_rule
	option action 'allow'
	option ext_ports '3074'
	option int_addr '192.168.1.50/32'
	option int_ports '3074'
	option comment 'Xbox Live'

config perm_rule
	option action 'deny'
	option ext_ports '0-1023'
	option int_addr '0.0.0.0/0'
	option int_ports '0-65535'
	option comment 'No low ports'

config perm_rule
	option action 'allow'
	option ext_ports '1024-65535'
	option int_addr '192.168.1.0/255.255.255.0'
	option int_ports '1024-65535'
EOF
check_config
ok $f0

begin "migrate: the 2025 upnpd schema (enabled_protocols, internal_network)"
f0=$fails
cp "$T/testdata/upnpd.v2" "$ROOT/etc/config/upnpd"
migrate
same "/etc/config/pcpgw" "$ROOT/etc/config/pcpgw" <<'EOF'

config pcpgw 'main'
	option enabled '1'
	option wan 'wan'
	option wan6 'wan6'
	option mode 'auto'
	option secure_mode '1'
	option upnp '0'
	option natpmp '1'
	option pcp '1'
	option http_port '5000'
	option lease_file '/var/run/miniupnpd.leases'
	option state_dir '/var/lib/pcpgw'
	option syslog '0'
	option log_level 'debug'
	option igdv1 '1'
	list lan 'lan'
	list lan 'iot'

config perm_rule
	option action 'allow'
	option ext_ports '1024-65535'
	option int_addr '0.0.0.0/0'
	option int_ports '1024-65535'
	option comment 'Allow high ports'

config perm_rule
	option action 'deny'
	option ext_ports '1-65535'
	option int_addr '0.0.0.0/0'
	option int_ports '1-65535'
	option comment 'Default deny'
EOF
check_config
ok $f0

begin "migrate: pcpgw already configured: upnpd and miniupnpd left alone"
f0=$fails
cp "$T/testdata/upnpd.custom" "$ROOT/etc/config/upnpd"
uci set pcpgw.main.http_port=5080
cp "$ROOT/etc/config/pcpgw" "$WORK/before"
cp "$ROOT/etc/config/upnpd" "$WORK/upnpd"
migrate
[ "$(cat "$ROOT/migrate.rc")" = 0 ] || fail "exit status $(cat "$ROOT/migrate.rc")"
cmp -s "$WORK/before" "$ROOT/etc/config/pcpgw" || fail "/etc/config/pcpgw changed"
cmp -s "$WORK/upnpd" "$ROOT/etc/config/upnpd" || fail "/etc/config/upnpd changed"
[ -s "$ROOT/init.log" ] && fail "miniupnpd touched: $(cat "$ROOT/init.log")"
grep -q "was edited" "$ROOT/migrate.err" || fail "no message: $(cat "$ROOT/migrate.err")"
ok $f0

begin "migrate: no /etc/config/pcpgw yet: created from upnpd"
f0=$fails
rm "$ROOT/etc/config/pcpgw"
cat >"$ROOT/etc/config/upnpd" <<'EOF'
config upnpd 'config'
	option enabled '1'
	option internal_iface 'lan'
	option external_iface 'wan'

config perm_rule
	option action 'allow'
	option ext_ports '1024-65535'
	option int_addr '0.0.0.0/0'
	option int_ports '1024-65535'
EOF
migrate
same "/etc/config/pcpgw" "$ROOT/etc/config/pcpgw" <<'EOF'

config pcpgw 'main'
	option enabled '1'
	option wan 'wan'
	list lan 'lan'

config perm_rule
	option action 'allow'
	option ext_ports '1024-65535'
	option int_addr '0.0.0.0/0'
	option int_ports '1024-65535'
EOF
check_config
ok $f0

begin "migrate: no upnpd: nothing changes, miniupnpd untouched"
f0=$fails
migrate
[ "$(cat "$ROOT/migrate.rc")" = 0 ] || fail "exit status $(cat "$ROOT/migrate.rc")"
cmp -s "$FILES/pcpgw.config" "$ROOT/etc/config/pcpgw" || fail "/etc/config/pcpgw changed"
[ -s "$ROOT/init.log" ] && fail "miniupnpd touched: $(cat "$ROOT/init.log")"
check_config
ok $f0

# --- the rpcd plugin, without a daemon ---------------------------------------
# (ubus call pcpgw status/list/delete against a running pcpgw: rpcd_test.go.)

# rpcd_call ARGS... <STDIN: the plugin run as rpcd runs it (list, or call
# METHOD with the arguments on stdin), installed in $ROOT; its stdout in
# $ROOT/rpcd.out, its exit status in $rc (so not in a pipeline: input
# comes from a file).
rpcd_call() {
	mkdir -p "$ROOT/usr/libexec/rpcd" "$ROOT/usr/share/libubox" "$ROOT/usr/sbin"
	cp "$FILES/pcpgw.rpcd" "$ROOT/usr/libexec/rpcd/pcpgw"
	cp "$STUBS/libubox/jshn.sh" "$ROOT/usr/share/libubox/jshn.sh"
	ln -sf "$BIN" "$ROOT/usr/sbin/pcpgw"
	PATH="$WORK/bin:$PATH" $PLUGIN_SH "$ROOT/usr/libexec/rpcd/pcpgw" "$@" >"$ROOT/rpcd.out" 2>"$ROOT/rpcd.err"
	rc=$?
}

# answer WANT_RC WANT_JSON: the last rpcd_call printed exactly WANT_JSON.
answer() {
	[ "$rc" = "$1" ] || fail "exit status $rc, want $1 (stderr: $(cat "$ROOT/rpcd.err"))"
	# (same, not in a pipeline: its failures must count)
	printf '%s\n' "$2" >"$ROOT/rpcd.want"
	same "answer" "$ROOT/rpcd.out" <"$ROOT/rpcd.want"
}

if [ -z "$BIN" ]; then
	echo "skip rpcd: no pcpgw binary given"
elif ! command -v go >/dev/null || ! (cd "$T/jshn" && go build -o "$WORK/bin/jshn" .); then
	echo "skip rpcd: cannot build the jshn stand-in (test/jshn) with go"
else
	# OpenWrt runs it with busybox's ash: so do we, when there is one.
	PLUGIN_SH=sh
	command -v busybox >/dev/null && PLUGIN_SH="busybox sh"
	echo "rpcd plugin under: $PLUGIN_SH"
	begin "rpcd: list names the methods and their arguments"
	f0=$fails
	rpcd_call list </dev/null
	answer 0 '{"status":{},"list":{},"delete":{"proto":"str","port":32,"id":32}}'
	ok $f0

	begin "rpcd: no daemon: status, list and delete answer pcpgw's error"
	f0=$fails
	uci set pcpgw.main.socket="$ROOT/var/run/none.sock"
	for m in status list delete; do
		echo '{"proto":"tcp","port":18080}' >"$ROOT/in"
		rpcd_call call $m <"$ROOT/in"
		answer 1 "{\"error\":\"is pcpgw running? dial unix $ROOT/var/run/none.sock: connect: no such file or directory\"}"
	done
	ok $f0

	begin "rpcd: bad arguments and unknown methods are refused before asking the daemon"
	f0=$fails
	uci set pcpgw.main.socket="$ROOT/var/run/none.sock"
	while IFS='|' read -r in want; do
		printf '%s' "$in" >"$ROOT/in"
		rpcd_call call delete <"$ROOT/in"
		answer 1 "$want"
	done <<'EOF'
{"proto":|{"error":"the arguments are not a JSON object: {\"proto\":"}
[1,2]|{"error":"the arguments are not a JSON object: [1,2]"}
{}|{"error":"delete needs proto (tcp or udp) and port, or id"}
|{"error":"delete needs proto (tcp or udp) and port, or id"}
{"port":18080}|{"error":"delete needs proto (tcp or udp) and port, or id"}
{"proto":"icmp","port":1}|{"error":"proto must be tcp or udp, not 'icmp'"}
{"proto":"tcp"}|{"error":"port must be a number from 1 to 65535, not ''"}
{"proto":"tcp","port":"80; reboot"}|{"error":"port must be a number from 1 to 65535, not '80; reboot'"}
{"proto":"tcp","port":-1}|{"error":"port must be a number from 1 to 65535, not '-1'"}
{"proto":"tcp","port":1.5}|{"error":"port must be a number from 1 to 65535, not '1.500000'"}
{"proto":"tcp","port":80,"id":3}|{"error":"delete takes proto and port, or id, not both"}
{"id":"$(reboot)"}|{"error":"id must be a mapping's id (a number), not '$(reboot)'"}
EOF
	echo '{}' >"$ROOT/in"
	rpcd_call call reboot <"$ROOT/in"
	answer 1 "{\"error\":\"unknown method 'reboot' (status, list or delete)\"}"
	rpcd_call </dev/null
	[ "$rc" = 2 ] || fail "no arguments: exit status $rc, want 2"
	ok $f0

	begin "rpcd: pcpgw's own checks (port range) come back as errors"
	f0=$fails
	uci set pcpgw.main.socket="$ROOT/var/run/none.sock"
	echo '{"proto":"udp","port":70000}' >"$ROOT/in"
	rpcd_call call delete <"$ROOT/in"
	answer 1 '{"error":"port \"70000\" is not a number from 1 to 65535"}'
	ok $f0
fi

begin "config: the shipped /etc/config/pcpgw"
f0=$fails
check_config
ok $f0

echo "$cases cases, $fails failures"
[ "$fails" = 0 ]
