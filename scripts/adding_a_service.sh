#!/usr/bin/env bash
# Adds the toy service (tests/fixtures/toy/) to a scratch copy of the crate with exactly the
# commands docs/adding-a-service.md gives, and runs its test: the page cannot go stale.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
page=docs/adding-a-service.md
commands=$(sed -n '/<!-- adding-a-service: begin -->/,/<!-- adding-a-service: end -->/p' "$page" \
  | sed -n '/^```sh$/,/^```$/p' | sed '1d;$d')
if [ -z "$commands" ]; then
  echo "error: $page has no commands between its adding-a-service markers" >&2
  exit 1
fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# The checkout as it stands (tracked files and new ones not ignored), without target/.
git ls-files -z --cached --others --exclude-standard \
  | tar --null -T - -cf - | tar -xf - -C "$scratch"
cd "$scratch"
# The copy has its own path, so its own build of the crate; the dependencies are the checkout's.
export NEW="$root/tests/fixtures/toy" CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
bash -euo pipefail -c "$commands"
