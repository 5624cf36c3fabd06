#!/bin/bash
# A real single-node Kubernetes cluster for the kube runtime's tests, made of
# unmodified upstream components built from the Go module proxy:
#   etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet,
#   kube-proxy, a separate containerd instance (Debian's, CRI plugin on),
#   Debian's CNI plugins (bridge + firewall + portmap) and a locally built
#   pause image. Images are copied in with `docker save | ctr import`.
#
#   scripts/kube-cluster.sh build          build + cache the binaries (once per version)
#   scripts/kube-cluster.sh up [IMAGE...]  start the cluster, import IMAGEs
#   scripts/kube-cluster.sh import IMAGE... copy Docker images into the running cluster
#   scripts/kube-cluster.sh down           stop it and restore the host
#   scripts/kube-cluster.sh env            print KUBECONFIG=, DIR= and NODE= of a running cluster
#
# Binaries are cached outside the repository in $ATELIER_KUBE_CACHE
# (default /var/cache/atelier/kube/$KUBE_VERSION); the cluster's state lives
# in $ATELIER_KUBE_DIR (default /var/lib/atelier-kube). Everything `up` changes on
# the host (sysctls, iptables chains, cgroups, the kubelet's fixed paths) is
# put back by `down`. Needs root, Docker (for images), containerd, runc and
# containernetworking-plugins (scripts/install-deps.sh installs them).
#
# Not for a machine that runs another kubelet or CRI runtime: `down` removes
# the fixed paths every kubelet and libcni use (/var/lib/kubelet, /var/lib/cni).
set -euo pipefail
export PATH="/usr/local/go/bin:$PATH"

KUBE_VERSION=${KUBE_VERSION:-v1.34.4}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
CRICTL_VERSION=${CRICTL_VERSION:-v1.34.0}
CACHE=${ATELIER_KUBE_CACHE:-/var/cache/atelier/kube/$KUBE_VERSION}
BIN=$CACHE/bin
S=${ATELIER_KUBE_DIR:-/var/lib/atelier-kube}
NODE=atelier-node
BRIDGE=katelier0
POD_CIDR=10.88.7.0/24
TOKEN=atelier-admin-token
CNI_BIN=/usr/lib/cni
COMPONENTS="kubelet kube-apiserver kube-controller-manager kube-scheduler kube-proxy"

log() { printf '%s kube-cluster: %s\n' "$(date +%T)" "$*" >&2; }
die() { log "$*"; exit 1; }

