#!/usr/bin/env bash
# Installs what banger needs on a Debian host: Deno (from npm) and the Debian
# packages for building images, booting guests and testing. Safe to re-run.
set -euo pipefail

DENO_VERSION=2.9.6
PACKAGES=(
  qemu-system-x86 qemu-utils
  mmdebstrap
  e2fsprogs
  iproute2 nftables
  openssh-client
  git tar
  lz4 xz-utils zstd gzip
  procps util-linux
  dnsutils socat
)

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: run as root (it installs packages)" >&2
  exit 1
fi

# Deno comes from the npm registry; a machine without Node.js gets Debian's.
command -v npm >/dev/null || PACKAGES+=(npm)

# shellcheck source=scripts/_packages.sh
. "$(dirname "$0")/_packages.sh"
install_missing "${PACKAGES[@]}"

if ! command -v deno >/dev/null || [ "$(deno --version | head -1 | cut -d' ' -f2)" != "$DENO_VERSION" ]; then
  echo "setup: installing deno $DENO_VERSION from npm"
  npm install -g --silent "deno@$DENO_VERSION" >/dev/null
fi
deno --version | head -1
