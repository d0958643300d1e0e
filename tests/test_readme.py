"""The README's promises: its quickstart block is the tested one, its test command is CI's."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _python_block(text: str) -> str:
    start = text.index("```python") + len("```python")
    return text[start : text.index("```", start)].strip()


def test_readme_quickstart_is_the_tested_quickstart():
    readme = (ROOT / "README.md").read_text()
    quickstart = (ROOT / "docs" / "quickstart.md").read_text()
    assert _python_block(readme) == _python_block(quickstart)


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = 'python -m pip install ".[test]" && python -m pytest -q'
    assert command in readme and command in ci
