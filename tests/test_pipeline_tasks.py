"""Task helpers without a flow: device planning, retry policy, ledger and population."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.config import load_config
from nas_lib.evaluation import InjectedFault
from nas_lib.population import PopulationConfig, generate_population
from nas_lib.space import HybridConstraints, HybridSpace, NB201Space
from tasks import context
from tasks.retry import is_transient


def test_devices_auto_spreads_over_every_gpu(monkeypatch):
    monkeypatch.setattr(context.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(context.torch.cuda, "device_count", lambda: 3)
    assert context.plan_devices("auto") == ["cuda:0", "cuda:1", "cuda:2"]
    assert context.plan_devices("cuda") == ["cuda:0"] and context.plan_devices("cuda:2") == ["cuda:2"]
    monkeypatch.setattr(context.torch.cuda, "is_available", lambda: False)
    assert context.plan_devices("auto") == ["cpu"]


def test_a_device_this_machine_lacks_stops_the_run_before_any_step(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from ehnas.cli import app

    monkeypatch.setattr(context.torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="CUDA is not available"):
        context.plan_devices("cuda:1")
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        context.plan_devices("gpu")
    result = CliRunner().invoke(app, ["run", "--set", "device=cuda", "--set", f"runs_root={tmp_path}"])
    assert result.exit_code == 2 and "CUDA is not available" in result.output
    assert not any(tmp_path.iterdir()), "nothing was started or written"


@pytest.mark.parametrize("err, retry", [
    (OSError("disk hiccup"), True), (ConnectionError("reset"), True), (TimeoutError(), True),
    (RuntimeError("CUDA out of memory"), False), (ValueError("qkv_dim 250 is not divisible by num_heads 4"), False),
    (InjectedFault("crash"), False), (None, False),
])
def test_only_transient_faults_are_retried(err, retry):
    assert is_transient(err) is retry


def test_ledger_reuses_only_steps_of_the_same_config(tmp_path):
    cfg = load_config(None, [f"runs_root={tmp_path}", "run_name=r"])
    run = context.write_config(cfg)
    context.step_path(run, "05_population").write_bytes(b"x")
    context.mark_done(run, "05_population", 1.0)
    assert context.step_done(run, "05_population") and not context.step_done(run, "06_evaluations")
    assert context.forget_from(run, "04_connections")[:2] == ["04_connections", "05_population"]
    assert not context.step_done(run, "05_population")
    context.mark_done(run, "05_population", 1.0)
    context.write_config(load_config(None, [f"runs_root={tmp_path}", "run_name=r", "seed=9"]))
    assert not context.step_done(run, "05_population")  # another config under the same name
    with pytest.raises(KeyError, match="steps"):
        context.step_path(run, "10_nothing")


@pytest.mark.parametrize("space", [HybridSpace(HybridConstraints(min_depth=4, max_depth=8)), NB201Space()], ids=["hybrid", "nb201"])
def test_population_is_distinct_seeded_and_spread_over_depths(space):
    rows = generate_population(space, PopulationConfig(size=24), np.random.default_rng(0))
    assert len({r["arch_id"] for r in rows}) == 24
    assert rows == generate_population(space, PopulationConfig(size=24), np.random.default_rng(0))
    if isinstance(space, HybridSpace):
        assert len({r["depth"] for r in rows}) >= 4  # uniform sampling would give almost only depth 8


def test_heartbeats_are_off_only_for_a_temporary_server(monkeypatch):
    # every flow run ends by joining the heartbeat thread (1 s sleeps): pointless when the server
    # dies with the process, kept when an API URL (a lasting server) or the user's setting exists
    from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

    from flows.pipeline import prefect_settings

    for name in ("PREFECT_API_URL", "PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "PREFECT_RUNNER_HEARTBEAT_FREQUENCY"):
        monkeypatch.delenv(name, raising=False)
    with temporary_settings(updates={PREFECT_API_URL: None}), prefect_settings():
        assert get_current_settings().flows.heartbeat_frequency is None
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:4200/api"}), prefect_settings():
        assert get_current_settings().flows.heartbeat_frequency == 180
    monkeypatch.setenv("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "60")
    with temporary_settings(updates={PREFECT_API_URL: None}), prefect_settings():
        assert get_current_settings().flows.heartbeat_frequency == 60
