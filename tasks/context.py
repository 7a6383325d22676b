"""Everything a task needs from a run folder: config, step files, ledger, data, space, devices.

Tasks receive only the run folder (a path) and small ids; they rebuild what they need from the
files there, so inputs hash cheaply and the folder is the complete record of the run. Nothing
here imports Prefect: these are plain functions the benchmarks also call without a flow.
"""

from __future__ import annotations

import json
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from tasks.config import PipelineConfig
from nas_lib.artifacts import atomic_write_json

STEPS: tuple[str, ...] = (
    "01_knowledge", "02_macro", "03_hyperparameters", "04_connections", "05_population",
    "06_evaluations", "07_search", "08_training", "09_registry",
)
LAYER_STEPS = {"macro": "02_macro", "hyperparameters": "03_hyperparameters", "connections": "04_connections"}


def step_path(run_dir: str | Path, step: str) -> Path:
    """``<run>/<step>.parquet``."""
    if step not in STEPS:
        raise KeyError(f"unknown step {step!r}; steps: {', '.join(STEPS)}")
    return Path(run_dir) / f"{step}.parquet"


def write_config(config: PipelineConfig) -> Path:
    """Creates the run folder and stores the config there (the input of every task).

    A run folder reused with a different config keeps its files but forgets every finished
    step (scores stay in the shared evaluation store, so nothing is paid twice).
    """
    run_dir = config.run_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "config.json"
    if path.exists() and load_config(run_dir).fingerprint() != config.fingerprint():
        forget_from(run_dir, STEPS[0])
        (run_dir / "space.json").unlink(missing_ok=True)
    atomic_write_json(path, config.model_dump(mode="json"))
    return run_dir


@lru_cache(maxsize=16)
def _load_config(path: str, mtime: float) -> PipelineConfig:
    return PipelineConfig.model_validate(json.loads(Path(path).read_text(encoding="utf-8")))


def load_config(run_dir: str | Path) -> PipelineConfig:
    """The config stored in a run folder."""
    path = Path(run_dir) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: {run_dir} is not a run folder")
    return _load_config(str(path.resolve()), path.stat().st_mtime)


# -- ledger: which steps finished, for which config -------------------------------------------------
def _ledger_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / "steps.json"


def read_ledger(run_dir: str | Path) -> dict[str, Any]:
    path = _ledger_path(run_dir)
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def step_done(run_dir: str | Path, step: str) -> bool:
    """True when `step` finished for this run's current config and its Parquet file exists."""
    entry = read_ledger(run_dir).get(step)
    fingerprint = load_config(run_dir).fingerprint()
    return bool(entry) and entry.get("config") == fingerprint and step_path(run_dir, step).exists()


def mark_done(run_dir: str | Path, step: str, seconds: float, **extra: Any) -> None:
    """Records that `step` finished (after its Parquet file was written)."""
    ledger = read_ledger(run_dir)
    ledger[step] = {"config": load_config(run_dir).fingerprint(), "seconds": round(seconds, 3), "finished": time.time(), **extra}
    atomic_write_json(_ledger_path(run_dir), ledger)


def forget_from(run_dir: str | Path, step: str) -> list[str]:
    """Marks `step` and every later step unfinished (``ehnas resume --redo``); returns them."""
    ledger = read_ledger(run_dir)
    later = list(STEPS[STEPS.index(step):])
    for name in later:
        ledger.pop(name, None)
    atomic_write_json(_ledger_path(run_dir), ledger)
    if "07_search" in later:
        (Path(run_dir) / "07_search_state.json").unlink(missing_ok=True)
    if "08_training" in later:  # per-finalist rows would otherwise be reused
        for item in (Path(run_dir) / "finalists").glob("*.json"):
            item.unlink()
    return later


# -- data, space, devices ------------------------------------------------------------------------------
@lru_cache(maxsize=4)
def _dataset(kind: str, path: str | None, image_size: int | None, val_fraction: float, seed: int, max_items: int | None) -> Any:
    from nas_lib.data.datasets import load_dataset

    return load_dataset(kind, path, image_size=image_size, val_fraction=val_fraction, seed=seed, max_items=max_items)


def load_data(run_dir: str | Path) -> Any:
    """The run's `ImageDataset` (loaded once per process)."""
    d = load_config(run_dir).data
    return _dataset(d.kind, d.path, d.image_size, d.val_fraction, load_config(run_dir).seed, d.max_items)


def proxy_batch(data: Any, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed, seeded batch of `n` training images: every proxy scores every network on it."""
    from nas_lib.data.arrays import training_batch

    return training_batch(data, n, seed)


def space_file(run_dir: str | Path) -> Path:
    return Path(run_dir) / "space.json"


def load_space(run_dir: str | Path, upto: str | None = None) -> Any:
    """The space after the last pruning layer (or after layer `upto`); the base space if none ran."""
    from nas_lib.space import HybridConstraints, get_space

    path = space_file(run_dir)
    spaces = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    cfg = load_config(run_dir)
    key = upto if upto is not None else next((k for k in reversed(list(LAYER_STEPS)) if k in spaces), None)
    if key is not None and key in spaces:
        return space_from_dict(spaces[key])
    if cfg.space.name == "hybrid":
        base = {**cfg.space.constraints, "min_depth": cfg.space.min_depth, "max_depth": cfg.space.max_depth}
        return get_space("hybrid", constraints=HybridConstraints.from_dict(base))
    return get_space(cfg.space.name)


def space_to_dict(space: Any) -> dict[str, Any]:
    """JSON form of a (pruned) space: its name plus constraints or per-edge ops."""
    if getattr(space, "name", "") == "nb201":
        return {"name": "nb201", "edge_ops": [list(ops) for ops in space.edge_ops]}
    return {"name": "hybrid", "constraints": space.constraints.to_dict()}


def space_from_dict(data: dict[str, Any]) -> Any:
    from nas_lib.space import HybridConstraints, get_space

    if data["name"] == "nb201":
        return get_space("nb201", edge_ops=data["edge_ops"])
    return get_space("hybrid", constraints=HybridConstraints.from_dict(data["constraints"]))


def save_space(run_dir: str | Path, layer: str, space: Any) -> None:
    """Records the space after `layer` (later tasks rebuild it from this file)."""
    path = space_file(run_dir)
    spaces = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    spaces[layer] = space_to_dict(space)
    atomic_write_json(path, spaces)


def apply_runtime(config: PipelineConfig) -> None:
    """Process-wide torch settings of a run (CPU threads)."""
    if config.torch_threads is not None and torch.get_num_threads() != config.torch_threads:
        torch.set_num_threads(config.torch_threads)


def plan_devices(device: str) -> list[str]:
    """The devices evaluation batches spread over: every visible GPU for ``auto``, else one.

    Raises:
        ValueError: the device is unknown or does not exist on this machine (said before any
            work: otherwise every proxy score would fail and the run would stop at training).
    """
    from nas_lib.train.device import resolve_device

    if device == "auto":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return [f"cuda:{i}" for i in range(count)] or ["cpu"]
    return [resolve_device(device)]
