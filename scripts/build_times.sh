#!/usr/bin/env bash
# Build cost.
#   bash scripts/build_times.sh        # both parts below
#   bash scripts/build_times.sh lib    # 1. this crate: a clean build, a rebuild after editing one
#                                      #    OpenAPI document (code generation reruns), and one after
#                                      #    editing a hand-written file (it must not rerun)
#   bash scripts/build_times.sh apps   # 2. a small application, cold, on tokensmith (one service;
#                                      #    default features) against the same application on
#                                      #    reqwest (json, rustls) + tokio + serde alone, in one run,
#                                      #    with the two floors of the crate's shape (below) and the
#                                      #    compiler CPU time of each crate tokensmith adds; ROUNDS
#                                      #    rounds (default 4), the order reversed every other one
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
  # The same application three times (and the floors, below): log in to s7risk, then call its
  # API with the token.
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
  # An application gets tokensmith from a registry, and cargo compiles a registry crate without
  # incremental compilation (which only workspace members and path dependencies get: the Cargo
  # book, "Profiles", `incremental`); here it is a path dependency, which cargo would compile
  # incrementally, writing the incremental cache on top of the build (1.3 s of wall time and
  # 1.8 s of CPU for tokensmith's library alone, in the build's tail). So the path dependency
  # (tokensmith, or a floor's crate) is compiled as a registry crate is. The application's own
  # crate stays incremental, as in the baseline.
  make_app() { # name, extra dependency lines, main, the path dependency
    mkdir -p "$apps/$1/src"
    printf '[package]\nname = "%s"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\n%s\n%s\n' \
      "$1" "$common_deps" "$2" > "$apps/$1/Cargo.toml"
    if [ -n "${4:-}" ]; then
      printf '\n[profile.dev.package.%s]\nincremental = false\n' "$4" >> "$apps/$1/Cargo.toml"
    fi
    printf '%s\n' "$3" > "$apps/$1/src/main.rs"
    # The crate's own lock file: every application gets the same versions of shared crates.
    cp "$repo/Cargo.lock" "$apps/$1/Cargo.lock"
  }
  make_app baseline 'serde = { version = "1", features = ["derive"] }
serde_json = "1"' "$baseline_main"
  make_app one_service "tokensmith = { path = \"$repo\", default-features = false, features = [\"rustls\", \"s7risk\"] }" "$tokensmith_main" tokensmith
  make_app default_features "tokensmith = { path = \"$repo\" }" "$tokensmith_main" tokensmith

  # The floor of the crate's shape (OpenAPI documents given to progenitor by build.rs at build
  # time): the baseline application plus a crate whose build script only reads our documents and
  # hands each to progenitor with its default settings, writing the tokens as they come (no
  # prettyplease), and whose library only include!s the results. No tokensmith code. `floor`
  # takes the smallest document (s7risk), what one service needs at least; `floor_five` takes
  # all five, what the default features need at least. Two things progenitor 0.15 cannot take
  # as they stand are left out of the floors' copies, as tokensmith's build.rs also keeps them
  # from it: weavr's bodiless 204 beside the logout's 200 body (progenitor panics on it;
  # build.rs puts it back after generation), and the one `pattern` (on VerificationCode, which
  # tokensmith replaces by its SecretString; typify would otherwise need regress at run time).
  make_floor() { # crate name, documents
    local name=$1; shift
    mkdir -p "$apps/$name/src"
    printf '[package]\nname = "%s"\n%s\n' "$name" 'version = "0.1.0"
edition = "2021"

[dependencies]
progenitor-client = "0.15.1"
reqwest = { version = "0.13.5", default-features = false, features = ["json", "query", "stream"] }
serde = { version = "1", features = ["derive"] }
serde_json = "1"

[build-dependencies]
progenitor = { version = "0.15.1", default-features = false }
openapiv3 = "2.2"
serde_yaml = "0.9"' > "$apps/$name/Cargo.toml"
    printf '%s\n' 'fn main() {
    for api in std::fs::read_to_string("apis").unwrap().split_whitespace() {
        let text = std::fs::read_to_string(format!("{api}.yaml")).unwrap();
        let spec: openapiv3::OpenAPI = serde_yaml::from_str(&text).unwrap();
        let tokens = progenitor::Generator::default().generate_tokens(&spec).unwrap();
        let out = std::path::Path::new(&std::env::var_os("OUT_DIR").unwrap()).join(format!("{api}.rs"));
        std::fs::write(out, tokens.to_string()).unwrap();
    }
}' > "$apps/$name/build.rs"
    : > "$apps/$name/src/lib.rs"
    for api in "$@"; do
      printf 'pub mod %s { include!(concat!(env!("OUT_DIR"), "/%s.rs")); }\n' "$api" "$api" >> "$apps/$name/src/lib.rs"
      python3 - "$repo/openapi/$api.yaml" > "$apps/$name/$api.yaml" <<'PY'
