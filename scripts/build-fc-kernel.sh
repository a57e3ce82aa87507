#!/usr/bin/env bash
# Builds a guest kernel from Firecracker's guest configuration, for
# `banger kernel import` (docs/firecracker.md, "Kernels"):
#   scripts/build-fc-kernel.sh [config] [out-dir]
# config:  a Firecracker guest config (default: the x86_64 6.1 one in a
#          shared/reference folder beside or above this checkout)
# out-dir: where `vmlinux` lands (default: /var/cache/banger-fc-kernel)
#
# The source is Debian's linux-source-6.1 package; the config's options are
# carried over to it with olddefconfig. Such a kernel has virtio, ext4 and
# the serial console built in, so it boots without an initrd. The build
# takes tens of minutes on two cores and is skipped when out-dir already
# holds a vmlinux made from the same config and source.
set -euo pipefail
cd "$(dirname "$0")/.."

config=${1:-}
if [ -z "$config" ]; then
  for dir in ../shared/reference ../../shared/reference; do
    if [ -f "$dir/firecracker-guest-x86_64-6.1.config" ]; then
      config=$dir/firecracker-guest-x86_64-6.1.config
      break
    fi
  done
fi
if [ -z "$config" ] || [ ! -f "$config" ]; then
  echo "build-fc-kernel: no Firecracker guest config: pass its path" >&2
  exit 2
fi
out=${2:-/var/cache/banger-fc-kernel}

if [ "$(id -u)" -ne 0 ]; then
  echo "build-fc-kernel: run as root (it installs packages)" >&2
  exit 1
fi
# shellcheck source=scripts/_packages.sh
. scripts/_packages.sh
install_missing linux-source-6.1 build-essential bc bison flex libelf-dev libssl-dev

source_tar=$(ls /usr/src/linux-source-6.1.tar.* | head -1)
stamp="$(sha256sum "$config" "$0" | sha256sum | cut -d' ' -f1) $(dpkg-query -W -f='${Version}' linux-source-6.1)"
if [ -f "$out/vmlinux" ] && [ "$(cat "$out/stamp" 2>/dev/null)" = "$stamp" ]; then
  echo "build-fc-kernel: $out/vmlinux is up to date"
  exit 0
fi

build=$(mktemp -d -t banger-fc-kernel.XXXXXX)
trap 'rm -rf "$build"' EXIT
echo "build-fc-kernel: unpacking $source_tar"
tar -x -f "$source_tar" -C "$build"
src=$(find "$build" -mindepth 1 -maxdepth 1 -type d | head -1)
cp "$config" "$src/.config"
# One change to the config: PCI on. Without it, upstream 6.1's ACPICA cannot
# install its default PCI-config region handler, refuses to load the ACPI
# tables ("AE_BAD_PARAMETER, During Region initialization"), and so finds
# none of the virtio-mmio devices that Firecracker 1.8+ (and QEMU's microvm)
# describe there; the config has no VIRTIO_MMIO_CMDLINE_DEVICES to fall
# back on. PCI also lets Firecracker 1.13+ use --enable-pci.
"$src/scripts/config" --file "$src/.config" --enable PCI
make -s -C "$src" olddefconfig
echo "build-fc-kernel: building vmlinux with $(nproc) jobs (tens of minutes)"
start=$(date +%s)
make -s -C "$src" -j"$(nproc)" vmlinux
mkdir -p "$out"
cp "$src/vmlinux" "$out/vmlinux.tmp"
mv "$out/vmlinux.tmp" "$out/vmlinux"
echo "$stamp" >"$out/stamp"
echo "build-fc-kernel: $out/vmlinux built in $(( $(date +%s) - start )) s"
