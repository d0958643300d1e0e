"""The HTML report (rendered in headless Chromium) and the quickstart in docs/quickstart.md."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from helpers import people_archive
from PIL import Image
from typer.testing import CliRunner

from fgsarchive.archive import Archive
from fgsarchive.cli import app
from fgsarchive.report import write_program_report

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = next(
    (shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None
)


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    db_path, _ = people_archive.cached(tmp_path_factory)
    out = tmp_path_factory.mktemp("report")
    result = invoke("report", "--archive", "--out", out, "--db", db_path, "--max-visits", 2)
    assert result.exit_code == 0, result.output
    return out


def test_archive_report_pages(report_dir):
    index = (report_dir / "index.html").read_text()
    assert 'href="program-1534.html"' in index and "Most variable guide stars" in index
    page = (report_dir / "program-1534.html").read_text()
    for section in (
        "Visits",
        "Guide stars",
        "Time series by visit",
        "Periodogram peaks",
        "Anomalies",
        "Variability",
    ):
        assert section in page
    assert 'href="index.html"' in page
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,', page)
    # positions, 2 visits x (flux, parameters, telemetry), anomalies of visit 1, periodogram
    assert len(images) == 9, images
    assert "http://" not in page and "https://" not in page  # self-contained
    assert "guide_star_catalog" in page and "fgsarchive stars" in page  # the one stage not filled
    assert "flux_drop" in page and "S" in page


def test_report_names_missing_stages(tmp_path_factory, tmp_path):
    db_path, _ = people_archive.cached(tmp_path_factory, fit=False, stages=False)
    result = write_program_report(Archive(db_path), 1534, tmp_path, max_visits=1)
    page = result.pages[0].read_text()
    for command in (
        "fgsarchive fit",
        "fgsarchive events",
        "fgsarchive anomalies",
        "fgsarchive variables",
    ):
        assert f"run <code>{command}</code>" in page
    assert page.count("<img ") == 3  # positions, flux, telemetry overlay of the one visit


def test_report_cli_errors(tmp_path_factory, tmp_path):
    db_path, _ = people_archive.cached(tmp_path_factory)
    result = invoke("report", "--out", tmp_path, "--db", db_path)
    assert result.exit_code == 2 and "PROGRAM or --archive" in result.output
    result = invoke("report", 4242, "--out", tmp_path, "--db", db_path)
    assert result.exit_code == 2 and "program=4242" in result.output


@pytest.mark.browser
@pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium is not installed (apt-get install chromium)"
)
def test_report_renders_in_chromium(report_dir, tmp_path):
    page = report_dir / "program-1534.html"
    probe = (
        tmp_path / "probe.html"
    )  # the page plus a script that records each image's decoded width
    probe.write_text(
        page.read_text().replace(
            "</body>",
            "<script>window.addEventListener('load', () => { document.body.setAttribute("
            "'data-widths', JSON.stringify(Array.from(document.images, i => i.naturalWidth))); });"
            "</script></body>",
        )
    )
    flags = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=5000",
    ]
    dom = subprocess.run(
        [*flags, "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=90
    )
    match = re.search(r'data-widths="([^"]*)"', dom.stdout)
    assert match, dom.stderr[-2000:]
    widths = json.loads(match.group(1).replace("&quot;", '"'))
    assert len(widths) == 9 and all(w > 300 for w in widths), widths
    shot = tmp_path / "report.png"
    subprocess.run(
        [*flags, f"--screenshot={shot}", "--window-size=1400,3000", page.as_uri()],
        capture_output=True,
        timeout=90,
        check=True,
    )
    img = np.asarray(Image.open(shot).convert("RGB"))
    assert img.shape[:2] == (3000, 1400)
    assert (img < 245).any(axis=2).mean() > 0.05  # not blank
    assert len(np.unique(img.reshape(-1, 3)[::5], axis=0)) > 100  # text and figures, many colours


def test_quickstart_code_runs(tmp_path, monkeypatch):
    """The python block of docs/quickstart.md runs as written against a small archive."""
    text = (ROOT / "docs" / "quickstart.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) == 1 and len(blocks[0].strip().splitlines()) <= 5
    from fgsarchive.simulate import simulate_program

    simulate_program(
        tmp_path / "products",
        program=1534,
        n_observations=1,
        n_visits=1,
        frames_per_file=1500,
        seed=3,
    )
    monkeypatch.chdir(tmp_path)
    Archive("fgsarchive.duckdb", writable=True).ingest(tmp_path / "products", workers=1)
    scope: dict = {}
    exec(compile(blocks[0], "docs/quickstart.md", "exec"), scope)
    assert scope["lc"].height == 10 and scope["fig"].axes[0].has_data()  # 96 s in 10-s bins
