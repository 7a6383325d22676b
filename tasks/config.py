"""`PipelineConfig`: the one typed set of flow parameters, loadable from YAML with dotted overrides.

The model is the edge of the system (pydantic); every field carries a description, and
`describe_fields()` turns those descriptions into the `ehnas run --help` text so the help can
never drift from the code. YAML is read with `yaml.safe_load` only (never executed).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import typing
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from nas_lib.registry import Registry
from tasks.config_fidelity import FidelityConfig, PredictorSection

DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Section):
    kind: str = Field(
        "digits",
        description="Dataset source, a name registered in nas_lib.data.datasets.DATASETS (an unknown one is an error that lists them): "
        "digits (scikit-learn, no download) or a format read from path, e.g. cifar10_batches (CIFAR-10 python folder), image_folder "
        "(one sub-folder per class), csv (path,label[,split]), idx (MNIST-family IDX files); docs/datasets_training.md lists every format.",
    )
    path: str | None = Field(None, description="Dataset location on disk (unused for digits).")
    val_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="Share of the training data held out for finalist scoring.")
    max_items: int | None = Field(None, ge=2, description="Keep at most this many images (stratified) before splitting; None = all.")
    image_size: int | None = Field(None, ge=1, description="Resize images to this side (None = native; folders and CSV default to 32).")
    proxy_batch: int = Field(32, ge=2, description="Images in the fixed batch every proxy scores on.")
    # The test part (a format's test files, or split=test rows) never enters training or
    # validation either way; this only decides whether the finalists are scored on it.
    test: bool = Field(False, description="Score each trained finalist on the source's test part (test_accuracy); selection stays on validation.")
    # 1%: a scraped folder often holds a few truncated files; more than that usually means a
    # wrong path or a broken copy, which should stop the run rather than train on the rest.
    max_corrupt_fraction: float = Field(
        0.01, ge=0.0, le=1.0, description="Share of image files (image_folder, csv) that may fail to decode and be skipped; above it loading stops."
    )

    @field_validator("kind")
    @classmethod
    def _kind_registered(cls, value: str) -> str:
        from nas_lib.data.datasets import DATASETS

        return _registered(DATASETS, value)


class SpaceConfig(_Section):
    name: Literal["hybrid", "nb201"] = Field("hybrid", description="Search space (registered name).")
    # Depth 4..6 and the small choices below keep the default networks around 1e5 parameters,
    # so the whole default run fits in a few CPU minutes; widen them for real searches.
    min_depth: int = Field(4, ge=4, le=20, description="Fewest blocks of a hybrid network.")
    max_depth: int = Field(6, ge=4, le=20, description="Most blocks of a hybrid network.")
    constraints: dict[str, Any] = Field(
        default_factory=lambda: {
            "hyperparameters": {
                "cnn": {"planes": [16, 32], "base_width": [32], "cardinality": [1, 2]},
                "vit": {"qkv_dim": [192], "mlp_ratio": [4], "num_heads": [3, 4, 6]},
                "mamba": {"expand": [1], "d_state": [8]},
            }
        },
        description="Extra HybridConstraints fields of the base space before pruning ({} = the full space).",
    )


class KnowledgeConfig(_Section):
    path: str | None = Field(None, description="knowledge.parquet to use (None = the embedded base).")
    documents: list[str] = Field(default_factory=list, description="Papers (PDF/text) to extract knowledge from with the LLM before pruning.")


def _pruning_layers() -> tuple[str, ...]:
    """The registered pruning layers, in the order they run (imported late: the library is heavy)."""
    from nas_lib.pruning.run import LAYER_REGISTRY

    return LAYER_REGISTRY.in_order()


def _registered(registry: Registry[Any], name: str) -> str:
    """`name` when `registry` holds it; else a ValueError whose message lists the registered names."""
    if name not in registry:
        raise ValueError(f"unknown {registry.kind} {name!r}; known: {', '.join(registry.names())}")
    return name


class PruningConfig(_Section):
    provider: Literal["offline", "openai"] = Field(
        "offline",
        description="Who decides each pruning layer: offline (proxy-guided enrichment + knowledge rules) or openai (an OpenAI-compatible LLM from EHNAS_LLM_* env).",
    )
    layers: list[str] = Field(
        default_factory=lambda: list(_pruning_layers()), description="Pruning layers to apply (registered names; they run in registration order)."
    )
    # 400 each: on the trained hybrid table, 12/16 samples made cuts of 61-75% that lost 67-73% of
    # the true top 5%; 400/400 cut 0-82% (mean 41%) keeping 88% of it (docs/hybrid_benchmark.md).
    # Every sample is a score of the first evaluation proxy (flops: a forward pass), cached in the evaluation store.
    measure_samples: int = Field(400, ge=1, description="Architectures of the unpruned space each layer's retention is measured on.")
    offline_samples: int = Field(400, ge=1, description="Proxy-scored samples the offline provider ranks per layer.")
    retention_floor: float = Field(0.8, ge=0.0, le=1.0, description="The guard relaxes a cut whose top-1% retention falls below this.")
    llm_timeout_s: float | None = Field(None, gt=0, description="Seconds per LLM request with provider openai (None: EHNAS_LLM_TIMEOUT_S, else 60).")

    @field_validator("layers")
    @classmethod
    def _layers_registered(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in _pruning_layers()]
        if unknown:
            raise ValueError(f"unknown pruning layer(s) {unknown}; known: {', '.join(_pruning_layers())}")
        return value


class PopulationConfig(_Section):
    size: int = Field(12, ge=2, description="Initial population size.")
    preferred_bias: float = Field(0.5, ge=0.0, le=1.0, description="Share of the population drawn favouring the knowledge's preferred sequences.")


class EvaluationConfig(_Section):
    # flops: on the v2 ground truth (real CIFAR-10, 12-epoch training, data/tables/hybrid_cifar10_v2.csv)
    # it is the only free signal, Spearman 0.54 with validation accuracy, where params says nothing
    # (-0.02; docs/hybrid_benchmark_v2.md), and the EHNAS recipe of the comparison prefilters by it
    # (docs/comparison.md). params ranked the 14 px MNIST table better (0.55 against 0.26), but that
    # table is an under-training regime. flops needs a forward pass: the embedded digits run takes
    # about 1.9x as long as with params (416 s against 219 s on a loaded 2-core machine).
    proxies: list[str] = Field(default_factory=lambda: ["flops"], description="Proxies to score; the first is the search fitness.")
    batch_size: int = Field(6, ge=1, description="Architectures per Prefect task (larger = less per-task overhead).")
    store: str | None = Field(None, description="Persistent evaluation store (None = <runs_root>/evaluations.sqlite, shared by runs).")
    fidelity: FidelityConfig = Field(default_factory=FidelityConfig, description="Training rungs (successive halving, Hyperband).")
    predictor: PredictorSection = Field(default_factory=PredictorSection, description="The learned predictor as the fitness of a multi-fidelity run.")

    @field_validator("proxies")
    @classmethod
    def _proxies_registered(cls, value: list[str]) -> list[str]:
        from nas_lib.proxies import PROXIES

        if not value:
            raise ValueError(f"empty; name one proxy at least (the first is the search fitness); known: {', '.join(PROXIES.names())}")
        return [_registered(PROXIES, name) for name in value]

    @model_validator(mode="after")
    def _predictor_needs_rungs(self) -> EvaluationConfig:
        if self.predictor.enabled and not self.fidelity.enabled:
            raise ValueError("evaluation.predictor.enabled needs training rungs: set evaluation.fidelity.kind to halving or hyperband")
        return self


class SearchConfig(_Section):
    strategy: str = Field("rea", description="Search strategy (registered name; the one-shot ones train a supernet on the run's data first).")
    # 8 x 6 children: on the embedded digits run, rea beat the best of the initial population
    # under all 6 seeds tried (by 2-8% in nwot); with 3 it missed under 1 of 6, the default seed.
    generations: int = Field(8, ge=0, description="Search generations after the initial population.")
    per_generation: int = Field(6, ge=1, description="Architectures asked per generation.")
    top_k_table: int = Field(5, ge=1, description="Rows of the per-generation top-k table artifact.")
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Options of the strategy (e.g. {population: 12} for ga); unknown keys are an error that lists the valid ones. "
        "A warm-up option left unset is lowered to population.size.",
    )

    @field_validator("strategy")
    @classmethod
    def _strategy_registered(cls, value: str) -> str:
        from nas_lib.search import strategy_names

        names = strategy_names()
        if value not in names:
            raise ValueError(f"unknown search strategy {value!r}; known: {', '.join(names)}")
        return value


class TrainingConfig(_Section):
    top_k: int = Field(2, ge=1, description="Finalists trained briefly and scored on the held-out split.")
    epochs: int = Field(2, ge=1, description="Training epochs per finalist.")
    # Two full epochs: digits needs ~40 steps before accuracy leaves chance level.
    max_batches_per_epoch: int | None = Field(None, ge=1, description="Cap on steps per epoch (None = the whole training split).")
    batch_size: int = Field(64, ge=1, description="Training batch size.")
    lr: float = Field(3e-3, gt=0.0, description="Learning rate.")


class RegistryConfig(_Section):
    enabled: bool = Field(True, description="Register the winner in MLflow.")
    tracking_uri: str | None = Field(None, description="MLflow tracking URI (None = sqlite:///<runs_root>/mlflow.db).")
    model_name: str | None = Field(None, description="Registered model name (None = ehnas-<dataset kind>).")
    promote: Literal["if_better", "always"] = Field(
        "if_better",
        description="When the winner takes the 'champion' alias: if_better = unless the current champion has a higher "
        "validation accuracy on the same validation data (the winner is then the 'challenger'); always = every run's winner.",
    )


class ExportConfig(_Section):
    formats: list[Literal["onnx", "torchscript", "quantized"]] = Field(
        default_factory=list, description="Export the registered winner to these formats (files logged under export/ of its MLflow run); [] = none."
    )
    onnx_exporter: Literal["torchscript", "dynamo", "auto"] = Field(
        "torchscript", description="ONNX exporter: torchscript (legacy, seconds), dynamo (torch.export based, ~10x slower here) or auto."
    )


class ExecutionConfig(_Section):
    """Where tasks run; results are the same on every runner, so this is not part of the fingerprint."""

    runner: Literal["thread", "dask", "ray"] = Field(
        "thread",
        description="Task runner: thread (Prefect's thread pool, one worker per device), dask (prefect-dask, extra [dask]) "
        "or ray (prefect-ray, extra [ray]).",
    )
    address: str = Field(
        "",
        description="Cluster to join: a Dask scheduler (tcp://HOST:PORT) or a Ray head (HOST:PORT, ray://HOST:10001); "
        "'' = a local cluster started for each sub-flow.",
    )
    workers: int | None = Field(None, ge=1, description="Workers of a local cluster (empty address); None = one per device.")
    # 30 s: an epoch of 48,000 MNIST digits ran 13 minutes on the 2-core machine with no line in between.
    progress_every_s: float = Field(
        30.0, ge=0.0, description="Seconds between progress lines (batches, images/s, ETA) inside a training epoch; 0 = every batch."
    )
    # 1.0: one batch per GPU at a time, as the thread runner's per-GPU concurrency limit does.
    gpus_per_task: float = Field(1.0, ge=0.0, description="GPUs a task on a cuda device asks for (Dask worker resource GPU, Ray num_gpus).")
    # Both limits are enforced in a child process per task (tasks/child.py), killed when the limit
    # passes, so a hang is really stopped on every runner. The score-batch limit stays off by default:
    # a child per batch pays a fresh interpreter and torch import each time (4.5-5.4 s measured here, loaded 2 cores).
    batch_timeout_s: float | None = Field(
        None,
        gt=0,
        description="Seconds a score-batch task (in a child process, killed at the limit) or a prune-layer task may run "
        "before it fails (None = no limit); not retried.",
    )
    # 20,000 s: ~10x the longest training measured here, a 1,918 s row of data/tables/hybrid_cifar10_v2.csv
    # (the default run trains its two finalists in ~118 s together).
    training_timeout_s: float | None = Field(
        20000.0,
        gt=0,
        description="Seconds a train-finalist task may run before its child process is killed and the task fails "
        "(None = no limit, trained in the worker itself); not retried. 20,000 s is ~10x the longest measured training (1,918 s).",
    )


class PipelineConfig(_Section):
    """Flow parameters of `nas_pipeline`. Every field has a description (used for --help)."""

    run_name: str = Field("", description="Run folder name under runs_root ('' = derived from the config, so a rerun resumes; {date} = UTC date).")
    runs_root: str = Field("runs", description="Folder holding run folders, the evaluation store and the MLflow database.")
    seed: int = Field(0, description="Seed of every random choice.")
    device: str = Field(
        "auto",
        description="auto | cpu | cuda | cuda:N (auto = every visible GPU, else CPU). On a cluster at an address each worker resolves it on its own machine.",
    )
    # Measured on the shared 2-core machine: 2 OpenMP threads on these small networks ran ~10x
    # slower than 1 (threads stall at each parallel region while other processes hold the cores).
    torch_threads: int | None = Field(
        1,
        ge=1,
        description="torch CPU threads (None = torch's default, one per core; on a Dask or Ray worker, the worker's own cores shared by its task slots).",
    )
    data: DataConfig = Field(default_factory=DataConfig, description="Dataset.")
    space: SpaceConfig = Field(default_factory=SpaceConfig, description="Search space.")
    knowledge: KnowledgeConfig = Field(default_factory=KnowledgeConfig, description="Knowledge base.")
    pruning: PruningConfig = Field(default_factory=PruningConfig, description="LLM pruning layers.")
    population: PopulationConfig = Field(default_factory=PopulationConfig, description="Initial population.")
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig, description="Proxy evaluation.")
    search: SearchConfig = Field(default_factory=SearchConfig, description="Search generations.")
    training: TrainingConfig = Field(default_factory=TrainingConfig, description="Finalist training.")
    registry: RegistryConfig = Field(default_factory=RegistryConfig, description="MLflow registration.")
    export: ExportConfig = Field(default_factory=ExportConfig, description="Export of the registered winner.")
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig, description="Task runner (thread, Dask or Ray).")

    @model_validator(mode="after")
    def _search_options_ok(self) -> PipelineConfig:
        if self.search.options:
            from nas_lib.search import check_options

            try:
                check_options(self.search.strategy, dict(self.search.options))
            except ValueError as err:
                raise ValueError(f"search.options: {err}") from None
        return self

    @field_validator("device")
    @classmethod
    def _device_ok(cls, value: str) -> str:
        if not DEVICE_PATTERN.match(value):
            raise ValueError(f"device {value!r} must be auto, cpu, cuda or cuda:N")
        return value

    @field_validator("run_name")
    @classmethod
    def _name_ok(cls, value: str) -> str:
        if value and not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", value.replace("{date}", "d")):
            raise ValueError(f"run_name {value!r} may hold letters, digits, '.', '_', '-' and {{date}} only")
        return value

    def fingerprint(self) -> str:
        """Hash of every field that changes results (run_name, runs_root and execution excluded)."""
        data = self.model_dump(mode="json", exclude={"run_name", "runs_root", "execution"})
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:10]

    def resolved_run_name(self) -> str:
        """`run_name` (``{date}`` -> today's UTC date, for scheduled runs), or
        ``<dataset>-<space>-<fingerprint>`` so the same config reruns in place."""
        if self.run_name:
            return self.run_name.replace("{date}", datetime.now(UTC).strftime("%Y%m%d"))
        return f"{self.data.kind}-{self.space.name}-{self.fingerprint()}"

    def run_dir(self) -> Path:
        return Path(self.runs_root) / self.resolved_run_name()

    def store_path(self) -> Path:
        return Path(self.evaluation.store) if self.evaluation.store else Path(self.runs_root) / "evaluations.sqlite"

    def tracking_uri(self) -> str:
        """The config's URI, else ``MLFLOW_TRACKING_URI``, else ``sqlite:///<runs_root>/mlflow.db``."""
        return self.registry.tracking_uri or default_tracking_uri(Path(self.runs_root))

    def model_name(self) -> str:
        return self.registry.model_name or f"ehnas-{self.data.kind}"


def default_tracking_uri(runs_root: Path) -> str:
    """``MLFLOW_TRACKING_URI`` when set, else ``sqlite:///<runs_root>/mlflow.db`` (absolute)."""
    env = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    return env or f"sqlite:///{Path(runs_root).resolve()}/mlflow.db"


def parse_overrides(pairs: Iterable[str]) -> dict[str, Any]:
    """``["a.b=1", "c=x"]`` -> ``{"a": {"b": 1}, "c": "x"}``; values parsed as YAML scalars/lists."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"override {pair!r} must look like key=value (dotted keys for nested fields)")
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {pair!r} conflicts with an earlier one")
        node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else None
    return out


def deep_merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """`extra` over `base`, merging nested mappings key by key."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


class ConfigError(ValueError):
    """A config file, ``--set`` override or value that cannot be used.

    The message names the file and line, or the field, the value given and the values allowed;
    the command line shows it as a usage error (exit code 2) without a traceback.
    """


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML config file; a `ConfigError` names the file (and line) otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} " + ("is a folder" if path.is_dir() else "does not exist"))
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        where = f"{path} line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
        raise ConfigError(f"{where}: YAML syntax error: {err.problem or err.context}") from None
    except (yaml.YAMLError, OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read the config file ({err})") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: the top level of a config file must be a mapping, got {type(loaded).__name__}")
    return loaded