import re, sys
lines, out, skip_deeper_than = open(sys.argv[1]).read().split("\n"), [], None
path = None
for line in lines:
    indent = len(line) - len(line.lstrip(" "))
    if skip_deeper_than is not None:
        if line.strip() and indent <= skip_deeper_than:
            skip_deeper_than = None
        else:
            continue
    if re.match(r"^  /", line):
        path = line.strip()
    if path == "/logout:" and line.strip() == '"204":':
        skip_deeper_than = indent
        continue
    if line.strip().startswith("pattern:"):
        continue
    out.append(line)
print("\n".join(out), end="")
PY
    done
    echo "$*" > "$apps/$name/apis"
  }
  make_floor floor_client s7risk
  make_floor floor_five_client s7risk weavr accounts passwordsafe fib
  floor_main="${baseline_main/let http = reqwest::Client::new();/let http = reqwest::Client::new();
    let _generated = floor_client::s7risk::Client::new(base.as_str());}"
  make_app floor "$(printf '%s\n%s' 'serde = { version = "1", features = ["derive"] }
serde_json = "1"' 'floor_client = { path = "../floor_client" }')" "$floor_main" floor_client
  make_app floor_five "$(printf '%s\n%s' 'serde = { version = "1", features = ["derive"] }
serde_json = "1"' 'floor_client = { path = "../floor_five_client", package = "floor_five_client" }')" \
    "$floor_main" floor_five_client

  # Every compiler run's CPU time (user + sys), by crate, through a RUSTC_WRAPPER.
  printf '%s\n' '#!/usr/bin/env bash
rustc="$1"; shift
name=; kind=; prev=
for a in "$@"; do
  case "$prev" in --crate-name) name=$a;; --crate-type) kind=$a;; esac
  prev=$a
done
[ -n "$name" ] || exec "$rustc" "$@"
times=$(mktemp)
/usr/bin/time -o "$times" -f "%U %S" "$rustc" "$@"
status=$?
echo "$name $kind $(tail -1 "$times")" >> "$RUSTC_CPU_LOG"
rm -f "$times"
exit $status' > "$apps/rustc-cpu"
  chmod +x "$apps/rustc-cpu"

  # Builds on this machine drift by up to a fifth within one run (the same baseline took 95 s of
  # CPU as a run's first build and 77 s as its last), so one build of each is not a measurement:
  # ROUNDS rounds (default 4), the order reversed every other round so that a steady drift
  # weighs on every application alike; the ratio is that of the mean over all rounds, and each
  # round's own ratio (to the baseline built in the same round) is printed beside it.
  rounds="${ROUNDS:-4}"
  apps_order="baseline floor floor_five one_service default_features"
  reversed="default_features one_service floor_five floor baseline"
  declare -A crates
  for app in $apps_order; do
    (cd "$apps/$app" && cargo fetch --quiet)
    crates[$app]=$(cd "$apps/$app" && cargo tree -e normal,build --prefix none 2>/dev/null \
      | sed 's/ (\*)$//; s/ (proc-macro)$//' | sort -u | wc -l)
  done
  results="$CARGO_TARGET_DIR/apps.tsv"
  : > "$results"
  echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  for round in $(seq "$rounds"); do
    order=$apps_order
    [ $((round % 2)) = 0 ] && order=$reversed
    for app in $order; do
      target="$CARGO_TARGET_DIR/$app"
      rm -rf "$target"
      # Wall time, and the CPU time of cargo and every compiler and build script it ran.
      log="$CARGO_TARGET_DIR/rustc-cpu-$app.log"
      times=$(cd "$apps/$app" && CARGO_TARGET_DIR="$target" RUSTC_WRAPPER="$apps/rustc-cpu" \
        RUSTC_CPU_LOG="$log" \
        /usr/bin/time -f '%e %U %S' cargo build --timings 2>&1 >/dev/null | tail -1)
      read -r wall user sys <<<"$times"
      printf '%s\t%s\t%s\t%s\n' "$round" "$app" "$wall" "$(awk "BEGIN { print $user + $sys }")" >> "$results"
      cp "$target"/cargo-timings/cargo-timing.html "$CARGO_TARGET_DIR/timing-$app.html"
      rm -rf "$target"
      echo "  round $round: built $app in $wall s (load average now $(cut -d' ' -f1-3 /proc/loadavg))"
    done
  done
  echo "cold build of a small application (dev profile, dependencies included), $rounds rounds:"
  python3 - "$results" "${crates[baseline]}" "${crates[floor]}" "${crates[floor_five]}" "${crates[one_service]}" "${crates[default_features]}" <<'PY'
