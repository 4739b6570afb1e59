#!/usr/bin/env python3
"""Checks TESTING.md's index from README.md's promises to the tests that prove them.

- Every `## ` section of README.md has at least one row in the index (sections that hold no
  promise, only commands or links, are named in NO_PROMISES below, with the reason).
- Every test a row names exists: it is in what `cargo test --all-features -- --list` lists
  (pass that listing on stdin, stderr included, so that the `Running <target>` lines tell which
  file each test is in).

A row is a Markdown table row of the index: `| README section | the promise | tests |`, the tests
as `file::name` (`tests/seams.rs::send_to_another_host_is_refused_before_anything_is_sent`,
`src/lib.rs::transport::rules::tests::entries_that_are_not_hosts_match_nothing`, or for an
example's tests `examples/testing.rs::name`), several separated by `<br>`, each in backticks.
"""

import re
import sys

INDEX_START = "<!-- promise index: begin -->"
INDEX_END = "<!-- promise index: end -->"

# README sections that make no behavioural promise of their own.
NO_PROMISES = {
}


def listed_tests(listing: str) -> set:
    """`file::name` for every test of the listing."""
    tests = set()
    target = None
    for line in listing.splitlines():
        running = re.match(r"\s*Running (?:unittests )?(\S+)", line)
        if running:
            target = running.group(1)
            continue
        if line.strip().startswith("Doc-tests"):
            target = "doctest"
            continue
        named = re.match(r"^(.+): test$", line)
        if named and target:
            tests.add(f"{target}::{named.group(1)}")
    return tests


def main() -> int:
    readme = open("README.md", encoding="utf-8").read()
    testing = open("TESTING.md", encoding="utf-8").read()
    listing = sys.stdin.read()
    tests = listed_tests(listing)
    if not tests:
        print("error: no tests in the listing on stdin", file=sys.stderr)
        return 1
    if INDEX_START not in testing or INDEX_END not in testing:
        print(f"error: TESTING.md has no {INDEX_START} … {INDEX_END} block", file=sys.stderr)
        return 1
    index = testing.split(INDEX_START, 1)[1].split(INDEX_END, 1)[0]
    rows = [line for line in index.splitlines() if line.startswith("|")]
    sections_with_rows = set()
    failures = []
    for row in rows[2:]:  # the header and its rule
        cells = [cell.strip() for cell in row.strip().strip("|").split("|")]
        if len(cells) != 3:
            failures.append(f"a row without three cells: {row}")
            continue
        section, promise, named = cells
        sections_with_rows.add(section)
        names = re.findall(r"`([^`]+)`", named)
        if not names:
            failures.append(f"{section}: “{promise}” names no test")
        for name in names:
            if name not in tests:
                failures.append(f"{section}: “{promise}” names {name}, which is no test")
    sections = re.findall(r"^## (.+)$", readme, flags=re.MULTILINE)
    for section in sections:
        if section not in sections_with_rows and section not in NO_PROMISES:
            failures.append(f"README section “{section}” has no row in TESTING.md's index")
    for section in sections_with_rows - set(sections):
        failures.append(f"the index names a README section “{section}” that does not exist")
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    print(f"{len(rows) - 2} promises, {len(sections)} README sections, {len(tests)} tests listed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
