"""Issue 13 item 4: config and names are checked at the edge, before Prefect starts.

Every failure is a usage error (exit 2) in one box that names the field, the value and the
allowed values; no traceback, no Prefect server, no run folder.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ehnas.cli import app
from ehnas.exit_codes import CliError, ExitCode
from ehnas.preflight import check_names, check_space
from nas_lib.steps import Step
from tasks.config import ConfigError, PipelineConfig, load_config

ROOT = Path(__file__).resolve().parents[1]


def flat(text: str) -> str:
    """CLI output with the error box's frame and line wrapping removed."""
    return re.sub(r"[\s│╭╮╰╯─]+", " ", text)


def invoke(args: list[str], cwd: Path) -> tuple[int, str]:
    """`ehnas` in-process (the same app object the console script runs), from `cwd`."""
    old = Path.cwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(app, args, env={"COLUMNS": "100"})
    finally:
        os.chdir(old)
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, flat(result.output)


def assert_nothing_started(cwd: Path) -> None:
    assert not (cwd / ".prefect").exists() and not (cwd / "runs").exists()


@pytest.mark.slow
def test_missing_config_file_is_a_usage_error_in_a_real_process(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "ehnas.cli", "run", "--config", "absent.yaml"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == ExitCode.USAGE == 2
    assert "config file absent.yaml does not exist" in flat(proc.stderr + proc.stdout)
    assert "Traceback" not in proc.stderr + proc.stdout
    assert_nothing_started(tmp_path)


def test_yaml_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("seed: 1\nsearch:\n  strategy: [rea\n  generations: 2\n")
    code, out = invoke(["run", "--config", "c.yaml"], tmp_path)
    assert code == 2 and "c.yaml line" in out and "YAML syntax error" in out and "<unicode string>" not in out
    with pytest.raises(ConfigError, match=r"c.yaml line 4, column 14: YAML syntax error"):
        load_config(tmp_path / "c.yaml")


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level of a config file must be a mapping, got list"):
        load_config(tmp_path / "c.yaml")


@pytest.mark.parametrize(
    "override, expected",
    [
        ("search.generation=3", "search.generation: unknown key; did you mean search.generations?"),
        ("sead=1", "sead: unknown key; did you mean seed?"),
        ("training.epochs=abc", 'training.epochs = "abc": Input should be a valid integer'),
        ("training.epochs=0", "training.epochs = 0: Input should be greater than or equal to 1"),
        ("data.kind=mnist", "data.kind = \"mnist\": unknown dataset 'mnist'; known: cifar100_batches, cifar10_batches, cifar10_npz, csv, digits"),
        ("export.formats=[onnx, png]", "export.formats[1] = \"png\": Input should be 'onnx', 'torchscript' or 'quantized'"),
        ("device=gpu", "device = \"gpu\": device 'gpu' must be auto, cpu, cuda or cuda:N"),
        ("novalue", "--set: override 'novalue' must look like key=value"),
        ("search.strategy=ga", None),  # valid: the control case
    ],
)
def test_config_errors_name_field_value_and_allowed(override: str, expected: str | None) -> None:
    if expected is None:
        assert load_config(None, [override]).search.strategy == "ga"
        return
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert expected in str(err.value)


def test_config_error_through_the_cli_is_one_box_exit_2(tmp_path: Path) -> None:
    code, out = invoke(["run", "--set", "search.generation=3"], tmp_path)
    assert code == 2 and "did you mean search.generations?" in out and "Traceback" not in out
    code, out = invoke(["run", "--set", "training.epochs=abc"], tmp_path)
    assert code == 2 and "training.epochs" in out and "abc" in out
    assert_nothing_started(tmp_path)


@pytest.mark.parametrize(
    "override, field, allowed",
    [
        ("search.strategy=nope", "search.strategy", "rea"),
        ("evaluation.proxies=[params, nope]", "evaluation.proxies", "nwot"),
        ("space.constraints={stage_types: {early: [cnn, foo]}}", "space.constraints", "block families: cnn"),
    ],
)
def test_registry_names_are_checked_before_prefect(tmp_path: Path, override: str, field: str, allowed: str) -> None:
    code, out = invoke(["run", "--set", override, "--set", "registry.enabled=false"], tmp_path)
    assert code == 2, out
    assert field in out and ("nope" in out or "foo" in out)
    assert allowed in out
    assert_nothing_started(tmp_path)


def test_pruning_layers_are_checked_against_the_layer_registry() -> None:
    base = PipelineConfig()
    bad = base.model_copy(update={"pruning": base.pruning.model_copy(update={"layers": ["macro", "nope"]})})
    with pytest.raises(CliError, match=r"pruning.layers: unknown name\(s\) 'nope'; allowed: connections, hyperparameters, macro") as err:
        check_names(bad)
    assert err.value.exit_code == ExitCode.USAGE
    check_names(base)  # the defaults pass
    check_space(base)


def test_empty_proxy_list_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"evaluation.proxies = \[\]: empty"):
        load_config(None, ["evaluation.proxies=[]"])


def test_redo_is_a_choice_of_step_names(tmp_path: Path) -> None:
    code, out = invoke(["run", "--redo", "06_evaluation", "--set", "registry.enabled=false"], tmp_path)
    assert code == 2 and "'06_evaluation' is not one of" in out
    assert all(str(step) in out for step in Step)
    code, out = invoke(["resume", "x", "--runs-root", str(tmp_path), "--redo", "nope"], tmp_path)
    assert code == 2 and "09_registry" in out
    assert_nothing_started(tmp_path)


def test_a_runner_without_its_extra_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from ehnas.preflight import check_runner_installed

    monkeypatch.setitem(sys.modules, "prefect_ray", None)  # None in sys.modules makes its import fail
    with pytest.raises(CliError, match=r"execution.runner=ray needs the \[ray\] extra") as err:
        check_runner_installed(load_config(None, ["execution.runner=ray"]))
    assert err.value.exit_code == ExitCode.USAGE
    check_runner_installed(load_config(None, []))  # threads need nothing
