#!/usr/bin/env bash
# Build cost: a clean build, a rebuild after editing one OpenAPI document (code generation
# reruns), and a rebuild after editing one hand-written file (it must not rerun).
# Usage: bash scripts/build_times.sh   (uses its own target directory; leaves files as found)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/build-times}"
rm -rf "$CARGO_TARGET_DIR"

seconds() { local start=$SECONDS; "$@" >/dev/null 2>&1; echo $((SECONDS - start)); }

cargo fetch --quiet
clean=$(seconds cargo build --lib)

touch openapi/fib.yaml
spec=$( { /usr/bin/time -f %e cargo build --lib -vv 2>&1 >/dev/null; } | tee "$CARGO_TARGET_DIR/spec.log" | tail -1)
spec_reran=$(grep -c 'Running `.*build-script-build`' "$CARGO_TARGET_DIR/spec.log" || true)

touch src/s7risk.rs
code=$( { /usr/bin/time -f %e cargo build --lib -vv 2>&1 >/dev/null; } | tee "$CARGO_TARGET_DIR/code.log" | tail -1)
code_reran=$(grep -c 'Running `.*build-script-build`' "$CARGO_TARGET_DIR/code.log" || true)

echo "clean build (lib, dev): ${clean} s"
echo "after editing openapi/fib.yaml: ${spec} s (build script ran: ${spec_reran})"
echo "after editing src/s7risk.rs: ${code} s (build script ran: ${code_reran})"
if [ "$code_reran" != "0" ]; then
  echo "error: editing a hand-written file reran code generation" >&2
  exit 1
fi
