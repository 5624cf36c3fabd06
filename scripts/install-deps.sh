#!/bin/sh
# Installs everything `make demo` and `make test` need on a Debian 12 host:
# the desktop's packages, the sandbox, the browser and viewer used by the
# live view and its tests, and the tools that build the desktop image.
# Idempotent and quiet when all is present.
set -eu
here=$(dirname "$0")

[ "$(id -u)" = 0 ] || { echo "install-deps: run as root (apt-get)" >&2; exit 1; }
"$here/../desktop/install-deps.sh"

# gcc, libc6-dev: desktop/frameclock (the library that lets an idle sway sleep).
# containernetworking-plugins, containerd, openssl, curl, iptables: the test cluster
# of the kube runtime (scripts/kube-cluster.sh).
PACKAGES="gcc libc6-dev bubblewrap chromium novnc debootstrap libxkbcommon-tools make git ca-certificates e2fsprogs containernetworking-plugins containerd openssl curl iptables"
missing=""
for p in $PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "host: installing$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends $missing
fi
