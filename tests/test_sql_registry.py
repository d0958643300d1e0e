"""The SQL registry (fgsarchive.sql): every file used, every used name a file, one place for slots."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import duckdb
import pytest

from fgsarchive import sql
from fgsarchive.errors import ArchiveError

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "fgsarchive"
SCRIPTS = REPO / "scripts"


def _areas() -> set[str]:
    return {name.split("/", 1)[0] for name in sql.statements()}


def _references(root: Path) -> tuple[set[str], set[str], set[str]]:
    """Names the code under ``root`` passes to the registry: ``(names, prefixes, areas)``.

    A string constant ``"<area>/<name>"`` is a name; an f-string starting with ``"<area>/..."``
    (``f"checksum/{relation}"``) a prefix; ``sql.names("<area>")`` takes a whole area.
    """
    areas = _areas() | {"plots"}
    names: set[str] = set()
    prefixes: set[str] = set()
    whole: set[str] = set()
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        in_fstrings = {
            id(part)
            for node in ast.walk(tree)
            if isinstance(node, ast.JoinedStr)
            for part in node.values
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in in_fstrings
            ):
                area, _, rest = node.value.partition("/")
                if area in areas and rest and rest.replace("_", "").isalnum():
                    names.add(node.value)
            elif isinstance(node, ast.JoinedStr) and node.values:
                first = node.values[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    area, slash, _ = first.value.partition("/")
                    if slash and area in areas:
                        prefixes.add(first.value)
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute | ast.Name)
                and getattr(node.func, "attr", getattr(node.func, "id", None)) == "names"
                and len(node.args) == 1
                and isinstance(node.args[0], ast.Constant)
            ):
                whole.add(node.args[0].value)
    return names, prefixes, whole


def test_every_sql_file_is_used_by_the_code() -> None:
    names, prefixes, whole = _references(PACKAGE)
    unused = [
        name
        for name in sql.statements()
        if name not in names
        and not any(name.startswith(p) for p in prefixes)
        and name.split("/", 1)[0] not in whole
    ]
    assert unused == [], f"SQL files no code runs (delete or use them): {unused}"


def test_every_name_the_code_uses_has_a_file() -> None:
    names, prefixes, whole = _references(PACKAGE)
    known = sql.statements()
    assert names, "the scan found no SQL names: it is broken"
    assert sorted(n for n in names if n not in known) == []
    assert sorted(p for p in prefixes if not any(k.startswith(p) for k in known)) == []
    assert sorted(a for a in whole if a not in _areas()) == []


def test_every_benchmark_query_is_used_and_exists() -> None:
    files = {p.stem for p in (SCRIPTS / "sql").glob("*.sql")}
    used = set()
    for path in SCRIPTS.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if re.fullmatch(r"bench_[a-z0-9_]*[a-z0-9]", node.value):
                    used.add(node.value)
    assert files and files == used


def test_slots_are_filled_only_by_the_registry() -> None:
    """``.replace("{slot}", ...)`` on SQL text anywhere else would bypass identifier checks."""
    offenders = [
        f"{path.relative_to(REPO)}:{i}"
        for path in [*PACKAGE.rglob("*.py"), *SCRIPTS.glob("*.py")]
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if '.replace("{' in line
    ]
    assert offenders == []


def test_every_statement_parses() -> None:
    for name, text in sql.statements().items():
        slots = set(sql._SLOT.findall(text))
        if slots:  # a template: fill every slot with something neutral
            fill = {s: sql.Fragment("") for s in slots}
            fill.update({s: "x" for s in slots & {"view", "table", "relation", "alias", "version"}})
            fill.update({s: "x" for s in slots & {"database", "source", "target"}})
            fill.update({s: sql.string_literal("x.parquet") for s in slots & {"glob"}})
            fill.update({s: True for s in slots & {"union_by_name"}})
            fill.update({s: sql.Fragment("true") for s in slots & {"guard"}})
            fill.update({s: sql.string_literal("x") for s in slots & {"paths", "message", "path"}})
            if name == "api/timeseries_binned_part":  # a CTE, spliced into a WITH
                text = "WITH " + sql.render(name, **fill) + " SELECT 1"
            else:
                text = sql.render(name, **fill)
        assert duckdb.extract_statements(text), name


def test_unknown_name_fails_naming_it_and_the_close_ones() -> None:
    with pytest.raises(ArchiveError, match=r"'analysis/peak_insert'.*analysis/peaks_insert"):
        sql.text("analysis/peak_insert")
    with pytest.raises(ArchiveError, match="no SQL area named 'nope'"):
        sql.names("nope")


def test_render_validates_identifiers_and_slots() -> None:
    assert sql.render("core/count_rows", relation="files").strip().endswith('FROM "files"')
    for bad in ("files; DROP TABLE files", 'x"y', "Files", "1x", ""):
        with pytest.raises(ArchiveError, match="invalid SQL identifier"):
            sql.render("core/count_rows", relation=bad)
    with pytest.raises(ArchiveError, match=r"missing slot\(s\) \['relation'\]"):
        sql.render("core/count_rows")
    with pytest.raises(ArchiveError, match=r"unknown slot\(s\) \['other'\]"):
        sql.render("core/count_rows", relation="files", other="x")
    assert sql.string_literal("it's") == "'it''s'"
    view = sql.render(
        "core/parquet_view", view="v", glob=sql.string_literal("a'b/*.parquet"), union_by_name=False
    )
    assert "read_parquet('a''b/*.parquet'" in view and "union_by_name = false" in view


def test_schema_and_views_run_in_file_order() -> None:
    assert sql.names("schema") == ["schema/analysis", "schema/core", "schema/crawl"]
    assert sql.names("views") == sorted(sql.names("views"))


def test_registry_reads_the_files_inside_the_package() -> None:
    from importlib import resources

    root = Path(str(resources.files("fgsarchive.sql")))
    assert root == PACKAGE / "sql"
    on_disk = {f"{p.parent.name}/{p.stem}" for p in root.glob("*/*.sql")}
    assert on_disk == set(sql.statements())
    assert not (REPO / "sql").exists(), (
        "the top-level sql/ folder is gone: SQL lives in the package"
    )


@pytest.mark.slow
def test_the_wheel_contains_every_sql_file(tmp_path: Path) -> None:
    import importlib.util

    assert importlib.util.find_spec("hatchling"), "hatchling (a test dependency) builds the wheel"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
        + ["-w", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("fgsarchive-*.whl")
    packed = {n for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".sql")}
    assert packed == {f"fgsarchive/sql/{name}.sql" for name in sql.statements()}
