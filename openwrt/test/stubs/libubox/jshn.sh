# Test stand-in for libubox's /usr/share/libubox/jshn.sh (Debian has no
# libubox), POSIX sh: the functions the package's scripts use, with
# jshn.sh's calling conventions:
#
#   json_init                      start an empty object
#   json_add_string|int|boolean|double NAME VALUE, json_add_null NAME
#   json_add_object|array NAME ... json_close_object|array
#   json_dump                      print the object as one line of JSON
#   json_load JSON                 eval "$(jshn -r JSON)": replaces the
#                                  object (nothing, and status 0, for bad
#                                  JSON: jshn fails and eval runs nothing)
#   json_get_var VAR NAME [DEFAULT], json_get_type VAR NAME
#                                  a member of the top-level object; 1 when
#                                  there is none (and no DEFAULT)
#
# json_get_* see the top-level members only, which is all the scripts
# read. The JSON text is built as the functions are called.

_jshn_quote() {
	printf '"'
	printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/\t/\\t/g' -e 's/\r/\\r/g' |
		awk 'NR > 1 { printf "%s", "\\n" } { printf "%s", $0 }'
	printf '"'
}

# _jshn_put NAME JSONVALUE: a member of the open object or array.
_jshn_put() {
	local sep=","
	[ "$_JSHN_FIRST" = 1 ] && sep=""
	_JSHN_FIRST=0
	if [ "$_JSHN_IN" = array ]; then
		_JSHN_OUT="$_JSHN_OUT$sep$2"
	else
		_JSHN_OUT="$_JSHN_OUT$sep$(_jshn_quote "$1"):$2"
	fi
	if [ "$_JSHN_DEPTH" = 0 ]; then
		local key
		key=$(printf '%s' "$1" | tr -c 'a-zA-Z0-9_' '_')
		eval "_JSHN_V_$key=\$3; _JSHN_T_$key=\$4"
		_JSHN_KEYS="$_JSHN_KEYS $key"
	fi
}

json_cleanup() {
	local k
	for k in $_JSHN_KEYS; do
		unset "_JSHN_V_$k" "_JSHN_T_$k"
	done
	_JSHN_KEYS="" _JSHN_OUT="" _JSHN_FIRST=1 _JSHN_DEPTH=0 _JSHN_IN=object _JSHN_STACK=""
}

json_init() { json_cleanup; }

json_add_string() { _jshn_put "$1" "$(_jshn_quote "$2")" "$2" string; }
json_add_int() { _jshn_put "$1" "$(printf '%d' "$2")" "$2" int; }
json_add_double() { _jshn_put "$1" "$2" "$2" double; }
json_add_null() { _jshn_put "$1" null "" null; }
json_add_boolean() {
	case "$2" in
	0) _jshn_put "$1" false 0 boolean ;;
	*) _jshn_put "$1" true 1 boolean ;;
	esac
}

_jshn_open() { # NAME object|array
	local open="{"
	[ "$2" = array ] && open="["
	_jshn_put "$1" "$open" "" "$2"
	_JSHN_STACK="$_JSHN_IN $_JSHN_STACK"
	_JSHN_IN="$2" _JSHN_FIRST=1 _JSHN_DEPTH=$((_JSHN_DEPTH + 1))
}
_jshn_close() {
	local close="}"
	[ "$_JSHN_IN" = array ] && close="]"
	_JSHN_OUT="$_JSHN_OUT$close"
	_JSHN_IN="${_JSHN_STACK%% *}" _JSHN_STACK="${_JSHN_STACK#* }"
	_JSHN_FIRST=0 _JSHN_DEPTH=$((_JSHN_DEPTH - 1))
}
json_add_object() { _jshn_open "$1" object; }
json_close_object() { _jshn_close; }
json_add_array() { _jshn_open "$1" array; }
json_close_array() { _jshn_close; }

json_dump() { printf '{%s}\n' "$_JSHN_OUT"; }

json_load() { eval "$(jshn -r "$1")"; }

json_get_var() {
	local key
	key=$(printf '%s' "$2" | tr -c 'a-zA-Z0-9_' '_')
	if eval "[ -n \"\${_JSHN_T_$key+x}\" ]"; then
		eval "$1=\$_JSHN_V_$key"
		return 0
	fi
	eval "$1=\${3-}"
	[ $# -ge 3 ]
}

json_get_type() {
	local key
	key=$(printf '%s' "$2" | tr -c 'a-zA-Z0-9_' '_')
	eval "$1=\${_JSHN_T_$key-}"
	eval "[ -n \"\${_JSHN_T_$key+x}\" ]"
}

json_cleanup