import collections, sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1])]
crates = dict(zip(["baseline", "floor", "floor_five", "one_service", "default_features"], sys.argv[2:]))
wall, cpu = collections.defaultdict(dict), collections.defaultdict(dict)
for r, app, w, c in rows:
    wall[app][r], cpu[app][r] = float(w), float(c)
mean = lambda d: sum(d.values()) / len(d)
for app in crates:
    per_round = lambda m: ", ".join(f"{m[app][r] / m['baseline'][r]:.2f}" for r in sorted(m[app]))
    print(f"  {app}: wall {mean(wall[app]):.1f} s ({mean(wall[app]) / mean(wall['baseline']):.2f}x the baseline;"
          f" rounds {per_round(wall)}), CPU {mean(cpu[app]):.1f} s ({mean(cpu[app]) / mean(cpu['baseline']):.2f}x;"
          f" rounds {per_round(cpu)}), {crates[app]} crates")
PY
  echo "compiler CPU seconds by crate, mean of the rounds, each application less the baseline (a crate built for both"
  echo "the build scripts and the program counts twice; build_script_build is every build script's"
  echo "compilation; $CARGO_TARGET_DIR/rustc-cpu-*.log):"
  python3 - "$CARGO_TARGET_DIR" "$rounds" $apps_order <<'PY'
import collections, sys
target, rounds, apps = sys.argv[1], sys.argv[2], sys.argv[3:]
def load(app):
    cpu = collections.Counter()
    for line in open(f"{target}/rustc-cpu-{app}.log"):
        f = line.split()
        try:
            cpu[f[0]] += float(f[-2]) + float(f[-1])
        except (ValueError, IndexError):
            pass
    return collections.Counter({name: t / rounds for name, t in cpu.items()})
rounds = int(rounds)
base = load("baseline")
print(f"  baseline: {sum(base.values()):.1f} s of compiler CPU")
for app in (a for a in apps if a != "baseline"):
    cpu = load(app)
    extra = {name: cpu[name] - base.get(name, 0) for name in cpu}
    top = sorted(extra.items(), key=lambda kv: -kv[1])[:16]
    print(f"  {app}: {sum(cpu.values()):.1f} s (+{sum(cpu.values()) - sum(base.values()):.1f}); most added: "
          + ", ".join(f"{n} {v:.1f}" for n, v in top))
PY
  echo "build scripts run (wall seconds, cargo build --timings, last round):"
  python3 - "$CARGO_TARGET_DIR" $apps_order <<'PY'
import json, re, sys
target, apps = sys.argv[1], sys.argv[2:]
units = {}
for app in apps:
    html = open(f"{target}/timing-{app}.html").read()
    units[app] = json.loads(re.search(r"const UNIT_DATA = (\[.*?\]);\n", html, re.S).group(1))
    runs = sorted((u for u in units[app] if u.get("mode") == "run-custom-build"), key=lambda u: -u["duration"])
    print(f"  {app}: " + ", ".join(f"{u['name']} {u['duration']:.2f}" for u in runs[:4]))
# On two cores the build is CPU-bound until its last crates, which compile alone: that tail is
# where a crate's own compile time adds to the wall time in full.
print("the tail (last round): seconds at the end of the build with one unit running, and the last library compiled:")
for app in apps:
    end = max(u["start"] + u["duration"] for u in units[app])
    t, alone = end - 0.05, 0.0
    while t > 0 and sum(1 for u in units[app] if u["start"] <= t < u["start"] + u["duration"]) <= 1:
        alone, t = alone + 0.1, t - 0.1
    libs = [u for u in units[app] if u.get("mode") == "todo" and u["name"] != app]
    last = max(libs, key=lambda u: u["start"] + u["duration"])
    print(f"  {app}: {alone:.1f} s of {end:.1f} s; last library {last['name']} {last['duration']:.1f} s")
PY
fi
