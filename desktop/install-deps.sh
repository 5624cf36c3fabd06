#!/bin/sh
# Installs what one desktop runs, from Debian's packages, and the
# unprivileged user desktops run as. Idempotent: when everything is present
# it changes nothing and does not touch the network. Used by `make`, by the
# local runtime's hosts and by desktop/Dockerfile.
set -eu

PACKAGES="sway wayvnc foot waybar swaybg grim wtype wl-clipboard firefox-esr \
  fonts-dejavu-core fonts-noto-core fonts-noto-color-emoji fonts-noto-cjk \
  xkb-data adwaita-icon-theme ca-certificates curl"

missing=""
for p in $PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "desktop: installing$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends $missing
fi

# Sway refuses to run as root: desktops run as this user.
if ! id atelier >/dev/null 2>&1; then
  useradd --system --create-home --home-dir /var/lib/atelier-desktop --shell /usr/sbin/nologin atelier
fi