def load_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> PipelineConfig:
    """Config from an optional YAML file plus ``key=value`` overrides.

    Raises:
        ConfigError: a missing or malformed file, a bad override or an invalid value; the
            message names the field, the value and the allowed values.
    """
    data = read_config_file(path) if path is not None else {}
    try:
        extra = parse_overrides(overrides)
    except ValueError as err:
        raise ConfigError(f"--set: {err}") from None
    try:
        return PipelineConfig.model_validate(deep_merge(data, extra))
    except ValidationError as err:
        raise ConfigError(format_validation_error(err)) from None


def format_validation_error(err: ValidationError) -> str:
    """One line per problem: ``field = value: what is wrong (allowed: ...)``."""
    return "\n".join(_problem_line(e) for e in err.errors(include_url=False))


def _problem_line(error: Mapping[str, Any]) -> str:
    loc = tuple(error["loc"])
    field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") or "config"
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        known = _field_names(loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"; did you mean {_join(loc[:-1], close[0])}?" if close else ""
        return f"{field}: unknown key{hint} (known keys here: {', '.join(known)})"
    if error["type"] == "missing":
        return f"{field}: required"
    value = error.get("input")
    shown = json.dumps(value, default=str) if not isinstance(value, Mapping) or len(str(value)) < 80 else "{...}"
    allowed = _allowed(loc)
    suffix = f" (allowed: {', '.join(allowed)})" if allowed and "should be" not in message else ""
    return f"{field} = {shown}: {message}{suffix}" if loc else f"{message}"


def _join(parent: tuple[Any, ...], name: str) -> str:
    return ".".join([*(str(p) for p in parent), name])


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The config section a location points into (None for dict fields and list items)."""
    model: type[BaseModel] = PipelineConfig
    for part in loc:
        info = model.model_fields.get(str(part))
        annotation = info.annotation if info else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _field_names(loc: tuple[Any, ...]) -> list[str]:
    model = _model_at(loc)
    return list(model.model_fields) if model else []


def _allowed(loc: tuple[Any, ...]) -> list[str]:
    """The choices of a Literal field (or of a list of Literals), else []."""
    names = [p for p in loc if not isinstance(p, int)]
    model = _model_at(tuple(names[:-1])) if names else None
    info = model.model_fields.get(str(names[-1])) if model else None
    annotation = info.annotation if info else None
    for candidate in (annotation, *typing.get_args(annotation)):
        if typing.get_origin(candidate) is Literal:
            return [str(a) for a in typing.get_args(candidate)]
    return []


def describe_fields(model: type[BaseModel] = PipelineConfig, prefix: str = "") -> list[str]:
    """One line per leaf field: ``dotted.key = default  description`` (the --help text)."""
    lines: list[str] = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            lines += describe_fields(annotation, f"{prefix}{name}.")
            continue
        default = info.get_default(call_default_factory=True)
        lines.append(f"{prefix}{name} = {json.dumps(default)}  {info.description or ''}".rstrip())
    return lines
