#!/bin/sh
# The demo (`make demo`, after deps and build): runs the fleet on the local
# runtime, creates one session, waits for its desktop, saves a screenshot,
# prints where to look (the live view's link too), and keeps the fleet in
# the foreground until Ctrl-C.
# Desktops outlive the fleet: the next `make demo` re-adopts them.
set -eu
cd "$(dirname "$0")/.."

port=${FLEET_PORT:-8090}
url=http://127.0.0.1:$port
data=${ATELIER_DATA_DIR:-$PWD/.data}
# The desktops run as the user atelier, who must be able to reach their
# directories: the data dir is traversable, not readable.
mkdir -p "$data"
chmod 711 "$data"

ATELIER_PUBLIC_URL="$url" bin/atelier serve --addr "127.0.0.1:$port" --data-dir "$data" --runtime local &
fleet=$!
trap 'kill "$fleet" 2>/dev/null; wait "$fleet" 2>/dev/null; exit 0' INT TERM
trap 'kill "$fleet" 2>/dev/null' EXIT

export ATELIER_URL="$url"
tries=0
until bin/atelier session ls >/dev/null 2>&1; do
  tries=$((tries + 1))
  if [ "$tries" -gt 100 ] || ! kill -0 "$fleet" 2>/dev/null; then
    echo "demo: the fleet did not start; see its log above" >&2
    exit 1
  fi
  sleep 0.1
done

created=$(bin/atelier session create --label demo --timeout 120s --json)
id=$(printf '%s\n' "$created" | sed -n 's/^  "id": "\(sess_[a-z2-7]*\)",$/\1/p')
embed=$(printf '%s\n' "$created" | sed -n 's/^  "embed_url": "\([^"]*\)",\{0,1\}$/\1/p')
[ -n "$id" ] || { echo "demo: no session was created" >&2; exit 1; }
shot="$data/$id.png"
bin/atelier session screenshot "$id" -o "$shot" >/dev/null

cat <<MSG

  Atelier is running.
    API        $url   (try: curl $url/sessions)
    session    $id
    screenshot $shot
    live view  $embed
               (open it in a browser on this machine; the link carries its own token)

  Drive it:  echo '{"action":"key","text":"super+Return"}' | ATELIER_URL=$url bin/atelier act $id
  Look:      ATELIER_URL=$url bin/atelier session screenshot $id -o shot.png

  Ctrl-C stops the fleet; the desktop keeps running and is re-adopted next time.

MSG
wait "$fleet"
