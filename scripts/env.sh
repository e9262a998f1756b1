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

# RocksDB's build (bindgen) loads libclang at run time; decide now, not ten minutes into the
# build. Debian's libclang-cpp14, present on new machines, is not libclang.
source "$repo_root/scripts/libclang.sh"
if ! libclang="$(find_libclang)"; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing libclang-dev (RocksDB's build needs libclang, and this machine has none)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq libclang-dev >/dev/null
  else
    say "RocksDB's build needs libclang, and this machine has none (libclang-cpp is not it):"
    say "  sudo apt-get install libclang-dev"
    say "or set LIBCLANG_PATH to the folder holding libclang.so, then run this again"
    exit 1
  fi
  if ! libclang="$(find_libclang)"; then
    say "libclang-dev was installed but no libclang.so can be found; set LIBCLANG_PATH to its folder"
    exit 1
  fi
fi

# The tests check the project's keys and certificates with OpenSSL (what most non-Rust
# department systems use), and scripts/check-rocksdb-reuse is Python.
for tool in openssl python3; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      say "installing $tool (the tests need it)"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq >/dev/null
      apt-get install -y -qq "$tool" >/dev/null
    else
      say "the tests need $tool: sudo apt-get install $tool, then run this again"
      exit 1
    fi
  fi
done

# The gateway's tests call it with Python requests, as a legacy system would.
if ! python3 -c 'import requests' >/dev/null 2>&1; then
  say "installing Python requests from PyPI (the gateway's tests use it)"
  python3 -m pip install --quiet requests || { say "pip install requests failed: install it, then run this again"; exit 1; }
fi

if [ ! -f "$CARGO_TARGET_DIR/.rocksdb-built" ]; then
  say "first build on this machine: RocksDB's C++ takes 15-30 minutes on two cores, once"
  say "(target directory: $CARGO_TARGET_DIR)"
fi

cd "$repo_root"
