# pcpgw: shared functions of the DHCP client hooks (sourced; POSIX sh).
#
# /etc/udhcpc.user.d/pcpgw (DHCPv4, udhcpc through netifd's dhcp.script)
# and /etc/odhcp6c.user.d/pcpgw (DHCPv6, odhcp6c through dhcpv6.script)
# hand the provider's PCP server to pcpgw (RFC 7291, RFC 6334):
#
#   DHCPv4 option 158 (OPTION_V4_PCP_SERVER): busybox udhcpc exports an
#     option it has no name for as $opt158, the option's payload in hex
#     ("0464400001" for one list of one address, 100.64.0.1; busybox
#     writes upper-case digits). netifd asks for it only with
#     option reqopts '158'  on the wan interface in /etc/config/network.
#     Payload: one or more lists, each a length octet then that many
#     octets of IPv4 addresses (one PCP server's addresses per list).
#   DHCPv6 option 86 (OPTION_V6_PCP_SERVER): odhcp6c exports an option it
#     does not decode as $OPTION_86, in hex; netifd asks for it with
#     option reqopts '86'  on the wan6 interface. Payload: 16-octet IPv6
#     addresses; an IPv4-mapped one (::ffff:a.b.c.d) names an IPv4 server.
#   DHCPv6 option 64 (AFTR name, DS-Lite): odhcp6c decodes it into $AFTR.
#
# The servers go to pcpgw's servers file (option pcp_servers_file, default
# /var/run/pcpgw/pcp-servers), one address per line; pcpgw re-reads it when
# it changes, without a restart. Each source keeps its own part in
# <file>.d/<source> (dhcp4-wan, dhcp6-wan6...), merged into the file, which
# is rewritten only when its content changes. A new AFTR name is stored
# in /etc/config/pcpgw (option aftr_name) and pcpgw reloaded, which looks
# it up and asks the AFTR's PCP server from then on, without a restart.

PCPGW_INIT="${IPKG_INSTROOT}/etc/init.d/pcpgw"

pcpgw_servers_file() {
	local f
	f=$(uci -q get pcpgw.main.pcp_servers_file)
	echo "${f:-/var/run/pcpgw/pcp-servers}"
}

# pcpgw_hook_wanted LOGICAL DEVICE: true when the DHCP event is about the
# WAN pcpgw uses (its wan or wan6 option names the logical interface or the
# device), or when those options are not set.
pcpgw_hook_wanted() {
	local wan wan6 w
	wan=$(uci -q get pcpgw.main.wan)
	wan6=$(uci -q get pcpgw.main.wan6)
	[ -z "$wan$wan6" ] && return 0
	for w in $wan $wan6; do
		[ "$w" = "$1" ] || [ "$w" = "$2" ] && return 0
	done
	return 1
}

# pcpgw_hex_clean HEX: lower-case hex digits only (drops separators).
pcpgw_hex_clean() {
	printf '%s' "$1" | tr 'A-F' 'a-f' | tr -cd '0-9a-f'
}

