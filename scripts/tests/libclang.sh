#!/usr/bin/env bash
# A test of the set-up itself: the libclang detection of scripts/libclang.sh against fake
# system roots, each holding what one kind of machine has. Run by ./scripts/test before it
# builds anything; exits non-zero, naming the case, if any answer is wrong.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../libclang.sh"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# Only the fake roots count: no loader path of this machine, no llvm-config.
unset LIBCLANG_PATH LD_LIBRARY_PATH LIBRARY_PATH
export LLVM_CONFIG_PATH="$work/no-llvm-config"

failures=0
# A file whose header says "64-bit ELF", as clang-sys checks before loading.
elf64() { mkdir -p "$(dirname "$1")"; printf '\177ELF\002\001\001' >"$1"; }
elf32() { mkdir -p "$(dirname "$1")"; printf '\177ELF\001\001\001' >"$1"; }

# expect found|missing ROOT CASE
expect() {
  local want="$1" root="$2" case="$3" got
  if found="$(find_libclang "$root")"; then got=found; else got=missing; fi
  if [ "$got" != "$want" ]; then
    printf 'FAIL libclang detection: %s: expected %s, got %s %s\n' "$case" "$want" "$got" "${found:-}" >&2
    failures=$((failures + 1))
  else
    printf 'ok   libclang detection: %s (%s)\n' "$case" "$got"
  fi
}

root="$work/fresh-debian"
elf64 "$root/usr/lib/llvm-14/lib/libclang-cpp.so.14"
elf64 "$root/usr/lib/x86_64-linux-gnu/libclang-cpp.so.14"
expect missing "$root" "a new machine with only Debian's libclang-cpp14"

root="$work/libclang1-14"
elf64 "$root/usr/lib/llvm-14/lib/libclang-cpp.so.14"
elf64 "$root/usr/lib/x86_64-linux-gnu/libclang-14.so.1"
expect found "$root" "Debian's libclang1-14 (libclang-14.so.1, no libclang.so link)"

root="$work/libclang-dev"
elf64 "$root/usr/lib/llvm-14/lib/libclang.so.1"
ln -s libclang.so.1 "$root/usr/lib/llvm-14/lib/libclang.so"
expect found "$root" "Debian's libclang-dev (libclang.so)"

root="$work/local-build"
elf64 "$root/usr/local/lib/libclang-17.so"
expect found "$root" "a local LLVM build (libclang-17.so under /usr/local/lib)"

root="$work/wrong-class"
elf32 "$root/usr/lib/i386-linux-gnu/libclang.so.1"
expect missing "$root" "only a 32-bit libclang"

root="$work/elsewhere"
elf64 "$root/opt/llvm/lib/libclang.so"
expect missing "$root" "libclang outside the folders clang-sys searches"
LIBCLANG_PATH="$root/opt/llvm/lib" expect found "$work/fresh-debian" "LIBCLANG_PATH naming its folder"
LIBCLANG_PATH="$root/opt/llvm/lib/libclang.so" expect found "$work/fresh-debian" "LIBCLANG_PATH naming the file"
LIBCLANG_PATH="$work/fresh-debian/usr/lib/llvm-14/lib" expect missing "$work/libclang-dev" \
  "LIBCLANG_PATH set to a folder with only libclang-cpp (clang-sys then searches nowhere else)"
LD_LIBRARY_PATH="$root/opt/llvm/lib" expect found "$work/fresh-debian" "LD_LIBRARY_PATH naming its folder"

if [ "$failures" -gt 0 ]; then
  printf '%d libclang detection case(s) failed\n' "$failures" >&2
  exit 1
fi
