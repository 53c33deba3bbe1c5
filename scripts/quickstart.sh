#!/usr/bin/env bash
# The README's first command: set up the machine, build, bring up a 3-host sandbox, create a
# logical switch with a pod on host1 and one on host2, ping across the overlay and print
# `weftctl show`. The sandbox keeps running; `target/debug/weft-sandbox down` removes it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

bin=target/debug
dir=${WEFT_SANDBOX_DIR:-/tmp/weft-sandbox}
"$bin/weft-sandbox" down --dir "$dir" >/dev/null 2>&1 || true
echo "== bringing up 3 simulated hosts"
# TLS is on: the sandbox makes a CA in $dir/pki and prints the controller address and an
# admin credential (WEFT_CA, WEFT_CERT, WEFT_KEY) as export lines.
exports=$("$bin/weft-sandbox" up --hosts 3 --encap geneve --dir "$dir" | grep -E '^export WEFT_[A-Z_]+=')
echo "$exports" | grep -q '^export WEFT_CONTROLLER=' || { echo "quickstart: weft-sandbox up did not print WEFT_CONTROLLER" >&2; exit 1; }
eval "$exports"
echo "$exports" | sed 's/^/   /'
weftctl="$bin/weftctl"

echo "== creating switch sw0 with ports p1 and p2"
"$weftctl" --may-exist ls-add sw0 --subnet 10.0.0.0/24
"$weftctl" --may-exist lsp-add sw0 p1
"$weftctl" lsp-set-addresses p1 dynamic
"$weftctl" --may-exist lsp-add sw0 p2
"$weftctl" lsp-set-addresses p2 dynamic

echo "== pods: p1 on host1, p2 on host2"
"$bin/weft-sandbox" pod-add host1 p1 --dir "$dir"
"$bin/weft-sandbox" pod-add host2 p2 --dir "$dir"
"$weftctl" --wait=hv --timeout 30 sync

p2_ip=$("$weftctl" lsp-get-addresses p2 | awk '{print $2}' | head -n1)
echo "== ping p1 (host1) -> p2 (host2) at $p2_ip"
"$bin/weft-sandbox" exec p1 --dir "$dir" -- ping -c 3 -W 2 "$p2_ip"

echo "== weftctl show"
"$weftctl" show
echo
echo "Sandbox is up (TLS). Try: eval \"\$($bin/weft-sandbox env --dir $dir)\"; $weftctl show"
echo "Remove it with: $bin/weft-sandbox down --dir $dir"
