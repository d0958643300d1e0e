"""What a new user hit on first use (issue 11): table output precision, global flags anywhere,
query --out and SQL errors, help texts, demo arguments. On the shared analysed archive (read-only)."""

from __future__ import annotations

import logging
import re
import shlex

import click
import pytest
import typer
from typer.testing import CliRunner

from fgsarchive.cli import EXAMPLES, app, reorder_global_flags

runner = CliRunner()


def invoke(*args, **kw):
    return runner.invoke(app, [str(a) for a in args], **kw)


def _cells(output: str, column: int) -> list[str]:
    rows = [line for line in output.splitlines() if line.startswith("│")]
    return [row.split("│")[column + 1].strip() for row in rows]


def test_table_output_keeps_mjd_precision(analysed_archive):
    result = invoke(
        "query", "SELECT time_mjd, flux FROM frames ORDER BY time_mjd LIMIT 20", "--db",
        analysed_archive,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    times = _cells(result.output, 0)
    assert len(times) == 20 and all(re.fullmatch(r"\d{5}\.\d{6,9}", t) for t in times)
    assert len(set(times)) == 20  # 64-ms frames print distinct (59918 for all before)
    fluxes = _cells(result.output, 1)
    assert len(set(fluxes)) == 20  # distinct values print distinct


def test_status_table_shows_mjd_to_a_microday(analysed_archive):
    result = invoke("status", "--db", analysed_archive)
    assert result.exit_code == 0, result.output
    assert re.search(r"\d{5}\.\d{6}", result.output)


def test_floats_get_the_digits_that_tell_rows_apart():
    from fgsarchive.cli.common import _column_formatter

    values = [1.0000001, 1.0000002, 1.0000003]
    fmt = _column_formatter("x", values)
    assert len({fmt(v) for v in values}) == 3
    assert _column_formatter("start_mjd", [59918.1234567])(59918.1234567) == "59918.123457"
    # consecutive frames 64 ms apart that round to the same microday: one more decimal
    frames = [59918.0007996, 59918.0007996 + 0.064 / 86400]
    fmt = _column_formatter("time_mjd", frames)
    assert [fmt(t) for t in frames] == ["59918.0007996", "59918.0008003"]
    assert _column_formatter("flux", [1297236.148])(1297236.148) == "1297236"
    assert _column_formatter("fap", [1e-12])(1e-12) == "1e-12"


@pytest.mark.parametrize(
    "args",
    [
        ["status", "--verbose"],
        ["status", "-q"],
        ["--verbose", "status"],
        ["status", "--db", "{db}", "-v"],
    ],
)
def test_global_flags_before_or_after_the_command(analysed_archive, args):
    args = [a.replace("{db}", str(analysed_archive)) for a in args]
    if "--db" not in args:
        args += ["--db", str(analysed_archive)]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert "programs" in result.output


def test_db_before_the_command(analysed_archive):
    result = invoke("--db", analysed_archive, "status")
    assert result.exit_code == 0, result.output
    assert "1534" in result.output


def test_reorder_global_flags():
    commands = {"status", "query"}
    assert reorder_global_flags(["status", "--verbose"], commands) == ["--verbose", "status"]
    assert reorder_global_flags(["--db", "a", "query", "x", "-q"], commands) == [
        "-q", "query", "--db", "a", "x",
    ]  # fmt: skip
    assert reorder_global_flags(["query", "--", "-v"], commands) == ["query", "--", "-v"]


def test_verbose_logs_ours_not_third_party(analysed_archive):
    result = invoke("--verbose", "status", "--db", analysed_archive)
    assert result.exit_code == 0, result.output
    assert logging.getLogger("fgsarchive").getEffectiveLevel() == logging.DEBUG
    assert logging.getLogger("matplotlib.font_manager").getEffectiveLevel() >= logging.WARNING
    invoke("status", "--db", analysed_archive)
    assert logging.getLogger("fgsarchive").getEffectiveLevel() >= logging.WARNING


def test_query_out_says_what_it_wrote(analysed_archive, tmp_path):
    out = tmp_path / "new" / "dir" / "x.csv"
    result = invoke("query", "SELECT * FROM anomalies", "--out", out, "--db", analysed_archive)
    assert result.exit_code == 0, result.output
    assert out.exists()
    assert f"to {out}" in result.output and "created folder" in result.output
    assert re.search(r"wrote \d+ row\(s\) as csv", result.output)


def test_sql_errors_keep_duckdbs_hints(analysed_archive):
    result = invoke("query", "SELECT * FROM frame", "--db", analysed_archive)
    assert result.exit_code != 0
    assert 'Did you mean "frames"' in result.output
    result = invoke("query", "SELEC 1", "--db", analysed_archive)
    assert "LINE 1: SELEC 1" in result.output and "^" in result.output


def _help(*command) -> str:
    return invoke(*command, "--help", terminal_width=160).output


def test_help_shows_plain_value_types_and_examples():
    command = typer.main.get_command(app)
    for name in command.commands:
        text = _help(name)
        assert "<bool>" not in text and "<list[" not in text and "<int>" not in text, name
        assert "Example" in text, f"{name} --help has no example"
    assert "INTEGER" in _help("telemetry")  # --program is an int like everywhere else
    demo = _help("demo")
    assert re.search(r"--workers\s+INTEGER\s+Parallel", demo)


@pytest.mark.parametrize("example", [e for v in EXAMPLES.values() for e in v])
def test_every_help_example_parses(example):
    args = shlex.split(example)[1:]
    group = typer.main.get_command(app)
    command = group.commands[args[0]]
    try:
        command.make_context(args[0], args[1:])
    except click.exceptions.UsageError as exc:  # pragma: no cover - the failure message
        pytest.fail(f"{example}: {exc}")


def test_demo_refuses_too_few_frames(tmp_path):
    result = invoke("demo", "--frames", 0, "--workdir", tmp_path / "w", "--db", tmp_path / "a.db")
    assert result.exit_code == 2
    assert "at least 8,000 frames" in result.output
    assert not (tmp_path / "w").exists()
