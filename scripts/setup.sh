#!/usr/bin/env bash
# Installs what Weft needs on a Debian 12 machine and builds every binary.
# Used by the README quick start and by CI (.ci/run). Idempotent; needs root for apt.
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(openvswitch-switch etcd-server protobuf-compiler libprotobuf-dev iproute2 ethtool
      ovn-central ovn-host
      iputils-ping procps librsvg2-bin
      podman containernetworking-plugins runc busybox-static util-linux catatonit containerd
      python3 python3-venv iptables  # python3: the rogue-RA sender of tests/tests/e2e_port_security_v6.rs
      traceroute # traceroute: tests/tests/e2e_routing.rs
      iperf3     # iperf3: weft-bench dataplane
      curl       # curl: the published-port fetches of tests/tests/e2e_docker.rs
      docker.io) # docker.io: dockerd for tests/tests/e2e_docker.rs and `weft-sandbox up --docker`
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing packages: ${missing[*]}; run this script as root (or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# Debian's packages may start a system-wide OVS/OVN/etcd; Weft's tests and sandbox run their own.
for svc in openvswitch-switch ovn-central ovn-host etcd containerd docker; do
  service "$svc" stop >/dev/null 2>&1 || true
done

# kubernetes-validate (PyPI) checks deploy/kubernetes/ against the Kubernetes 1.30 schemas
# (tests/tests/deploy_manifests.rs); its schemas ship inside the package, so it runs offline.
venv=${WEFT_VENV:-/opt/weft-venv}
# grpcio + grpcio-tools: the CRI client of tests/tests/e2e_containerd_cri.rs.
if ! { [ -x "$venv/bin/kubernetes-validate" ] && "$venv/bin/python" -c 'import grpc, grpc_tools' 2>/dev/null; }; then
  echo "setup: installing kubernetes-validate, grpcio and grpcio-tools into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q kubernetes-validate grpcio grpcio-tools
fi

command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust (rustup) first" >&2; exit 1; }
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "setup: installing cargo-nextest"
  cargo install --locked cargo-nextest
fi
echo "setup: building weft (cargo build --workspace --bins)"
cargo build --workspace --bins
echo "setup: done"