# ---------------------------------------------------------------- build ---
# k8s.io/kubernetes cannot be `go install`ed (its go.mod replaces the staging
# modules with local paths the module zip lacks), so a consumer module pins
# every staging module to the published k8s.io/X v0.MINOR.PATCH instead.
build() {
  local all=1 c
  for c in $COMPONENTS etcd crictl; do [ -x "$BIN/$c" ] || all=0; done
  [ $all = 1 ] && { log "binaries cached in $BIN"; return; }
  mkdir -p "$CACHE/build/k8s" "$CACHE/build/etcd" "$BIN"
  local t0=$SECONDS staging=v0.${KUBE_VERSION#v1.}
  local minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
  cd "$CACHE/build/k8s"
  go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" >/dev/null
  local d; d=$(go env GOMODCACHE)/k8s.io/kubernetes@$KUBE_VERSION
  { echo "module atelier.local/kube-build"; echo; echo "go 1.24.0"; echo
    echo "require k8s.io/kubernetes $KUBE_VERSION"; echo; echo "replace ("
    grep -E '^\s*k8s.io/.* => ./staging' "$d/go.mod" | awk -v v="$staging" '{print "\t" $1 " => " $1 " " v}'
    echo ")"; } > go.mod
  local pkgs=() 
  for c in $COMPONENTS; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
  go get "${pkgs[@]/%/@$KUBE_VERSION}" >/dev/null
  local ld="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
  log "building $COMPONENTS $KUBE_VERSION (about 8 min cold)"
  go build -trimpath -ldflags "$ld" -o "$BIN/" "${pkgs[@]}"
  cd "$CACHE/build/etcd"
  printf 'module atelier.local/etcd-build\n\ngo 1.24\n' > go.mod
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null
  go build -trimpath -ldflags "-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3
  GOBIN=$BIN go install -trimpath -ldflags "-s -w" "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION"
  log "built in $((SECONDS - t0)) s: $("$BIN/kubelet" --version)"
}

# ------------------------------------------------------------------ up ---
node_ip() { ip -4 route get 1.1.1.1 | awk '{for(i=1;i<=NF;i++) if($i=="src") print $(i+1)}'; }
running() { [ -f "$S/$1.pid" ] && kill -0 "$(cat "$S/$1.pid")" 2>/dev/null; }
api() { curl -sk --max-time 2 -H "Authorization: Bearer $TOKEN" "https://127.0.0.1:6443$1"; }
# wait_for WHAT SECONDS CMD...: polls CMD every 0.2 s (the processes announce nothing).
wait_for() {
  local what=$1 n=$(( $2 * 5 )); shift 2
  until "$@" >/dev/null 2>&1; do
    n=$((n - 1)); [ $n -gt 0 ] || die "$what: not up in time (logs in $S/logs)"; sleep 0.2
  done
  log "$what"
}
start() { # start NAME CMD...: a daemon, its pid in $S/NAME.pid, its log in $S/logs
  local name=$1; shift
  nohup "$@" > "$S/logs/$name.log" 2>&1 &
  echo $! > "$S/$name.pid"
}

write_configs() {
  local ip=$1
  mkdir -p "$S"/{logs,pki,containerd/root,containerd/state,containerd/runc,cni/net.d,cni/ipam,kubelet/pki,pod-logs,volumes}
  cat > "$S/containerd/config.toml" <<TOML
version = 2
root = "$S/containerd/root"
state = "$S/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$S/containerd/containerd.sock"
[ttrpc]
  address = ""
[debug]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "docker.io/atelier/kube-pause:1"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  # Root may lack CAP_SYS_RESOURCE (as in Firecracker VMs): runc then cannot
  # lower a sandbox's oom_score_adj to the -998 the kubelet asks for.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$S/containerd/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN"
    conf_dir = "$S/cni/net.d"
TOML
  # firewall: Docker sets FORWARD's policy to DROP and br_netfilter filters
  # bridged traffic, so pod-to-pod needs the plugin's per-pod ACCEPTs.
  cat > "$S/cni/net.d/10-atelier.conflist" <<JSON
{"cniVersion": "1.0.0", "name": "atelier-kube", "plugins": [
  {"type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": true, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$S/cni/ipam"}},
  {"type": "firewall"},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
JSON
  cat > "$S/kubelet/config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://$S/containerd/containerd.sock
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
address: $ip
port: 10250
healthzBindAddress: 127.0.0.1
healthzPort: 10248
readOnlyPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $S/pki/ca.crt}
authorization: {mode: Webhook}
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
podLogsDir: $S/pod-logs
volumePluginDir: $S/kubelet/volume-plugins
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
serializeImagePulls: false
maxPods: 40
YAML
  cat > "$S/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $S/admin.kubeconfig}
mode: iptables
hostnameOverride: $NODE
clusterCIDR: $POD_CIDR
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
iptables: {localhostNodePorts: false}
YAML
  printf 'runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\ntimeout: 10\n' "$S/containerd/containerd.sock" "$S/containerd/containerd.sock" > "$S/crictl.yaml"
}

# pki: a CA, the apiserver's serving cert, the apiserver's client cert for
# the kubelet, the service-account key and static tokens (openssl only).
write_pki() {
  local ip=$1 p=$S/pki
  (cd "$p"
   openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 30 -subj "/CN=atelier-kube-ca"
   openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver"
   printf 'subjectAltName=IP:127.0.0.1,IP:10.0.0.1,IP:%s,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n' "$ip" > apiserver.ext
   openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out apiserver.crt -days 30 -extfile apiserver.ext
   openssl req -newkey rsa:2048 -nodes -keyout kubelet-client.key -out kubelet-client.csr -subj "/O=system:masters/CN=kube-apiserver-kubelet-client"
   printf 'extendedKeyUsage=clientAuth\n' > client.ext
   openssl x509 -req -in kubelet-client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out kubelet-client.crt -days 30 -extfile client.ext
   openssl genrsa -out sa.key 2048 && openssl rsa -in sa.key -pubout -out sa.pub
   printf '%s,admin,admin,system:masters\natelier-kubelet-token,system:node:%s,kubelet,system:nodes\n' "$TOKEN" "$NODE" > tokens.csv
  ) >/dev/null 2>&1 || die "pki: openssl failed"
  local u
  for u in admin:$TOKEN kubelet:atelier-kubelet-token; do
    cat > "$S/${u%%:*}.kubeconfig" <<YAML
apiVersion: v1
kind: Config
clusters:
- name: atelier
  cluster: {server: "https://127.0.0.1:6443", certificate-authority: $p/ca.crt}
users:
- name: ${u%%:*}
  user: {token: ${u#*:}}
contexts:
- name: atelier
  context: {cluster: atelier, user: ${u%%:*}}
current-context: atelier
YAML
  done
}

# pause_image builds the sandbox image from internal/runtime/kube/kubetest/pause.
pause_image() {
  local d=$S/pause repo; repo=$(cd "$(dirname "$0")/.." && pwd)
  mkdir -p "$d"
  (cd "$repo" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$d/pause" ./internal/runtime/kube/kubetest/pause)
  printf 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n' > "$d/Dockerfile"
  DOCKER_BUILDKIT=0 docker build -q -t atelier/kube-pause:1 "$d" >/dev/null 2>&1
}

import_image() {
  local t=$SECONDS
  docker save "$1" | ctr -a "$S/containerd/containerd.sock" -n k8s.io images import - >/dev/null
  log "imported $1 in $((SECONDS - t)) s"
}

up() {
  [ "$(id -u)" = 0 ] || die "up: run as root"
  local c
  for c in $COMPONENTS etcd; do [ -x "$BIN/$c" ] || die "up: $BIN/$c missing: run '$0 build' first"; done
  for c in containerd runc ctr docker openssl curl; do command -v $c >/dev/null || die "up: $c missing (scripts/install-deps.sh)"; done
  [ -x "$CNI_BIN/bridge" ] || die "up: $CNI_BIN/bridge missing: apt-get install containernetworking-plugins"
  if running apiserver; then log "already up ($S)"; return; fi
  (down) >/dev/null 2>&1 || true # the leftovers of a run that was killed (a subshell: down turns errexit off)
  local ip; ip=$(node_ip); [ -n "$ip" ] || die "up: no IPv4 default route (the kubelet needs a non-loopback node IP)"
  mkdir -p "$S"
  # What the kubelet changes and down puts back.
  echo "vm.overcommit_memory=$(sysctl -n vm.overcommit_memory) kernel.panic=$(sysctl -n kernel.panic) kernel.panic_on_oops=$(sysctl -n kernel.panic_on_oops)" > "$S/sysctl.orig"
  write_configs "$ip"
  write_pki "$ip"
  export KUBECONFIG=$S/admin.kubeconfig
  start containerd containerd --config "$S/containerd/config.toml"
  wait_for "containerd up" 20 ctr -a "$S/containerd/containerd.sock" version
  pause_image
  import_image atelier/kube-pause:1
  for c in "$@"; do import_image "$c"; done
  start etcd "$BIN/etcd" --name atelier --data-dir "$S/etcd-data" --unsafe-no-fsync \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster atelier=http://127.0.0.1:2380 --listen-metrics-urls ""
  wait_for "etcd healthy" 30 sh -c 'curl -s --max-time 1 http://127.0.0.1:2379/health | grep -q true'
  local p=$S/pki
  start apiserver "$BIN/kube-apiserver" --etcd-servers=http://127.0.0.1:2379 --bind-address=127.0.0.1 --secure-port=6443 \
    --advertise-address=127.0.0.1 --tls-cert-file=$p/apiserver.crt --tls-private-key-file=$p/apiserver.key \
    --client-ca-file=$p/ca.crt --token-auth-file=$p/tokens.csv --authorization-mode=Node,RBAC \
    --enable-admission-plugins=NodeRestriction \
    --service-account-issuer=https://kubernetes.default.svc --service-account-key-file=$p/sa.pub \
    --service-account-signing-key-file=$p/sa.key --service-cluster-ip-range=10.0.0.0/24 \
    --endpoint-reconciler-type=none \
    --kubelet-client-certificate=$p/kubelet-client.crt --kubelet-client-key=$p/kubelet-client.key \
    --kubelet-preferred-address-types=InternalIP
  wait_for "kube-apiserver ready" 60 sh -c "curl -sk --max-time 1 -H 'Authorization: Bearer $TOKEN' https://127.0.0.1:6443/readyz | grep -q ok"
  start controller-manager "$BIN/kube-controller-manager" --kubeconfig=$KUBECONFIG --authentication-kubeconfig=$KUBECONFIG \
    --authorization-kubeconfig=$KUBECONFIG --service-account-private-key-file=$p/sa.key --root-ca-file=$p/ca.crt \
    --use-service-account-credentials=true --leader-elect=false --bind-address=127.0.0.1 \
    --cluster-signing-cert-file=$p/ca.crt --cluster-signing-key-file=$p/ca.key
  start scheduler "$BIN/kube-scheduler" --kubeconfig=$KUBECONFIG --authentication-kubeconfig=$KUBECONFIG \
    --authorization-kubeconfig=$KUBECONFIG --leader-elect=false --bind-address=127.0.0.1
  start kubelet "$BIN/kubelet" --config="$S/kubelet/config.yaml" --kubeconfig="$S/kubelet.kubeconfig" --root-dir="$S/kubelet" \
    --cert-dir="$S/kubelet/pki" --hostname-override=$NODE --node-ip="$ip"
  wait_for "node $NODE Ready" 60 sh -c "curl -sk --max-time 1 -H 'Authorization: Bearer $TOKEN' https://127.0.0.1:6443/api/v1/nodes/$NODE | tr -d ' \\n' | grep -q '\"type\":\"Ready\",\"status\":\"True\"'"
  start kube-proxy "$BIN/kube-proxy" --config="$S/kube-proxy.yaml"
  wait_for "default ServiceAccount" 60 sh -c "curl -sk --max-time 1 -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer $TOKEN' https://127.0.0.1:6443/api/v1/namespaces/default/serviceaccounts/default | grep -q 200"
  log "up: KUBECONFIG=$KUBECONFIG"
}

# ---------------------------------------------------------------- down ---
stop() { # stop NAME: SIGTERM, then SIGKILL after 30 s; waits, so ports are free after
  local f=$S/$1.pid p i
  [ -f "$f" ] || return 0
  p=$(cat "$f")
  if kill -0 "$p" 2>/dev/null; then
    kill "$p" 2>/dev/null
    for i in $(seq 150); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$p" 2>/dev/null && { log "SIGKILL $1"; kill -9 "$p" 2>/dev/null; }
  fi
  rm -f "$f"
}

down() {
  set +e # best effort: every step runs, whatever failed before it
  [ -d "$S" ] || { log "down: nothing at $S"; return; }
  # Pods first, through the CRI, so each sandbox's network is torn down (CNI DEL).
  stop kubelet
  running containerd && "$BIN/crictl" -c "$S/crictl.yaml" rmp -fa >/dev/null 2>&1 || true
  stop kube-proxy; stop scheduler; stop controller-manager; stop apiserver; stop etcd
  [ -x "$BIN/kube-proxy" ] && "$BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true
  stop containerd
  local p m n c ipt t
  # Shims of our containerd outlive it.
  for p in $(ps -eo pid=,args= | awk -v s="$S/containerd/containerd.sock" '/containerd-shim-runc-v2/ && index($0, s) {print $1}'); do kill -9 "$p"; done
  sleep 0.5
  findmnt -rn -o TARGET | grep "^$S/" | sort -r | while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
  for n in /var/run/netns/cni-*; do [ -e "$n" ] || continue; umount "$n" 2>/dev/null; rm -f "$n"; done
  ip link del "$BRIDGE" 2>/dev/null || true
  # iptables: the CNI bridge's masquerade rules and chains, the firewall
  # plugin's, the kubelet's canaries and firewall.
  iptables-save -t nat | grep -E '^-A POSTROUTING .*name: \\"atelier-kube\\"' | sed 's/^-A /-D /' | while read -r r; do eval iptables -t nat "$r"; done
  for c in $(iptables-save -t nat | awk '/^:CNI-/{print substr($1,2)}'); do iptables -t nat -F "$c"; iptables -t nat -X "$c"; done
  iptables -D FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD 2>/dev/null || true
  for c in CNI-FORWARD CNI-ADMIN; do iptables -F $c 2>/dev/null; iptables -X $c 2>/dev/null; done
  for ipt in iptables ip6tables; do
    $ipt -D INPUT -j KUBE-FIREWALL 2>/dev/null; $ipt -D OUTPUT -j KUBE-FIREWALL 2>/dev/null
    for t in filter nat mangle; do for c in KUBE-FIREWALL KUBE-KUBELET-CANARY KUBE-IPTABLES-HINT KUBE-PROXY-CANARY; do
      $ipt -t $t -F $c 2>/dev/null; $ipt -t $t -X $c 2>/dev/null; done; done
  done
  true
  # cgroups the kubelet made (cgroupfs driver).
  for m in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do for c in kubepods k8s.io; do
    [ -d "$m$c" ] && find "$m$c" -depth -type d -exec rmdir {} \; 2>/dev/null; done; done
  [ -f "$S/sysctl.orig" ] && sysctl -q -w $(cat "$S/sysctl.orig")
  # Paths the kubelet, libcni and the shims use whatever their flags.
  rm -rf /var/lib/kubelet /var/log/containers /var/log/pods /usr/libexec/kubernetes /var/lib/cni /run/containerd/fifo /run/containerd/runc/k8s.io
  docker rmi atelier/kube-pause:1 >/dev/null 2>&1 || true
  rm -rf "$S"
  log "down: host restored"
}

case "${1:-}" in
  build) build ;;
  up) shift; up "$@" ;;
  down) down ;;
  import) shift; running containerd || die "not up"; for c in "$@"; do import_image "$c"; done ;;
  env) running apiserver || die "not up"; printf 'KUBECONFIG=%s\nDIR=%s\nNODE=%s\n' "$S/admin.kubeconfig" "$S" "$NODE" ;;
  *) echo "usage: $0 build|up [IMAGE...]|import IMAGE...|down|env" >&2; exit 2 ;;
esac
