#!/usr/bin/env bash
# Runs every test: unit, integration (real etcd, ovsdb-server, ovs-vswitchd) and end-to-end
# (simulated hosts in network namespaces; needs root). Binaries are built first because the
# integration and end-to-end tests run them as real processes.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --workspace --bins
exec cargo nextest run --workspace --no-fail-fast "$@"
