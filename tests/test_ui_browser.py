"""What users look at, in a real headless Chromium: the Prefect flow-run page and its artifacts,
the MLflow page of the registered model and its run, and `ehnas report`'s plots, after the tiny
pipeline ran once against a real Prefect server and a real MLflow server on 127.0.0.1.

With ``EHNAS_SCREENSHOTS=<folder>`` the screenshots are kept there (scripts/screenshots.sh
writes docs/img/ this way); otherwise they go to a temporary folder."""

from __future__ import annotations

import html
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser import MAX_PNG_BYTES, chromium, dom, mlflow_server, screenshot
from tests.conftest import TINY_OVERRIDES
from tests.prefect_server import prefect_server

pytestmark = [pytest.mark.slow, pytest.mark.skipif(chromium() is None, reason="no chromium on PATH (apt-get install chromium)")]
ROOT = Path(__file__).resolve().parents[1]
NAME, MODEL = "ui-demo", "ehnas-ui-demo"
# The tiny pipeline, with one search generation so that the search artifacts and plot exist.
SHOWN = ("population.size=4", "search.generations=2", "registry.enabled=true", f"registry.model_name={MODEL}")
RUN = (
    "import json, sys; from tasks.config import load_config; from flows.pipeline import nas_pipeline; "
    "print('RESULT ' + json.dumps(nas_pipeline(load_config(None, sys.argv[1:]))))"
)


@dataclass(frozen=True)
class Watched:
    api: str  # the Prefect API; its UI is at the same host without /api
    mlflow: str
    flow_run_id: str
    run_dir: Path
    report: str  # `ehnas report`'s output
    shots: Path

    @property
    def ui(self) -> str:
        return self.api.removesuffix("/api")


