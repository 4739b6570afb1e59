#!/usr/bin/env python3
"""Checks TESTING.md's index from README.md's promises to the tests that prove them.

Usage: cargo test --all-features -- --list 2>&1 | python3 scripts/check_test_index.py

- Every part of README.md has at least one row in the index: each `## ` section, and the text
  before the first one, named `(top)` in the index.
- Every test a row names exists: it is in what `cargo test --all-features -- --list` lists
  (passed on stdin, stderr included, so that the `Running <target>` lines tell which file each
  test is in).
- A row names no README section that does not exist, and names at least one test.

A row is a Markdown table row of the index: `| README section | the promise | tests |`, the tests
as `file::name` (`tests/seams.rs::send_to_another_host_is_refused_before_anything_is_sent`,
`src/lib.rs::transport::rules::tests::entries_that_are_not_hosts_match_nothing`, for an
example's tests `examples/testing.rs::name`), several separated by `<br>`, each in backticks.
README.md's own code, which `cargo test --doc` runs (src/lib.rs includes README.md as the crate's
documentation, so its doctests are listed as `src/lib.rs - (line N)`, N the line in README.md),
is named `README.md § Section`: some code block of that section must be among the doctests.

Exit status 1, with every failure on stderr, when a check fails; the counts on stdout.
"""

import re
import sys

INDEX_START = "<!-- promise index: begin -->"
INDEX_END = "<!-- promise index: end -->"
TOP = "(top)"

# README sections whose promises no test can prove, with the reason; they need no rows.
NO_PROMISES = {
    "Cost": "quotes BENCHMARKS.md, whose figures benches/ measure: no test proves a timing",
}


def listed_tests(listing: str):
    """`file::name` for every test of the listing, and the README lines of the doctests."""
    tests = set()
    doctest_lines = set()
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
        if not (named and target):
            continue
        if target == "doctest":
            readme = re.match(r"^src/lib\.rs - \(line (\d+)\)$", named.group(1))
            if readme:
                doctest_lines.add(int(readme.group(1)))
        tests.add(f"{target}::{named.group(1)}")
    return tests, doctest_lines


def readme_sections(readme: str):
    """Each section's title and the span of its lines (1-based, end exclusive), `(top)` first."""
    lines = readme.splitlines()
    starts = [(TOP, 1)]
    in_fence = False
    for number, line in enumerate(lines, start=1):
        if line.startswith("```"):
            in_fence = not in_fence
        elif not in_fence and line.startswith("## "):
            starts.append((line[3:].strip(), number))
    spans = {}
    for i, (title, start) in enumerate(starts):
        end = starts[i + 1][1] if i + 1 < len(starts) else len(lines) + 1
        spans[title] = (start, end)
    return spans


def check(readme: str, testing: str, listing: str):
    """The failures, and the counts (rows, sections, tests listed)."""
    tests, doctest_lines = listed_tests(listing)
    if not tests:
        return ["no tests in the listing on stdin"], (0, 0, 0)
    if INDEX_START not in testing or INDEX_END not in testing:
        return [f"TESTING.md has no {INDEX_START} … {INDEX_END} block"], (0, 0, len(tests))
    index = testing.split(INDEX_START, 1)[1].split(INDEX_END, 1)[0]
    rows = [line for line in index.splitlines() if line.startswith("|")]
    sections = readme_sections(readme)
    sections_with_rows = set()
    failures = []
    for row in rows[2:]:  # the header and its rule
        cells = [cell.strip() for cell in row.strip().strip("|").split("|")]
        if len(cells) != 3:
            failures.append(f"a row without three cells: {row}")
            continue
        section, promise, named = cells
        if section not in sections:
            failures.append(f"the index names a README section “{section}” that does not exist")
            continue
        sections_with_rows.add(section)
        names = re.findall(r"`([^`]+)`", named)
        if not names:
            failures.append(f"{section}: “{promise}” names no test")
        for name in names:
            doc = re.match(r"^README\.md § (.+)$", name)
            if doc:
                title = doc.group(1)
                if title not in sections:
                    failures.append(f"{section}: “{promise}” names {name}: no such section")
                    continue
                start, end = sections[title]
                if not any(start <= line < end for line in doctest_lines):
                    failures.append(f"{section}: “{promise}” names {name}, which has no doctest")
            elif name not in tests:
                failures.append(f"{section}: “{promise}” names {name}, which is no test")
    for section in sections:
        if section not in sections_with_rows and section not in NO_PROMISES:
            failures.append(f"README section “{section}” has no row in TESTING.md's index")
    return failures, (len(rows) - 2, len(sections), len(tests))


def main() -> int:
    readme = open("README.md", encoding="utf-8").read()
    testing = open("TESTING.md", encoding="utf-8").read()
    failures, (rows, sections, tests) = check(readme, testing, sys.stdin.read())
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    print(f"{rows} promises indexed, {sections} parts of README.md, {tests} tests listed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
