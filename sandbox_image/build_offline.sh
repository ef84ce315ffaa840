#!/usr/bin/env bash
# Builds the sandbox image with no container registry: debootstrap a Debian rootfs from the host's configured
# apt mirror, install requirements.txt wheels into it with the host's pip, run setup_rootfs.sh, docker import.
# Usage: build_offline.sh TAG   (needs root, debootstrap and a running Docker engine)
set -euo pipefail
tag=${1:?usage: build_offline.sh TAG}
here=$(cd "$(dirname "$0")" && pwd)
suite=bookworm
pyver=3.11

mirror=${TOOLSHED_APT_MIRROR:-}
if [ -z "$mirror" ]; then
  # The first Debian archive URI the host's apt uses (deb822 or one-line format); security mirrors excluded.
  mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ {print $2}' | grep -v security | head -n1 || true)
  [ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=http://deb.debian.org/debian
fi

if ! command -v debootstrap >/dev/null 2>&1; then
  echo "[offline build] installing debootstrap" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >&2
fi

work=$(mktemp -d /var/tmp/toolshed-rootfs.XXXXXX)
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs

echo "[offline build] debootstrap $suite from $mirror" >&2
debootstrap --variant=minbase --include="$(paste -sd, "$here/apt-packages.txt")" "$suite" "$rootfs" "$mirror" >&2

echo "[offline build] pip wheels into the rootfs" >&2
python3 -m pip install --quiet --no-cache-dir --only-binary=:all: --no-deps \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux_2_5_x86_64 --platform linux_x86_64 --python-version "$pyver" --implementation cp \
  --target "$rootfs/usr/local/lib/python$pyver/dist-packages" -r "$here/requirements.txt" >&2

install -m 0755 "$here/toolshed-kernel" "$rootfs/usr/local/bin/toolshed-kernel"
install -m 0644 "$here/toolshed_kernel.py" "$rootfs/usr/local/lib/python$pyver/dist-packages/toolshed_kernel.py"
install -m 0755 "$here/setup_rootfs.sh" "$rootfs/setup_rootfs.sh"
chroot "$rootfs" /setup_rootfs.sh >&2
rm "$rootfs/setup_rootfs.sh"

changes=(--change 'USER 1000:1000' --change 'WORKDIR /mnt/data'
         --change 'CMD ["toolshed-kernel", "/run/toolshed/kernel.json"]')
while IFS= read -r line; do
  [ -n "$line" ] && changes+=(--change "ENV $line")
done < "$here/image.env"

echo "[offline build] docker import $tag" >&2
tar --numeric-owner -C "$rootfs" -c . | docker import "${changes[@]}" - "$tag" >&2
