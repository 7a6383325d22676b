"""Headless Chromium and a real `mlflow server` on 127.0.0.1, for the tests (and the screenshot
script) that look at the pages users look at."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.prefect_server import free_port, poll

SIZE = (1400, 900)
MAX_PNG_BYTES = 300_000  # what the README may carry per picture


def chromium() -> str | None:
    """The Chromium (or Chrome) binary on this machine, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _chromium_args(what: str, budget_ms: int) -> list[str]:
    binary = chromium()
    assert binary, "no chromium on PATH"
    return [
        binary,
        "--headless",
        "--no-sandbox",  # tests run as root in containers
        "--disable-gpu",
        "--hide-scrollbars",
        f"--window-size={SIZE[0]},{SIZE[1]}",
        f"--virtual-time-budget={budget_ms}",  # the single-page apps fetch and render inside it
        what,
    ]


def dom(url: str, budget_ms: int = 60_000) -> str:
    """The page's DOM after its scripts ran for `budget_ms` of virtual time."""
    done = subprocess.run(_chromium_args("--dump-dom", budget_ms) + [url], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def screenshot(url: str, png: Path, budget_ms: int = 60_000) -> Path:
    """A PNG of the page at `SIZE`, palette-compressed when larger than `MAX_PNG_BYTES`."""
    png.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(_chromium_args(f"--screenshot={png}", budget_ms) + [url], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0 and png.exists(), done.stderr[-2000:]
    if png.stat().st_size > MAX_PNG_BYTES:
        from PIL import Image

        with Image.open(png) as image:
            small = image.convert("RGB").quantize(colors=128)
        small.save(png, optimize=True)
    return png


@contextlib.contextmanager
def mlflow_server(root: Path) -> Iterator[str]:
    """`mlflow server` on a free port with a sqlite store under `root`; yields its URL."""
    url = f"http://127.0.0.1:{free_port()}"
    port = url.rsplit(":", 1)[1]
    store, artifacts, log = f"sqlite:///{root}/mlflow.db", root / "artifacts", root / "mlflow.log"
    args = ["--host", "127.0.0.1", "--port", port, "--workers", "1", "--backend-store-uri", store, "--artifacts-destination", str(artifacts)]
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", *args], cwd=root, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )

    def healthy() -> bool:
        try:
            return httpx.get(f"{url}/health", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        poll("healthy mlflow server", healthy, limit_s=180.0, proc=proc, log=log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
