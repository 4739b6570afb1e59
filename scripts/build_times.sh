#!/usr/bin/env bash
# Build cost.
#   bash scripts/build_times.sh        # both parts below
#   bash scripts/build_times.sh lib    # 1. this crate: a clean build, a rebuild after editing one
#                                      #    OpenAPI document (code generation reruns), and one after
#                                      #    editing a hand-written file (it must not rerun)
#   bash scripts/build_times.sh apps   # 2. a small application, cold, on tokensmith (one service;
#                                      #    default features) against the same application on
#                                      #    reqwest (json, rustls) + tokio + serde alone, in one run
# Each build has its own target directory; the crate's files are left as found.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
part="${1:-all}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target/build-times}"
rm -rf "$CARGO_TARGET_DIR"
mkdir -p "$CARGO_TARGET_DIR"

seconds() { local start=$SECONDS; "$@" >/dev/null 2>&1; echo $((SECONDS - start)); }

if [ "$part" = all ] || [ "$part" = lib ]; then
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
fi

if [ "$part" = all ] || [ "$part" = apps ]; then
  apps=$(mktemp -d)
  trap 'rm -rf "$apps"' EXIT
  # The same application three times: log in to s7risk, then call its API with the token.
  baseline_main='
#[derive(serde::Serialize)]
struct Login<'"'"'a> { email: &'"'"'a str, password: &'"'"'a str }
#[derive(serde::Deserialize)]
struct Token { token: String }
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let base = std::env::args().nth(1).unwrap_or_else(|| "https://auth.s7risk.com".into());
    let password = std::env::var("S7RISK_PASSWORD").unwrap_or_default();
    let http = reqwest::Client::new();
    let token: Token = http
        .post(format!("{base}/user/token"))
        .header("Origin", "https://app.example.com")
        .json(&Login { email: "analyst@example.com", password: &password })
        .send().await?.error_for_status()?.json().await?;
    let answer = http.get(format!("{base}/v1/alerts")).bearer_auth(&token.token).send().await?;
    println!("{}", answer.status());
    Ok(())
}'
  tokensmith_main='
use tokensmith::s7risk::Session;
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let base = std::env::args().nth(1).unwrap_or_else(|| "https://auth.s7risk.com".into());
    let password = std::env::var("S7RISK_PASSWORD").unwrap_or_default();
    let session = Session::builder()
        .base_url(base.clone())
        .origin("https://app.example.com")
        .user("analyst@example.com", password)
        .build()?;
    let answer = session.send(reqwest::Client::new().get(format!("{base}/v1/alerts"))).await?;
    println!("{}", answer.status());
    Ok(())
}'
  common_deps='tokio = { version = "1", features = ["rt-multi-thread", "macros"] }
reqwest = { version = "0.13.5", default-features = false, features = ["json", "rustls"] }'
  make_app() { # name, extra dependency lines, main
    mkdir -p "$apps/$1/src"
    printf '[package]\nname = "%s"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\n%s\n%s\n' \
      "$1" "$common_deps" "$2" > "$apps/$1/Cargo.toml"
    printf '%s\n' "$3" > "$apps/$1/src/main.rs"
    # The crate's own lock file: every application gets the same versions of shared crates.
    cp "$repo/Cargo.lock" "$apps/$1/Cargo.lock"
  }
  make_app baseline 'serde = { version = "1", features = ["derive"] }
serde_json = "1"' "$baseline_main"
  make_app one_service "tokensmith = { path = \"$repo\", default-features = false, features = [\"rustls\", \"s7risk\"] }" "$tokensmith_main"
  make_app default_features "tokensmith = { path = \"$repo\" }" "$tokensmith_main"

  declare -A took cpu crates
  for app in baseline one_service default_features; do
    (cd "$apps/$app" && cargo fetch --quiet)
  done
  for app in baseline one_service default_features; do
    target="$CARGO_TARGET_DIR/$app"
    # Wall time, and the CPU time of cargo and every compiler and build script it ran: on a
    # machine other builds share, the CPU time is the steadier of the two.
    times=$(cd "$apps/$app" && CARGO_TARGET_DIR="$target" \
      /usr/bin/time -f '%e %U %S' cargo build --timings 2>&1 >/dev/null | tail -1)
    read -r wall user sys <<<"$times"
    took[$app]=$wall
    cpu[$app]=$(awk "BEGIN { printf \"%.0f\", $user + $sys }")
    crates[$app]=$(cd "$apps/$app" && cargo tree -e normal,build --prefix none 2>/dev/null \
      | sed 's/ (\*)$//; s/ (proc-macro)$//' | sort -u | wc -l)
    cp "$target"/cargo-timings/cargo-timing.html "$CARGO_TARGET_DIR/timing-$app.html"
  done
  echo "cold build of a small application (dev profile, dependencies included):"
  for app in baseline one_service default_features; do
    echo "  $app: ${took[$app]} s wall ($(awk "BEGIN { printf \"%.2f\", ${took[$app]} / ${took[baseline]} }")x the baseline)," \
      "${cpu[$app]} s CPU ($(awk "BEGIN { printf \"%.2f\", ${cpu[$app]} / ${cpu[baseline]} }")x), ${crates[$app]} crates"
  done
  echo "slowest units of default_features (seconds; from cargo build --timings, $CARGO_TARGET_DIR/timing-default_features.html):"
  python3 - "$CARGO_TARGET_DIR/timing-default_features.html" <<'PY'
import json, re, sys
html = open(sys.argv[1]).read()
units = json.loads(re.search(r"const UNIT_DATA = (\[.*?\]);\n", html, re.S).group(1))
for u in sorted(units, key=lambda u: -u["duration"])[:12]:
    target = u["target"].strip() or "lib"
    print(f"  {u['duration']:6.1f}  {u['name']} {u['version']} {target}")
PY
fi
