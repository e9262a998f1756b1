# Shared set-up for the README's commands; sourced, not run.
# Makes sure what the build needs beyond the Rust toolchain is present, and points cargo at
# a target directory that outlives any one clone, so that RocksDB's C++ (15-30 minutes on two
# cores) is built once per machine.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/exchange/target}"
mkdir -p "$CARGO_TARGET_DIR"

say() { printf 'exchange: %s\n' "$*" >&2; }

if ! command -v cargo >/dev/null 2>&1; then
  say "cargo is not installed: install the Rust toolchain (https://rustup.rs), then run this again"
  exit 1
fi

have_libclang() {
  # bindgen (used by RocksDB's build) loads libclang at run time.
  if [ -n "${LIBCLANG_PATH:-}" ] && ls "$LIBCLANG_PATH"/libclang*.so* >/dev/null 2>&1; then
    return 0
  fi
  ls /usr/lib/llvm-*/lib/libclang*.so* /usr/lib/*/libclang*.so* >/dev/null 2>&1
}

if ! have_libclang; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing libclang-dev (RocksDB's build needs libclang)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq libclang-dev >/dev/null
  else
    say "RocksDB's build needs libclang: install Debian's libclang-dev (sudo apt-get install libclang-dev)"
    say "or set LIBCLANG_PATH to the folder holding libclang.so, then run this again"
    exit 1
  fi
fi

if [ ! -f "$CARGO_TARGET_DIR/.rocksdb-built" ]; then
  say "first build on this machine: RocksDB's C++ takes 15-30 minutes on two cores, once"
  say "(target directory: $CARGO_TARGET_DIR)"
fi

cd "$repo_root"
