#!/usr/bin/env bash
# From a fresh Debian machine (as root) to a command run in a banger VM:
#   scripts/quickstart.sh [path] [-- command args…]
# Default: examples/hello -- make test. Exits with the command's status.
#
# It installs what is missing, builds the golden image once (a download from
# Debian's mirror, so in the host's network namespace; no bridge, tap or
# guest traffic there), then runs `banger vm run --rm` inside a throwaway
# network namespace that holds the daemon, the helper, the VM and ssh, and
# disappears with them.
set -euo pipefail

# A path given is the caller's: resolve it before moving to the checkout.
path=examples/hello
command=(make test)
if [ $# -gt 0 ] && [ "$1" != "--" ]; then
  if [ ! -d "$1" ]; then
    echo "quickstart: \"$1\" is not a directory" >&2
    exit 2
  fi
  path=$(realpath "$1")
  shift
fi
if [ $# -gt 0 ] && [ "$1" = "--" ]; then shift; command=("$@"); fi
cd "$(dirname "$0")/.."

bash scripts/setup.sh
export BANGER_CACHE_DIR=${BANGER_CACHE_DIR:-/var/cache/banger}

build_root=$(mktemp -d -t banger-build.XXXXXX)
run_root=$(mktemp -d -t banger-run.XXXXXX)
cleanup() {
  for root in "$build_root" "$run_root"; do
    pkill -KILL -f "$root" 2>/dev/null || true
    rm -rf "$root"
  done
}
trap cleanup EXIT

echo "quickstart: building (or reusing) the golden image"
BANGER_ROOT=$build_root deno task -q banger image build
BANGER_ROOT=$build_root deno task -q banger daemon stop >/dev/null 2>&1

echo "quickstart: banger vm run --rm $(printf '%q ' "$path" -- "${command[@]}")"
status=0
unshare --net -- env BANGER_ROOT="$run_root" bash -c '
  ip link set lo up
  status=0
  deno task -q banger vm run --rm "$@" || status=$?
  deno task -q banger daemon stop >/dev/null 2>&1
  exit $status
' quickstart "$path" -- "${command[@]}" || status=$?
echo "quickstart: exit status $status"
exit $status
