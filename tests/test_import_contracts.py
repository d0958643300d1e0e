"""The package's layering rules, checked from the source's own imports (an AST walk, no import).

Rules (docs/CONVENTIONS.md "Layering rules"):
- only ``fgsarchive/cli/`` imports typer, rich or ``fgsarchive.cli`` (only the CLI knows the terminal);
- no import cycles between the package's modules (lazy imports inside functions count too);
- the pure maths (``fit/model.py``, ``fit/photometry.py``, ``analysis/{detrend,periodogram,anomalies,
  variables}.py``) imports nothing from ``db``, ``storage`` or ``archive``, directly or through others;
- only ``fgsarchive/testing/``, the demo and the tests import the simulator or the test server;
- the simulator package's modules import only the ones below them (``SIMULATOR_LAYERS``);
- every runtime dependency in ``pyproject.toml`` is imported by the package, and the package
  imports nothing undeclared;
- every public exception and warning class is defined in ``fgsarchive/errors.py``;
- the environment is read in ``fgsarchive/config.py`` only.

Run ``python tests/test_import_contracts.py`` to print how many places break each rule.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "fgsarchive"

TERMINAL_LIBRARIES = ("typer", "rich", "fgsarchive.cli")
PURE_MATHS = (
    "fgsarchive.fit.model",
    "fgsarchive.fit.photometry",
    "fgsarchive.analysis.detrend",
    "fgsarchive.analysis.periodogram",
    "fgsarchive.analysis.anomalies",
    "fgsarchive.analysis.variables",
)
STORAGE_LAYER = ("fgsarchive.db", "fgsarchive.storage", "fgsarchive.archive")
TEST_GLUE = ("fgsarchive.simulate", "fgsarchive.testing")
TEST_GLUE_USERS = ("fgsarchive.testing", "fgsarchive.demo", "fgsarchive.cli.demo")
# the simulator package's modules, lowest first: each imports only those before it
# (docs/simulator.md "Where the code is")
SIMULATOR_LAYERS = (
    "times",
    "injections",
    "psf",
    "writer",
    "plan",
    "noise",
    "physics",
    "tables",
    "truth",
    "edb",
    "runner",
    "generator",
)
# pyproject names whose import name differs
IMPORT_NAMES = {"nifty-ls": "nifty_ls", "pillow": "PIL", "pyyaml": "yaml"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules() -> dict[str, Path]:
    """Every module of the package, by dotted name."""
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute dotted name) for every import in a file, top-level or inside functions.

    ``from a import b`` yields ``a.b`` when that is a module of the package, else ``a``.
    """
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    modules = package_modules()
    for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "__future__":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                yield node.lineno, sub if sub in modules else target


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node that can run: all but the bodies of ``if TYPE_CHECKING:`` (annotations only)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                todo.extend(child.orelse)
            else:
                todo.append(child)


