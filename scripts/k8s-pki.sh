#!/usr/bin/env bash
# Makes Weft's CA and certificates with `weftctl cert` and stores them as the Secrets the
# manifests in deploy/kubernetes/ mount (docs/security.md):
#   weft-etcd        ca.pem etcd.pem etcd-key.pem
#   weft-controller  ca.pem controller.pem controller-key.pem
#   weft-agents      ca.pem NODE.pem NODE-key.pem for every node (CN and SAN = node name)
#   weft-admin       ca.pem admin.pem admin-key.pem (the bootstrap Job; also for you)
# Usage: scripts/k8s-pki.sh DIR [EXTRA_SAN,...]
#   DIR keeps the CA (ca-key.pem: keep it safe, offline if you can); EXTRA_SAN are more
#   addresses clients dial the controller or etcd at (node IPs of the control plane).
# Run it again after adding nodes: existing certificates are kept, new nodes get theirs.
set -euo pipefail
dir=${1:?usage: $0 DIR [EXTRA_SAN,...]}
extra=${2:-}
weftctl=${WEFTCTL:-weftctl}
ns=weft-system

[ -f "$dir/ca.pem" ] || "$weftctl" cert init --dir "$dir"
issue() { # stem role san
  [ -f "$dir/$1.pem" ] || "$weftctl" cert issue --dir "$dir" --name "$1" --role "$2" ${3:+--san "$3"}
}
svc=weft-controller.weft-system.svc,weft-controller.weft-system.svc.cluster.local
etcd_dns=weft-etcd-0.weft-etcd.weft-system.svc,weft-etcd-0.weft-etcd.weft-system.svc.cluster.local
issue etcd controller "$etcd_dns,127.0.0.1${extra:+,$extra}"
# The agents and the bootstrap Job dial the controller at its Service's ClusterIP
# (WEFT_CONTROLLER_SERVICE_HOST: no cluster DNS needed), so that address is in its certificate:
# the Service is created here first if it does not exist (20-controller.yaml then updates it).
kubectl get namespace "$ns" >/dev/null 2>&1 || kubectl create namespace "$ns"
kubectl -n "$ns" get service weft-controller >/dev/null 2>&1 ||
  kubectl -n "$ns" create service clusterip weft-controller --tcp=7600:7600
cip=$(kubectl -n "$ns" get service weft-controller -o jsonpath='{.spec.clusterIP}')
issue controller controller "$svc,127.0.0.1${cip:+,$cip}${extra:+,$extra}"
issue admin admin ""
agent_files=(--from-file=ca.pem="$dir/ca.pem")
for node in $(kubectl get nodes -o jsonpath='{.items[*].metadata.name}'); do
  issue "$node" agent "$node"
  agent_files+=(--from-file="$node.pem=$dir/$node.pem" --from-file="$node-key.pem=$dir/$node-key.pem")
done

apply() { kubectl -n "$ns" create secret generic "$@" --dry-run=client -o yaml | kubectl apply -f -; }
kubectl get namespace "$ns" >/dev/null 2>&1 || kubectl create namespace "$ns"
apply weft-etcd --from-file=ca.pem="$dir/ca.pem" --from-file="$dir/etcd.pem" --from-file="$dir/etcd-key.pem"
apply weft-controller --from-file=ca.pem="$dir/ca.pem" --from-file="$dir/controller.pem" --from-file="$dir/controller-key.pem"
apply weft-admin --from-file=ca.pem="$dir/ca.pem" --from-file="$dir/admin.pem" --from-file="$dir/admin-key.pem"
apply weft-agents "${agent_files[@]}"
echo "Secrets weft-etcd, weft-controller, weft-agents, weft-admin are in namespace $ns."
echo "weftctl: export WEFT_CA=$dir/ca.pem WEFT_CERT=$dir/admin.pem WEFT_KEY=$dir/admin-key.pem"
