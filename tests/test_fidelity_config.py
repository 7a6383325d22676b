"""`evaluation.fidelity` in the config: validated at the edge, off by default, part of the fingerprint."""

from __future__ import annotations

import pytest

from tasks.config import ConfigError, PipelineConfig, describe_fields, load_config
from tasks.fidelity import RungSetup


def test_off_by_default_and_no_rung_setup() -> None:
    cfg = PipelineConfig()
    assert cfg.evaluation.fidelity.kind == "none" and RungSetup.of(cfg) is None


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("evaluation.fidelity.budgets=[3,1]", "strictly increasing"),
        ("evaluation.fidelity.budgets=[]", "strictly increasing"),
        ("evaluation.fidelity.eta=1", "greater than or equal to 2"),
        ("evaluation.fidelity.kind=bandit", "'none', 'halving' or 'hyperband'"),
        ("evaluation.fidelity.rungs=[1]", "unknown key"),
    ],
)
def test_bad_values_name_the_field(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        load_config(None, [override])
    assert "evaluation.fidelity" in str(err.value)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("evaluation.predictor.enabled=true", "needs training rungs"),
        ("evaluation.predictor.model=oracle", "is not one of forest"),
        ("evaluation.predictor.min_rows=1", "greater than or equal to 3"),
    ],
)
def test_bad_predictor_settings_name_the_field(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        load_config(None, [override])
    assert "evaluation" in str(err.value)


def test_the_default_rungs_are_half_the_finalists_epochs_and_all_of_them() -> None:
    setup = RungSetup.of(load_config(None, ["evaluation.fidelity.kind=halving", "training.epochs=12"]))
    assert setup is not None and setup.budgets == (6, 12) and setup.eta == 2
    thirds = RungSetup.of(load_config(None, ["evaluation.fidelity.kind=halving", "training.epochs=12", "evaluation.fidelity.eta=3"]))
    assert thirds is not None and thirds.budgets == (4, 12)
    one = RungSetup.of(load_config(None, ["evaluation.fidelity.kind=halving", "training.epochs=1"]))
    assert one is not None and one.budgets == (1,)
    named = RungSetup.of(load_config(None, ["evaluation.fidelity.kind=halving", "evaluation.fidelity.budgets=[1,3,9]"]))
    assert named is not None and named.budgets == (1, 3, 9)


def test_rung_setup_follows_training_and_schedule() -> None:
    cfg = load_config(None, ["evaluation.fidelity.kind=hyperband", "evaluation.fidelity.budgets=[1,9]", "training.lr=0.01", "seed=3"])
    setup = RungSetup.of(cfg)
    assert setup is not None and setup.lr == 0.01 and setup.seed == 3
    assert setup.protocol(1).horizon == 9  # long schedule: every rung a checkpoint of the 9-epoch schedule
    short = RungSetup.of(load_config(None, ["evaluation.fidelity.kind=halving", "evaluation.fidelity.schedule=short"]))
    assert short is not None and short.protocol(3).horizon == 3
    assert cfg.fingerprint() != PipelineConfig().fingerprint()
    assert any(line.startswith("evaluation.fidelity.kind = ") for line in describe_fields())
