#!/bin/sh
# Renders luci-app-pcpgw's view and status include in headless Chromium,
# with LuCI stood in for by stub.js and the ubus answers by data.js (there
# is no LuCI runtime here), and writes the page as a PNG:
#
#   sh openwrt/test/luci/screenshot.sh [OUT.png]
#
# (default openwrt/luci-app-pcpgw/screenshot.png). Serves openwrt/ on a
# free loopback port for the time of the shot.
set -eu
TOP="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="${1:-$TOP/luci-app-pcpgw/screenshot.png}"
W=$(mktemp -d "${TMPDIR:-/tmp}/pcpgw-shot.XXXXXX")
python3 - "$TOP" "$W/port" 2>/dev/null <<'PY' &
import functools, http.server, sys
h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
h.log_message = lambda *a: None
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), h)
open(sys.argv[2] + ".tmp", "w").write(str(s.server_address[1]))
__import__("os").rename(sys.argv[2] + ".tmp", sys.argv[2])
s.serve_forever()
PY
srv=$!
trap 'kill $srv 2>/dev/null; rm -rf "$W"' EXIT INT TERM
i=0
while [ ! -s "$W/port" ]; do
	i=$((i + 1))
	[ $i -le 50 ] || { echo "$0: the HTTP server did not start" >&2; exit 1; }
	sleep 0.1
done
chromium --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
	--disable-component-update --disable-sync --user-data-dir="$W/profile" --hide-scrollbars \
	--window-size=1200,1900 --virtual-time-budget=5000 --screenshot="$OUT" \
	"http://127.0.0.1:$(cat "$W/port")/test/luci/index.html" 2>"$W/chromium.log" || { cat "$W/chromium.log" >&2; exit 1; }
echo "$OUT"
