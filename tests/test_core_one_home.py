"""One home per fact: the file-name grammar, the fit parameters, the CLI's choice lists, the clock."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from fgsarchive import choices

REPO = Path(__file__).resolve().parent.parent
SOURCES = sorted([*(REPO / "fgsarchive").rglob("*.py"), *(REPO / "scripts").glob("*.py")])


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def _trees() -> dict[str, ast.AST]:
    return {_rel(p): ast.parse(p.read_text(), str(p)) for p in SOURCES}


def test_file_name_grammar_is_written_only_in_names_py() -> None:
    written = [
        _rel(p)
        for p in [*SOURCES, *(REPO / "tests").glob("*.py")]
        if "acq1|acq2" in p.read_text() and p.name != Path(__file__).name
    ]
    assert written == ["fgsarchive/names.py"]


def test_fit_parameter_list_is_written_only_in_choices() -> None:
    """No tuple or list literal of the 7 parameter names outside choices.py."""
    copies = []
    for name, tree in _trees().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Tuple | ast.List) and all(
                isinstance(e, ast.Constant) for e in node.elts
            ):
                if tuple(e.value for e in node.elts) == choices.FIT_PARAMETERS:
                    copies.append(f"{name}:{node.lineno}")
    assert copies == [f"fgsarchive/choices.py:{_literal_line('FitParameter')}"]


def _literal_line(type_name: str) -> int:
    for i, line in enumerate((REPO / "fgsarchive/choices.py").read_text().splitlines(), 1):
        if line.startswith(f"{type_name} = Literal["):
            return i
    raise AssertionError(type_name)


def test_stages_and_cli_read_the_one_list() -> None:
    from fgsarchive import archive, plots
    from fgsarchive.analysis import runner as analysis_runner
    from fgsarchive.cli import analysis as cli_analysis
    from fgsarchive.cli import people as cli_people
    from fgsarchive.fit import model, runner

    assert model.PARAM_NAMES is choices.FIT_PARAMETERS
    assert analysis_runner.FIT_PARAMETERS is choices.FIT_PARAMETERS
    assert analysis_runner.PERIODOGRAM_PARAMETERS is choices.PERIODOGRAM_PARAMETERS
    assert set(choices.FIT_PARAMETERS) <= set(archive.TIMESERIES_COLUMNS)
    assert analysis_runner.GROUPINGS is choices.GROUPINGS
    assert runner.WHATS is choices.FIT_PRODUCTS
    assert set(runner.DATASET) == set(choices.FIT_PRODUCTS)
    assert tuple(plots.PLOT_KINDS) == choices.PLOT_KIND_NAMES
    assert cli_people.PLOT_KIND_NAMES is choices.PLOT_KIND_NAMES
    assert cli_analysis.GROUPINGS is choices.GROUPINGS


def test_fit_summary_names_every_status() -> None:
    from fgsarchive.cli.fit import _status_label
    from fgsarchive.fit.model import FitStatus

    labels = {int(s): _status_label(int(s)) for s in FitStatus}
    known = {0: "converged", 1: "not converged", 2: "bad frame", 3: "no star", 4: "diverged"}
    assert {k: labels[k] for k in known} == known
    assert len(set(labels.values())) == len(labels)  # every status has a label of its own
    assert not any(label.isdigit() for label in labels.values())
    assert _status_label(99) == "99"  # an unknown code is printed as is


def test_one_warn_one_clock_and_windows_named_for_what_they_plan() -> None:
    defined: dict[str, list[str]] = {}
    for name, tree in _trees().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef):
                defined.setdefault(node.name, []).append(name)
    assert "_warn" not in defined and "_utcnow" not in defined and "plan_windows" not in defined
    assert defined["warn"] == ["fgsarchive/cli/common.py"]
    assert defined["utcnow"] == ["fgsarchive/clock.py"]
    naive_now = [
        _rel(p)
        for p in SOURCES
        if ".replace(tzinfo=None)" in p.read_text() and "datetime.now(" in p.read_text()
    ]
    assert naive_now == ["fgsarchive/clock.py"]


def test_choices_module_stays_light() -> None:
    code = (
        "import sys, fgsarchive.choices; "
        "heavy = {'numpy', 'numba', 'matplotlib', 'polars', 'duckdb'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
