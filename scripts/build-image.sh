#!/usr/bin/env bash
# Builds the Weft image (weft-controller, weft-agent, weft-cni, weftctl, plus etcd and the
# standard portmap plugin) without any registry: a base root filesystem made from the files of
# this Debian machine's packages (busybox-static, iproute2, ethtool, util-linux's nsenter,
# etcd-server, containernetworking-plugins' portmap and loopback, and the shared libraries they and our binaries
# link), `podman import`ed as localhost/weft-base, then `podman build --pull=never` with
# deploy/Containerfile. .containerignore keeps target/ out of the build context.
#
#   scripts/build-image.sh                  # release binaries, tag localhost/weft:latest
#   WEFT_IMAGE_PROFILE=debug scripts/build-image.sh
#   WEFT_IMAGE=localhost/weft:test scripts/build-image.sh
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
profile=${WEFT_IMAGE_PROFILE:-release}
image=${WEFT_IMAGE:-localhost/weft:latest}
base=${WEFT_IMAGE_BASE:-localhost/weft-base:latest}
target=${CARGO_TARGET_DIR:-target}
case "$profile" in
  release) cargo_flag=--release ;;
  debug) cargo_flag= ;;
  *) echo "build-image: WEFT_IMAGE_PROFILE must be release or debug, not $profile" >&2; exit 2 ;;
esac
command -v podman >/dev/null || { echo "build-image: podman not found (apt-get install podman)" >&2; exit 1; }
tools=(/bin/busybox /bin/ip /sbin/ethtool /usr/bin/nsenter /usr/bin/etcd /usr/lib/cni/portmap /usr/lib/cni/loopback)
for t in "${tools[@]}"; do
  [ -x "$t" ] || { echo "build-image: $t missing (scripts/setup.sh installs busybox-static iproute2 ethtool util-linux etcd-server containernetworking-plugins)" >&2; exit 1; }
done

echo "build-image: cargo build $cargo_flag (weft-controller, weft-agent, weft-cni, weftctl)"
cargo build $cargo_flag -p weft-controller -p weft-agent -p weftctl
bins=(weft-controller weft-agent weft-cni weftctl)

work=$(mktemp -d /tmp/weft-image.XXXXXX)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,usr/lib/cni,usr/local/bin,etc,tmp,run,var/lib,usr/share/weft}
# /var/run is /run, as on Debian: the manifests mount /var/run/netns, /var/run/weft and
# /var/run/openvswitch, and CNI_NETNS paths say /run/netns/....
ln -s ../run "$root/var/run"
chmod 1777 "$root/tmp"
copy() { mkdir -p "$root$(dirname "$1")"; cp -L "$1" "$root$1"; }
for t in "${tools[@]}"; do copy "$t"; done
# Shared libraries of the tools and of our binaries (their closure, as ldd lists it).
for f in "${tools[@]}" "${bins[@]/#/$target/$profile/}"; do
  { ldd "$f" 2>/dev/null || true; } | awk '/=>/ {print $3} /^\t\/lib/ {print $1}' |
    while read -r lib; do
      if [ -n "$lib" ] && [ -e "$lib" ]; then copy "$lib"; fi
    done
done
# busybox applets (sh, cp, mv, test, ...) except the tools we ship for real.
for a in $(/bin/busybox --list); do
  case "$a" in ip|ethtool|nsenter) continue ;; esac
  if [ ! -e "$root/bin/$a" ]; then ln -s busybox "$root/bin/$a"; fi
done
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$root/etc/passwd"
printf 'root:x:0:\n' > "$root/etc/group"
# Replace, not pile up: the previous build of these tags goes first (no dangling images).
podman rmi -f "$image" "$base" >/dev/null 2>&1 || true
echo "build-image: podman import -> $base"
tar -C "$root" -c . | podman import --change 'CMD ["/bin/sh"]' - "$base" >/dev/null

# The build context is the repository (target/ excluded by .containerignore); the binaries
# are staged under build/image/.
rm -rf build/image && mkdir -p build/image
for b in "${bins[@]}"; do cp "$target/$profile/$b" build/image/; done
echo "build-image: podman build --pull=never -> $image"
podman build --pull=never --build-arg BASE="$base" -f deploy/Containerfile -t "$image" . >/dev/null
rm -rf build/image
size=$(podman image inspect "$image" --format '{{.Size}}')
echo "build-image: built $image ($((size / 1024 / 1024)) MiB) in $(( $(date +%s) - started )) s"
