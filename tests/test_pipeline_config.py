"""PipelineConfig: YAML + dotted overrides, validation naming the field, generated --help."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from ehnas.cli import app
from tasks.config import ConfigError, PipelineConfig, describe_fields, load_config, parse_overrides


def test_overrides_nest_and_parse_yaml_scalars():
    assert parse_overrides(["a.b=1", "a.c=[x, y]", "d=true", "e="]) == {"a": {"b": 1, "c": ["x", "y"]}, "d": True, "e": None}
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(["novalue"])


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("seed: 3\nsearch:\n  generations: 7\n  strategy: random\n")
    cfg = load_config(path, ["search.generations=2", "data.kind=csv", "data.path=/x.csv"])
    assert (cfg.seed, cfg.search.generations, cfg.search.strategy, cfg.data.kind) == (3, 2, "random", "csv")
    assert cfg.population == PipelineConfig().population  # untouched sections keep defaults


@pytest.mark.parametrize(
    "override, field", [("device=gpu", "device"), ("search.generation=3", "generation"), ("training.epochs=0", "epochs"), ("data.kind=mnist", "kind")]
)
def test_invalid_values_name_the_field(override, field):
    with pytest.raises(ConfigError, match=field):
        load_config(None, [override])


def test_run_name_defaults_to_config_fingerprint():
    a, b = PipelineConfig(), load_config(None, ["seed=1"])
    assert a.resolved_run_name() == PipelineConfig().resolved_run_name() != b.resolved_run_name()
    assert load_config(None, ["runs_root=elsewhere"]).resolved_run_name() == a.resolved_run_name()


def _leaves(model, prefix=""):
    for name, info in model.model_fields.items():
        ann = info.annotation
        if isinstance(ann, type) and hasattr(ann, "model_fields"):
            yield from _leaves(ann, f"{prefix}{name}.")
        else:
            assert info.description, f"{prefix}{name} has no description"
            yield f"{prefix}{name}"


def test_help_documents_every_field():
    leaves = list(_leaves(PipelineConfig))
    lines = describe_fields()
    assert [line.split(" = ")[0] for line in lines] == leaves
    out = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "400"}).output
    for leaf in leaves:
        assert leaf in out


@pytest.mark.parametrize(
    "section, value, message",
    [
        ({"search": {"strategy": "reaa"}}, "search.strategy", "unknown search strategy 'reaa'; known: "),
        ({"evaluation": {"proxies": ["params", "nwott"]}}, "evaluation.proxies", "unknown proxy 'nwott'; known: "),
        ({"evaluation": {"proxies": []}}, "evaluation.proxies", "empty; name one proxy at least"),
        ({"data": {"kind": "mnist"}}, "data.kind", "unknown dataset 'mnist'; known: "),
    ],
)
def test_registered_names_are_checked_by_the_model_itself(section, value, message):
    # A Prefect deployment validates its parameters with this model alone (no CLI preflight).
    from pydantic import ValidationError

    from tasks.config import format_validation_error

    with pytest.raises(ValidationError) as err:
        PipelineConfig.model_validate(section)
    line = format_validation_error(err.value)
    assert line.startswith(value) and message in line, line


def test_a_new_dataset_kind_is_one_loader_plus_its_registration(monkeypatch):
    import numpy as np

    from nas_lib.data.checks import check_source
    from nas_lib.data.datasets import DATASETS, RawImages, load_dataset, reads_no_path

    @reads_no_path  # it makes its images, like digits: the checks before a run ask for no path
    def stripes(path, image_size):  # the whole new source: a loader ...
        x = np.zeros((20, 1, 4, 4), np.float32)
        x[10:, :, ::2] = 1.0
        return RawImages(x, np.repeat([0, 1], 10), ("plain", "striped"))

    with pytest.raises(ConfigError, match="unknown dataset 'stripes'"):
        load_config(None, ["data.kind=stripes"])
    monkeypatch.setitem(DATASETS._items, "stripes", stripes)  # ... and its registration (removed after the test)
    config = load_config(None, ["data.kind=stripes"])
    assert config.data.kind == "stripes" and config.model_name() == "ehnas-stripes"
    assert load_dataset(config.data.kind, val_fraction=0.2).num_classes == 2
    check_source(config.data.kind, None)  # the CLI's data check (ehnas.preflight) passes too