# pcpgw_dhcp4_servers HEX: the addresses of an option 158 payload, one a
# line. A malformed payload prints the lists before the fault and fails.
pcpgw_dhcp4_servers() {
	local hex len i a
	hex=$(pcpgw_hex_clean "$1")
	while [ -n "$hex" ]; do
		[ ${#hex} -ge 2 ] || return 1
		len=$((0x${hex%"${hex#??}"}))
		hex=${hex#??}
		# Each list is whole IPv4 addresses, at least one.
		[ "$len" -ge 4 ] && [ $((len % 4)) = 0 ] && [ ${#hex} -ge $((len * 2)) ] || return 1
		i=0
		while [ "$i" -lt "$len" ]; do
			a=$((0x${hex%"${hex#??}"})).$((0x$(echo "$hex" | cut -c3-4))).$((0x$(echo "$hex" | cut -c5-6))).$((0x$(echo "$hex" | cut -c7-8)))
			echo "$a"
			hex=${hex#????????}
			i=$((i + 4))
		done
	done
}

# pcpgw_dhcp6_servers HEX: the addresses of an option 86 payload, one a
# line; IPv4-mapped addresses are printed as IPv4.
pcpgw_dhcp6_servers() {
	local hex a
	hex=$(pcpgw_hex_clean "$1")
	[ $((${#hex} % 32)) = 0 ] || return 1
	while [ -n "$hex" ]; do
		a=$(echo "$hex" | cut -c1-32)
		hex=${hex#"$a"}
		case "$a" in
		00000000000000000000ffff*)
			a=${a#00000000000000000000ffff}
			echo "$((0x$(echo "$a" | cut -c1-2))).$((0x$(echo "$a" | cut -c3-4))).$((0x$(echo "$a" | cut -c5-6))).$((0x$(echo "$a" | cut -c7-8)))"
			;;
		*)
			# Eight groups, leading zeros dropped (not compressed: pcpgw
			# parses any valid form).
			echo "$a" | awk '{ s = ""
				for (i = 1; i <= 32; i += 4) {
					g = substr($0, i, 4); sub(/^0+/, "", g)
					s = s (i > 1 ? ":" : "") (g == "" ? "0" : g)
				}
				print s }'
			;;
		esac
	done
}

# pcpgw_servers_update SOURCE [ADDR...]: set (or, without addresses, clear)
# SOURCE's servers and rewrite the servers file if its content changed.
pcpgw_servers_update() {
	local src="$1" file dir part tmp a
	shift
	file=$(pcpgw_servers_file)
	dir="$file.d"
	mkdir -p "$dir" || return 1
	if [ $# -gt 0 ]; then
		printf '%s\n' "$@" >"$dir/$src.tmp" && mv -f "$dir/$src.tmp" "$dir/$src"
	else
		rm -f "$dir/$src"
	fi
	tmp="$file.tmp.$$"
	: >"$tmp"
	for part in "$dir"/*; do
		[ -f "$part" ] || continue
		case "$part" in *.tmp) continue ;; esac
		while read -r a; do
			[ -n "$a" ] || continue
			grep -qxF "$a" "$tmp" || echo "$a" >>"$tmp"
		done <"$part"
	done
	if [ -f "$file" ] && cmp -s "$tmp" "$file"; then
		rm -f "$tmp"
	else
		mv -f "$tmp" "$file"
	fi
}

# pcpgw_udhcpc ACTION: the udhcpc hook (env: INTERFACE, interface, opt158).
pcpgw_udhcpc() {
	local servers
	# shellcheck disable=SC2154 # set by udhcpc
	pcpgw_hook_wanted "$INTERFACE" "$interface" || return 0
	case "$1" in
	bound | renew)
		servers=""
		if [ -n "$opt158" ]; then
			if ! servers=$(pcpgw_dhcp4_servers "$opt158"); then
				logger -t pcpgw "DHCPv4 option 158 on $INTERFACE malformed: $opt158" 2>/dev/null
			fi
		fi
		# shellcheck disable=SC2086 # one address per word
		pcpgw_servers_update "dhcp4-${INTERFACE:-$interface}" $servers
		;;
	deconfig | leasefail | nak)
		pcpgw_servers_update "dhcp4-${INTERFACE:-$interface}"
		;;
	esac
}

# pcpgw_odhcp6c DEVICE STATE: the odhcp6c hook (env: INTERFACE, OPTION_86,
# AFTR).
pcpgw_odhcp6c() {
	local servers cur
	pcpgw_hook_wanted "$INTERFACE" "$1" || return 0
	case "$2" in
	bound | informed | updated | rebound | ra-updated)
		servers=""
		if [ -n "$OPTION_86" ]; then
			if ! servers=$(pcpgw_dhcp6_servers "$OPTION_86"); then
				logger -t pcpgw "DHCPv6 option 86 on $INTERFACE malformed: $OPTION_86" 2>/dev/null
			fi
		fi
		# ra-updated events carry no DHCPv6 options: keep what we have.
		if [ "$2" != ra-updated ] || [ -n "$servers" ]; then
			# shellcheck disable=SC2086
			pcpgw_servers_update "dhcp6-${INTERFACE:-$1}" $servers
		fi
		if [ -n "$AFTR" ]; then
			cur=$(uci -q get pcpgw.main.aftr_name)
			if [ "$AFTR" != "$cur" ]; then
				uci set pcpgw.main.aftr_name="$AFTR"
				uci commit pcpgw
				"$PCPGW_INIT" enabled && "$PCPGW_INIT" reload
			fi
		fi
		;;
	started | stopped | unbound)
		pcpgw_servers_update "dhcp6-${INTERFACE:-$1}"
		;;
	esac
	return 0
}