@pytest.fixture(scope="module")
def watched(tmp_path_factory) -> Any:
    tmp = tmp_path_factory.mktemp("browser")
    shots = Path(os.environ.get("EHNAS_SCREENSHOTS") or tmp / "shots")
    for sub in ("prefect_home", "mlflow"):
        (tmp / sub).mkdir()
    with prefect_server(tmp / "prefect_home", ui=True) as (api, env, _log):
        with mlflow_server(tmp / "mlflow") as mlflow_uri:
            args = [f"run_name={NAME}", f"runs_root={tmp / 'runs'}", *TINY_OVERRIDES, *SHOWN, f"registry.tracking_uri={mlflow_uri}"]
            done = subprocess.run(
                [sys.executable, "-c", RUN, *args], cwd=ROOT, env={**env, "PREFECT_API_URL": api}, capture_output=True, text=True, timeout=600
            )
            assert done.returncode == 0, done.stderr[-3000:]
            run_dir = Path(json.loads(done.stdout.split("RESULT ", 1)[1].splitlines()[0])["run_dir"])
            report = subprocess.run(
                [sys.executable, "-m", "ehnas.cli", "report", str(run_dir)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
            )
            assert report.returncode == 0, report.stderr[-3000:]
            [flow_run] = httpx.post(f"{api}/flow_runs/filter", json={"flow_runs": {"name": {"any_": [NAME]}}}, timeout=30).json()
            yield Watched(api, mlflow_uri, flow_run["id"], run_dir, report.stdout, shots)


STEP_KEYS = ("summary", "population-progress", "search-progress", "top-k")


def _artifacts(w: Watched) -> dict[str, dict[str, Any]]:
    """The run's artifacts by key (the parent flow run's and its step subflows'), read from the
    API the UI reads."""
    keys = [f"{NAME}-{step}" for step in STEP_KEYS]
    found = httpx.post(f"{w.api}/artifacts/filter", json={"artifacts": {"key": {"any_": keys}}}, timeout=30).json()
    return {a["key"]: a for a in found}


def _flow_run(w: Watched, flow_run_id: str) -> dict[str, Any]:
    return httpx.get(f"{w.api}/flow_runs/{flow_run_id}", timeout=30).json()


def test_flow_run_pages_show_the_run_and_its_artifacts(watched: Watched) -> None:
    keys = _artifacts(watched)
    assert sorted(keys) == sorted(f"{NAME}-{step}" for step in STEP_KEYS)
    assert keys[f"{NAME}-summary"]["flow_run_id"] == watched.flow_run_id  # the rest belong to the step subflows
    for progress in ("population-progress", "search-progress"):
        assert keys[f"{NAME}-{progress}"]["type"] == "progress" and float(keys[f"{NAME}-{progress}"]["data"]) == 100.0
    assert keys[f"{NAME}-top-k"]["type"] == "table"
    cells = [v for row in json.loads(keys[f"{NAME}-top-k"]["data"]) for v in row.values() if isinstance(v, float)]
    assert cells and all(len(f"{abs(v):.12g}".replace(".", "").lstrip("0")) <= 6 for v in cells), cells  # no 0.028863166997325607

    page = f"{watched.ui}/runs/flow-run/{watched.flow_run_id}"
    shown = dom(page)
    assert "Can't connect" not in shown
    assert NAME in shown and "Completed" in shown, shown[-2000:]
    screenshot(page, watched.shots / "prefect_flow_run.png")

    search = _flow_run(watched, keys[f"{NAME}-top-k"]["flow_run_id"])
    assert search["parent_task_run_id"], "the search step is a subflow of the run"
    page = f"{watched.ui}/runs/flow-run/{search['id']}"
    shown = dom(page)
    assert search["name"] in shown and "search: generations: 2/2" in shown, shown[-2000:]  # its log
    screenshot(page, watched.shots / "prefect_search.png")


def test_artifact_page_shows_the_top_k_table(watched: Watched) -> None:
    top = _artifacts(watched)[f"{NAME}-top-k"]
    page = f"{watched.ui}/artifacts/artifact/{top['id']}"
    shown = dom(page)
    assert f"{NAME}-top-k" in shown and "fitness" in shown and "arch_id" in shown, shown[-2000:]
    screenshot(page, watched.shots / "prefect_top_k.png")


def test_mlflow_shows_the_registered_model_with_its_alias_and_run_metrics(watched: Watched) -> None:
    from mlflow import MlflowClient

    # the registry URI named too: otherwise MLflow takes the process's default, which an earlier test may have set
    client = MlflowClient(tracking_uri=watched.mlflow, registry_uri=watched.mlflow)
    version = client.get_model_version_by_alias(MODEL, "champion")
    model_page = f"{watched.mlflow}/#/models/{MODEL}"
    shown = dom(model_page)
    assert MODEL in shown and "champion" in shown, shown[-2000:]
    screenshot(model_page, watched.shots / "mlflow_model.png")

    experiment = client.get_run(version.run_id).info.experiment_id
    run_page = f"{watched.mlflow}/#/experiments/{experiment}/runs/{version.run_id}"
    shown = dom(run_page)
    metrics = client.get_run(version.run_id).data.metrics
    assert "val_accuracy" in metrics
    assert "val_accuracy" in shown and MODEL in shown, shown[-2000:]
    screenshot(run_page, watched.shots / "mlflow_run.png")


def test_report_plots_decode_and_show_in_a_page(watched: Watched) -> None:
    from PIL import Image

    plots = [Path(line.removeprefix("plot: ")) for line in watched.report.splitlines() if line.startswith("plot: ")]
    assert {p.name for p in plots} >= {"search_progress.png", "pareto.png"}, watched.report
    for plot in plots:
        with Image.open(plot) as image:
            image.load()  # decodes, not only the header
            assert image.size[0] > 100 and image.size[1] > 100
    summary = watched.report.split("\nplot: ", 1)[0]
    page = watched.run_dir / "report.html"
    images = "".join(f'<img src="{p.as_uri()}" alt="{p.name}" width="440">' for p in plots)  # the plots first, side by side
    page.write_text(f"<html><body style='font-family:sans-serif'>{images}<pre>{html.escape(summary)}</pre></body></html>")
    shown = dom(page.as_uri(), budget_ms=2_000)
    assert f"EHNAS run `{NAME}`" in shown and shown.count("<img") == len(plots)
    screenshot(page.as_uri(), watched.shots / "report.png", budget_ms=2_000)


def test_screenshots_fit_the_readme(watched: Watched) -> None:
    from PIL import Image

    shots = sorted(watched.shots.glob("*.png"))
    assert shots, "the tests above take them"
    for shot in shots:
        assert shot.stat().st_size <= MAX_PNG_BYTES, shot
        with Image.open(shot) as image:
            assert image.size == (1400, 900)
            assert len(image.convert("L").getcolors(256 * 256) or range(1000)) > 8, f"{shot} is nearly blank"
