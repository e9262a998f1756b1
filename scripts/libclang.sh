# Finds libclang the way bindgen's loader (clang-sys, `runtime` feature, Linux) does, so that
# the README's commands can decide before building whether RocksDB's build will find it.
# Sourced, not run. `find_libclang [ROOT]` prints the first library found and returns 0, or
# returns 1; ROOT (default: none) is a prefix for the system folders, for the set-up's own test.
#
# What clang-sys accepts, and nothing else:
# - if LIBCLANG_PATH is set, only that: a matching file, or a folder holding one;
# - otherwise the `bin`, `lib`, `lib64` folders under `llvm-config --prefix`, the folders of
#   LD_LIBRARY_PATH and LIBRARY_PATH, then /usr/local/llvm*/lib*, /usr/local/lib*/*/*,
#   /usr/local/lib*/*, /usr/local/lib*, /usr/lib*/*/*, /usr/lib*/*, /usr/lib*;
# - file names libclang.so, libclang-*.so, libclang.so.*, libclang-*.so.*, but never one
#   containing "-cpp." (Debian's libclang-cpp14 is the C++ interface, not libclang);
# - a 64-bit ELF file.

# Prints the name of a libclang in folder $1, if it holds one.
libclang_in_folder() {
  local folder="$1" candidate name
  [ -d "$folder" ] || return 1
  for candidate in "$folder"/libclang.so "$folder"/libclang-*.so "$folder"/libclang.so.* "$folder"/libclang-*.so.*; do
    [ -f "$candidate" ] || continue
    name="${candidate##*/}"
    case "$name" in *-cpp.*) continue ;; esac
    libclang_is_elf64 "$candidate" || continue
    printf '%s\n' "$candidate"
    return 0
  done
  return 1
}

# True if $1 starts with the ELF magic and the 64-bit class byte.
libclang_is_elf64() {
  local header
  header="$(head -c 5 "$1" 2>/dev/null | od -An -tx1 | tr -d ' \n')"
  [ "$header" = "7f454c4602" ]
}

find_libclang() {
  local root="${1:-}" folder pattern
  if [ -n "${LIBCLANG_PATH:-}" ]; then
    if [ -f "$LIBCLANG_PATH" ]; then
      libclang_in_folder "$(dirname "$LIBCLANG_PATH")" >/dev/null || return 1
      printf '%s\n' "$LIBCLANG_PATH"
      return 0
    fi
    libclang_in_folder "$LIBCLANG_PATH"
    return
  fi
  if [ -z "$root" ] && command -v "${LLVM_CONFIG_PATH:-llvm-config}" >/dev/null 2>&1; then
    local prefix
    prefix="$("${LLVM_CONFIG_PATH:-llvm-config}" --prefix 2>/dev/null | head -n 1)"
    for folder in "$prefix/bin" "$prefix/lib" "$prefix/lib64"; do
      libclang_in_folder "$folder" && return 0
    done
  fi
  local IFS=:
  for folder in ${LD_LIBRARY_PATH:-} ${LIBRARY_PATH:-}; do
    libclang_in_folder "$folder" && return 0
  done
  unset IFS
  for pattern in "/usr/local/llvm*/lib*" "/usr/local/lib*/*/*" "/usr/local/lib*/*" "/usr/local/lib*" \
    "/usr/lib*/*/*" "/usr/lib*/*" "/usr/lib*"; do
    for folder in $root$pattern; do
      libclang_in_folder "$folder" && return 0
    done
  done
  return 1
}
