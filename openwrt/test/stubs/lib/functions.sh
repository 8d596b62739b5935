# Test stub of OpenWrt's /lib/functions.sh: the UCI helpers the package's
# scripts use, over the uci stub's export (as the real config_load does
# with uci_load).
CONFIG_SECTIONS=""
CONFIG_SECTION=""

package() { :; }

config() {
	CONFIG_SECTION="$2"
	CONFIG_SECTIONS="$CONFIG_SECTIONS $2"
	eval "CONFIG_${2}_TYPE=\$1"
}

option() {
	eval "CONFIG_${CONFIG_SECTION}_$1=\$2"
}

list() {
	local len
	eval "len=\${CONFIG_${CONFIG_SECTION}_$1_LENGTH:-0}"
	len=$((len + 1))
	eval "CONFIG_${CONFIG_SECTION}_$1_ITEM$len=\$2"
	eval "CONFIG_${CONFIG_SECTION}_$1_LENGTH=$len"
	eval "CONFIG_${CONFIG_SECTION}_$1=\"\${CONFIG_${CONFIG_SECTION}_$1:+\${CONFIG_${CONFIG_SECTION}_$1} }\$2\""
}

config_load() {
	local out
	out=$(uci -q export "$1") || return 1
	eval "$out"
}

# config_get VAR SECTION OPTION [DEFAULT]
config_get() {
	eval "$1=\${CONFIG_${2}_${3}:-\$4}"
}

config_get_bool() {
	local _v
	config_get _v "$2" "$3" "$4"
	case "$_v" in
	1 | on | true | yes | enabled) _v=1 ;;
	0 | off | false | no | disabled) _v=0 ;;
	*) _v="$4" ;;
	esac
	eval "$1=\$_v"
}

config_foreach() {
	local fn="$1" type="$2" s t
	shift 2
	for s in $CONFIG_SECTIONS; do
		eval "t=\$CONFIG_${s}_TYPE"
		[ -z "$type" ] || [ "$t" = "$type" ] && "$fn" "$s" "$@"
	done
}

config_list_foreach() {
	local sec="$1" opt="$2" fn="$3" len i v
	shift 3
	eval "len=\${CONFIG_${sec}_${opt}_LENGTH:-0}"
	i=1
	while [ "$i" -le "$len" ]; do
		eval "v=\$CONFIG_${sec}_${opt}_ITEM$i"
		"$fn" "$v" "$@"
		i=$((i + 1))
	done
}