def _is_under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports."""
    modules = package_modules()
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for _, target in imports_of(path):
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and target != "fgsarchive":
                targets.add(target)
        edges[name] = targets
    return edges


def _breaks(allowed: tuple[str, ...], forbidden: tuple[str, ...]) -> list[str]:
    """``file:line imports X`` for each import of a forbidden module outside the allowed ones."""
    found = {
        f"{path.relative_to(ROOT)}:{line} imports {target.split('.')[0] if target.split('.')[0] != 'fgsarchive' else target}"
        for name, path in package_modules().items()
        if not _is_under(name, allowed)
        for line, target in imports_of(path)
        if _is_under(target, forbidden)
    }
    return sorted(found, key=lambda s: (s.split(":")[0], int(s.split(":")[1].split()[0])))


def terminal_breaks() -> list[str]:
    return _breaks(("fgsarchive.cli", "fgsarchive.__main__"), TERMINAL_LIBRARIES)


def glue_breaks() -> list[str]:
    return _breaks(TEST_GLUE_USERS + ("fgsarchive.simulate",), TEST_GLUE)


def simulator_layer_breaks() -> list[str]:
    """Simulator modules that import their own package, a module listed after them in
    ``SIMULATOR_LAYERS``, or that the list does not name."""
    found = []
    for name, path in package_modules().items():
        if not name.startswith("fgsarchive.simulate."):
            continue
        own = name.rpartition(".")[2]
        if own not in SIMULATOR_LAYERS:
            found.append(f"{path.relative_to(ROOT)} is not in SIMULATOR_LAYERS")
            continue
        for line, target in imports_of(path):
            if _is_under(target, ("fgsarchive.simulate",)):
                sub = target.removeprefix("fgsarchive.simulate").lstrip(".").partition(".")[0]
                if sub not in SIMULATOR_LAYERS[: SIMULATOR_LAYERS.index(own)]:
                    found.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    return found


def cycles() -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    edges = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def pure_maths_breaks() -> list[str]:
    """Pure-maths modules that reach db, storage or archive, with the path that does it."""
    edges = graph()
    breaks = []
    for start in PURE_MATHS:
        seen = {start: [start]}
        todo = [start]
        while todo:
            node = todo.pop()
            for nxt in edges.get(node, ()):
                if nxt not in seen:
                    seen[nxt] = seen[node] + [nxt]
                    todo.append(nxt)
        breaks += [" -> ".join(seen[s]) for s in STORAGE_LAYER if s in seen]
    return breaks


def error_classes_outside_errors() -> list[str]:
    """Public exception or warning classes defined anywhere but ``fgsarchive/errors.py``."""
    found = []
    for name, path in package_modules().items():
        if name == "fgsarchive.errors":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                bases = " ".join(ast.unparse(b) for b in node.bases)
                if re.search(r"(Error|Warning|Exception)\b", bases + " " + node.name):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    return found


def environment_reads_outside_config() -> list[str]:
    """``os.environ`` / ``os.getenv`` outside ``config.py`` (the test server may read its own)."""
    found = []
    for name, path in package_modules().items():
        if name in ("fgsarchive.config",) or _is_under(name, ("fgsarchive.testing",)):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv")) or (
                isinstance(node, ast.Name) and node.id in ("environ", "getenv")
            ):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} reads the environment")
    return found


def runtime_dependencies() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = [
        re.split(r"[<>=!~\[ ;]", dep, maxsplit=1)[0].lower() for dep in project["dependencies"]
    ]
    return [IMPORT_NAMES.get(n, n.replace("-", "_")) for n in names]


def unused_dependencies() -> list[str]:
    imported = {
        target.split(".")[0]
        for path in package_modules().values()
        for _, target in imports_of(path)
    }
    return [dep for dep in runtime_dependencies() if dep not in imported]


def test_only_the_cli_knows_the_terminal():
    assert terminal_breaks() == []


def test_no_import_cycles():
    assert cycles() == []


def test_pure_maths_does_not_touch_storage():
    assert pure_maths_breaks() == []


def test_simulator_modules_import_only_lower_ones():
    assert simulator_layer_breaks() == []


def test_simulator_layer_check_sees_breaks(tmp_path, monkeypatch):
    """A planted upward import, a package import and an unlisted module are each found."""
    sim = tmp_path / "fgsarchive" / "simulate"
    sim.mkdir(parents=True)
    (sim.parent / "__init__.py").write_text("")
    (sim / "__init__.py").write_text("from .times import x\n")
    (sim / "times.py").write_text("from .psf import y\n")
    (sim / "psf.py").write_text("from .times import x\nfrom . import z\n")
    (sim / "extra.py").write_text("")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", sim.parent)
    assert simulator_layer_breaks() == [
        "fgsarchive/simulate/extra.py is not in SIMULATOR_LAYERS",
        "fgsarchive/simulate/psf.py:2 imports fgsarchive.simulate",
        "fgsarchive/simulate/times.py:1 imports fgsarchive.simulate.psf",
    ]


def test_only_testing_and_demo_import_the_simulator_or_test_server():
    assert glue_breaks() == []


def undeclared_imports() -> list[str]:
    """Third-party modules the package imports that are neither runtime dependencies nor extras."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = {  # an extra's packages and their own extras ("dask[distributed]": dask, distributed)
        IMPORT_NAMES.get(n, n.replace("-", "_"))
        for name, deps in project["optional-dependencies"].items()
        if name != "test"
        for dep in deps
        for n in re.findall(r"[A-Za-z0-9_.-]+", dep.split(">")[0].split("=")[0].lower())
    }
    declared = set(runtime_dependencies()) | extras | {"fgsarchive"}
    found = set()
    for path in package_modules().values():
        for line, target in imports_of(path):
            top = target.split(".")[0]
            if top and top not in sys.stdlib_module_names and top not in declared:
                found.add(f"{path.relative_to(ROOT)}:{line} imports {top}")
    return sorted(found)


def test_the_package_imports_only_declared_dependencies():
    assert undeclared_imports() == []


def test_the_environment_is_read_in_config_py_only():
    assert environment_reads_outside_config() == []


def test_every_public_error_class_lives_in_errors_py():
    assert error_classes_outside_errors() == []


def test_every_runtime_dependency_is_imported_by_the_package():
    assert unused_dependencies() == []


def test_rules_see_breaks(tmp_path, monkeypatch):
    """The checks above can fail: a planted file that breaks each rule is found."""
    fake = tmp_path / "fgsarchive"
    (fake / "fit").mkdir(parents=True)
    (fake / "analysis").mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "fit" / "__init__.py").write_text("")
    (fake / "analysis" / "__init__.py").write_text("")
    (fake / "fit" / "model.py").write_text("from ..helper import x\n")
    (fake / "helper.py").write_text(
        "from .archive import Archive\nimport rich\nimport os\nos.environ\n"
    )
    (fake / "archive.py").write_text("from .fit import model\nfrom .simulate import go\n")
    (fake / "simulate.py").write_text("class SimError(ValueError):\n    pass\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    assert terminal_breaks() == ["fgsarchive/helper.py:2 imports rich"]
    assert cycles() == [["fgsarchive.archive", "fgsarchive.fit.model", "fgsarchive.helper"]]
    assert pure_maths_breaks() == [
        "fgsarchive.fit.model -> fgsarchive.helper -> fgsarchive.archive"
    ]
    assert glue_breaks() == ["fgsarchive/archive.py:2 imports fgsarchive.simulate"]


HEAVY = ("duckdb", "matplotlib", "numba", "astropy", "pyarrow", "polars", "scipy")


@pytest.mark.parametrize("module", ["fgsarchive.cli"])
def test_importing_the_cli_loads_no_heavy_library(module):
    """``fgsarchive --version`` and ``--help`` stay fast: the CLI imports its stages lazily."""
    code = f"import sys, {module}; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.split() == []


if __name__ == "__main__":
    for title, found in [
        ("terminal outside cli/", terminal_breaks()),
        ("import cycles", cycles()),
        ("pure maths reaching storage", pure_maths_breaks()),
        ("simulator/test server outside testing/, demo", glue_breaks()),
        ("simulator modules importing higher ones", simulator_layer_breaks()),
        ("runtime dependencies not imported", unused_dependencies()),
        ("imports that are no declared dependency", undeclared_imports()),
        ("public error/warning classes outside errors.py", error_classes_outside_errors()),
        ("environment read outside config.py", environment_reads_outside_config()),
    ]:
        print(f"{title}: {len(found)}")
        for item in found:
            print("   ", item)
