"""docs/errors.md stays true: every test it names exists, and its tables are well formed.

Reads the files with ``ast`` (no pytest collection), so it runs in a fraction of a second.
"""

import ast
import re
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "errors.md"

# `tests/x/test_y.py`, `tests/x/test_y.py::test_z[id]` and `::test_z` (a test of the file named
# last before it), each inside backticks.
REFERENCE = re.compile(r"`((?:tests/[\w/]+\.py)?)(?:::(\w+)(?:\[[^\]`]*\])?)?`")


def references(text: str) -> list[tuple[int, str, str | None]]:
    """``(line number, file, test name or None)`` of every test the text names, in order.

    A ``::name`` without a file refers to the file named last before it.
    """
    found, last_file = [], None
    for number, line in enumerate(text.splitlines(), start=1):
        for match in REFERENCE.finditer(line):
            path, name = match.group(1), match.group(2)
            if not path and not name:
                continue
            if path:
                last_file = path
            elif last_file is None:
                raise AssertionError(f"docs/errors.md:{number}: `::{name}` names no file before it")
            found.append((number, path or last_file, name))
    return found


@cache
def defined_tests(path: str) -> frozenset[str]:
    """Names of the ``test_*`` functions a test file defines (module level or in a class)."""
    tree = ast.parse((REPO / path).read_text(), filename=path)
    return frozenset(
        node.name for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
    )


def tables(text: str) -> list[list[tuple[int, str]]]:
    """The tables of a markdown text: for each, its ``(line number, line)`` rows, header first."""
    blocks, current = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("|"):
            current.append((number, line))
        elif current:
            blocks.append(current)
            current = []
    if current:
        blocks.append(current)
    return blocks


def cells(line: str) -> int:
    """Number of cells of a table row; a ``|`` inside a code span does not separate cells."""
    outside = re.sub(r"`[^`]*`", "", line)
    return outside.strip().strip("|").count("|") + 1


def test_every_named_test_exists() -> None:
    text = DOC.read_text()
    refs = references(text)
    assert len(refs) > 50, "docs/errors.md names fewer tests than expected; is the regex right?"
    missing = []
    for number, path, name in refs:
        if not (REPO / path).is_file():
            missing.append(f"docs/errors.md:{number}: {path} does not exist")
        elif name is not None and name not in defined_tests(path):
            missing.append(f"docs/errors.md:{number}: {path} defines no test {name}")
    assert not missing, "\n".join(missing)


def test_every_table_row_is_in_a_table_and_names_a_test() -> None:
    problems = []
    for table in tables(DOC.read_text()):
        (first, header), *rows = table
        if not rows or not re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", rows[0][1]):
            problems.append(f"docs/errors.md:{first}: row outside a table (no header above)")
            continue
        width = cells(header)
        for number, row in rows[1:]:
            if cells(row) != width:
                problems.append(f"docs/errors.md:{number}: {cells(row)} cells, header has {width}")
            if not REFERENCE.search(row) or "tests/" not in row and "`::" not in row:
                problems.append(f"docs/errors.md:{number}: row names no test")
    assert not problems, "\n".join(problems)


def test_no_row_is_listed_twice() -> None:
    rows = [line for table in tables(DOC.read_text()) for _, line in table[2:]]
    twice = sorted({row for row in rows if rows.count(row) > 1})
    assert not twice, "\n".join(twice)


def test_the_fault_case_counts_are_those_of_the_table() -> None:
    text = DOC.read_text()
    section = text.split("## Fault cases tried", 1)[1].split("\n## ", 1)[0]
    stated = re.search(r"(\d+) cases: ([^(]+)\(", section)
    assert stated, "the fault-case section states no count"
    kinds = [line.split("|")[1].strip() for _, line in tables(section)[0][2:]]
    said = {kind.strip(): int(n) for n, kind in re.findall(r"(\d+) ([a-z ]+)", stated.group(2))}
    assert int(stated.group(1)) == len(kinds) == sum(said.values())
    assert said == {kind: kinds.count(kind) for kind in set(kinds)}
    assert len(kinds) >= 47


def test_references_resolve_continuations_and_ids() -> None:
    text = ("see `tests/a/test_b.py::test_c[x-1]`, `::test_d` and `tests/e.py`\n"
            "then `::test_f`; `not a test` and `tests/a/test_b.py::test_g`")
    b = "tests/a/test_b.py"
    assert references(text) == [(1, b, "test_c"), (1, b, "test_d"), (1, "tests/e.py", None),
                                (2, "tests/e.py", "test_f"), (2, b, "test_g")]
    assert cells("| a `x | y` | b | c |") == 3


def test_a_missing_test_would_be_found() -> None:
    here = "tests/test_docs_errors.py"
    assert "test_every_named_test_exists" in defined_tests(here)
    assert "test_nothing_of_that_name" not in defined_tests(here)
