# Test stub of OpenWrt's /lib/functions/network.sh: network_get_device
# answers from $STUB_NETWORK, lines "LOGICAL DEVICE" (a logical network that
# is up); anything else has no device, as a network that is down.
network_get_device() {
	local __l __d
	eval "$1=''"
	[ -f "$STUB_NETWORK" ] || return 1
	while read -r __l __d; do
		if [ "$__l" = "$2" ] && [ -n "$__d" ]; then
			eval "$1=\$__d"
			return 0
		fi
	done <"$STUB_NETWORK"
	return 1
}
