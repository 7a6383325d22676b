"""Issue 13 items 4 and 7: MLflow reachability is probed at start; registration outcomes map to exit codes.

The probe is tried against a real `mlflow server` on 127.0.0.1 started here, and against the
same port once that server is gone.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from ehnas.commands.pipeline import check_registration, run_failure
from ehnas.exit_codes import CliError, ExitCode
from ehnas.preflight import check_tracking, probe_tracking_uri, redact
from nas_lib.artifacts import write_table
from nas_lib.data.datasets import DatasetError
from nas_lib.steps import Step
from tasks.config import load_config
from tasks.run_folder import RunFolder
from tests.test_edge_config import ROOT, flat


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_server_is_reported_at_once(tmp_path: Path) -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    problem = probe_tracking_uri(uri, timeout_s=2.0)
    assert problem and "no answer within 2 s" in problem
    cfg = load_config(None, [f"registry.tracking_uri={uri}"])
    with pytest.raises(CliError, match=r"is unreachable.*--set registry.enabled=false") as err:
        check_tracking(cfg, timeout_s=2.0)
    assert err.value.exit_code == ExitCode.REGISTRY
    check_tracking(load_config(None, [f"registry.tracking_uri={uri}", "registry.enabled=false"]))  # not probed


def test_sqlite_store_in_a_folder_that_cannot_exist(tmp_path: Path) -> None:
    (tmp_path / "file.txt").write_text("not a folder")
    assert "cannot be created" in probe_tracking_uri(f"sqlite:///{tmp_path}/file.txt/mlflow.db")
    assert probe_tracking_uri(f"sqlite:///{tmp_path}/new/mlflow.db") is None  # created on first use
    (tmp_path / "bad.db").write_bytes(b"this is not sqlite" * 100)
    assert "cannot open" in probe_tracking_uri(f"sqlite:///{tmp_path}/bad.db")
    assert probe_tracking_uri("databricks") is None  # not probed


def test_credentials_in_the_uri_go_as_basic_auth_and_are_never_shown(tmp_path: Path) -> None:
    """A real HTTP server on 127.0.0.1 that answers /health only with the right basic auth."""
    import base64
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[str | None] = []
    expected = "Basic " + base64.b64encode(b"alice:s3cr@t").decode()

    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            seen.append(self.headers.get("Authorization"))
            self.send_response(200 if self.path == "/health" and seen[-1] == expected else 401)
            self.end_headers()

        def log_message(self, *args: object) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        uri = f"http://alice:s3cr%40t@127.0.0.1:{server.server_address[1]}"
        assert probe_tracking_uri(uri, timeout_s=5.0) is None
        assert seen == [expected]  # host:port was asked, with the credentials as basic auth
    finally:
        server.shutdown()
        server.server_close()
    down = f"http://alice:s3cr%40t@127.0.0.1:{free_port()}"
    with pytest.raises(CliError) as err:
        check_tracking(load_config(None, [f"registry.tracking_uri={down}"]), timeout_s=2.0)
    assert "s3cr" not in str(err.value) and "alice:***@127.0.0.1" in str(err.value)
    assert "Name or service not known" not in str(err.value)


def test_password_never_shown() -> None:
    assert redact("https://alice:s3cret@mlflow.example/") == "https://alice:***@mlflow.example/"
    assert redact("sqlite:///runs/mlflow.db") == "sqlite:///runs/mlflow.db"


@pytest.mark.slow
def test_probe_against_a_real_mlflow_server(tmp_path: Path) -> None:
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{tmp_path}/m.db",
            "--default-artifact-root",
            str(tmp_path / "art"),
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{uri}/health", timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, "mlflow server exited"
                time.sleep(0.5)
        assert probe_tracking_uri(uri) is None
        check_tracking(load_config(None, [f"registry.tracking_uri={uri}"]))
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    assert probe_tracking_uri(uri, timeout_s=2.0) is not None


@pytest.mark.slow
def test_unreachable_registry_exits_4_in_a_real_process(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = ["run", "--set", f"registry.tracking_uri=http://127.0.0.1:{free_port()}"]
    proc = subprocess.run([sys.executable, "-m", "ehnas.cli", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    out = flat(proc.stdout + proc.stderr)
    assert proc.returncode == ExitCode.REGISTRY == 4, out
    assert "--set registry.enabled=false" in out and "Traceback" not in out
    assert not (tmp_path / ".prefect").exists()


def _registry_row(run_dir: Path, **row: object) -> None:
    from tasks.registry import REGISTRY_SCHEMA

    base = {name: None for name in REGISTRY_SCHEMA.names}
    write_table(RunFolder(run_dir).step_file(Step.REGISTRY), [{**base, **row}], REGISTRY_SCHEMA)


@pytest.mark.parametrize(
    "row, enabled, code",
    [
        ({"state": "ok", "arch_id": "a1", "model_name": "m", "version": "1", "alias": "champion", "tracking_uri": "sqlite:///x"}, True, None),
        ({"state": "skipped", "arch_id": "a1", "note": "registry.enabled is false"}, False, None),
        ({"state": "skipped", "arch_id": "a1", "note": "MLflow is not installed"}, True, ExitCode.REGISTRY),
        ({"state": "failed", "arch_id": "a1", "note": "MLflow refused the model"}, True, ExitCode.REGISTRY),
        ({"state": "failed", "note": "no finalist trained successfully"}, True, ExitCode.RUN_FAILED),
    ],
)
def test_registration_outcome_decides_the_exit_code(tmp_path: Path, row: dict, enabled: bool, code: ExitCode | None) -> None:
    _registry_row(tmp_path, **row)
    if code is None:
        check_registration(tmp_path, enabled)
        return
    with pytest.raises(CliError) as err:
        check_registration(tmp_path, enabled)
    assert err.value.exit_code == code and str(row["note"]) in err.value.message


def test_a_failure_inside_the_run_names_its_step(tmp_path: Path) -> None:
    cfg = load_config(None, [f"runs_root={tmp_path}", "run_name=r"])
    run = RunFolder.create(cfg)
    for step in list(Step)[:5]:
        run.step_file(step).write_bytes(b"x")
        run.mark(step, 0.1)
    err = run_failure(cfg, RuntimeError("boom"))
    assert err.exit_code == ExitCode.RUN_FAILED and "run failed in step 06_evaluations: RuntimeError: boom" in err.message
    assert "ehnas resume r" in err.message
    assert run_failure(cfg, DatasetError("3 of 4 image files cannot be decoded")).exit_code == ExitCode.DATA
    for step in list(Step)[5:8]:
        run.step_file(step).write_bytes(b"x")
        run.mark(step, 0.1)
    err = run_failure(cfg, ConnectionError("refused"))
    assert err.exit_code == ExitCode.REGISTRY and "registration failed" in err.message
