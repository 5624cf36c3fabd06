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

# The API token: made once, random, readable by this user only, and reused
# by every later demo (so a CLI set up once keeps working).
tokenfile="$data/api-token"
if [ ! -s "$tokenfile" ]; then
  (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$tokenfile.new" && mv "$tokenfile.new" "$tokenfile")
fi
chmod 600 "$tokenfile"
ATELIER_API_TOKEN=$(cat "$tokenfile")
export ATELIER_API_TOKEN

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
# Ready means every component answers; the bar draws a moment later, so
# the screenshot waits until the screen is still.
echo '{"action":"settle","quiet":0.3,"duration":3}' | bin/atelier act "$id" >/dev/null
bin/atelier session screenshot "$id" -o "$shot" >/dev/null

cat <<MSG

  Atelier is running.
    API        $url
    token      $tokenfile   (0600; kept for the next demo)
    session    $id
    screenshot $shot
    live view  $embed
               (open it in a browser on this machine; the link carries its own
               embed token, valid for an hour; revoke every link of the session
               with: bin/atelier session revoke-links $id)

  Use the API from another shell:
    export ATELIER_URL=$url ATELIER_API_TOKEN=\$(cat $tokenfile)
    bin/atelier session ls
    echo '{"action":"key","text":"super+Return"}' | bin/atelier act $id
    bin/atelier session screenshot $id -o shot.png
    curl -H "Authorization: Bearer \$ATELIER_API_TOKEN" $url/sessions

  Ctrl-C stops the fleet; the desktop keeps running and is re-adopted next time.

MSG
wait "$fleet"
