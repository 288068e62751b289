# Sourced by the build: selects the wasm32 toolchain chosen by scripts/setup.sh.
# With rustup's wasm32 target nothing changes; otherwise Debian's rustc-web builds std itself.
export WRANGLER_SEND_METRICS=false
_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export WASM_BINDGEN_BIN=$HOME/.cargo/bin/wasm-bindgen
export ESBUILD_BIN=$_root/node_modules/.bin/esbuild
export WASM_OPT_BIN=$_root/node_modules/.bin/wasm-opt
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  export PATH=/usr/bin:$HOME/.cargo/bin:$PATH
  export RUSTC_BOOTSTRAP=1 CARGO_UNSTABLE_BUILD_STD=std,panic_abort
  export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=/usr/lib/llvm-22/bin/wasm-ld
fi
unset _root
