"""`RunFolder`: the one object that knows a run folder's layout and keeps its step ledger.

Layout of ``<runs_root>/<run name>/``::

    config.json                the run's `PipelineConfig` (its fingerprint keys the ledger)
    steps.json                 the ledger: which steps finished, for which config (and ``interrupted``:
                               the step a SIGINT/SIGTERM stopped, until the run finishes)
    <step>.parquet             one file per `Step` (``01_knowledge.parquet`` ... ``09_registry.parquet``)
    space.json                 the space after each pruning layer (JSON form, see `tasks.spaces`)
    data.json                  the loaded dataset: sizes, classes, fingerprint, corrupt images skipped
    ehnas.log                  Prefect's records of `ehnas run`/`resume`, tracebacks included (not the terminal's)
    <search step>_state.json   the search strategy's state between generations (``07_search_state.json``)
    finalists/<arch_id>.json   a trained finalist's row (plus ``.pt`` weights, ``.roc.json`` curves)
    knowledge/                 papers extracted into a knowledge table (``knowledge.documents``)
    plots/                     PNG plots of the report and the finalists' ROC curves

Only the flow (and the command line, to read a finished run) uses this class: tasks get values
and return rows, and the flow writes them here. Nothing here imports Prefect.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from nas_lib.artifacts import atomic_write_json, file_digest, read_table, write_table
from nas_lib.steps import LAYER_STEPS, Step
from tasks.config import PipelineConfig
from tasks.spaces import base_space_dict

INTERRUPTED = "interrupted"  # the ledger key of the signal that stopped the run (not a step)


@dataclass(frozen=True)
class RunFolder:
    """A run folder (it need not exist yet); every path of a run comes from here."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @classmethod
    def create(cls, config: PipelineConfig) -> RunFolder:
        """Creates the run folder of `config` and stores the config there.

        A folder reused with a different config keeps its files but forgets every finished step
        (scores stay in the shared evaluation store, so nothing is paid twice).
        """
        run = cls(config.run_dir())
        run.root.mkdir(parents=True, exist_ok=True)
        if run.config_file.exists() and run.config().fingerprint() != config.fingerprint():
            run.forget(Step.KNOWLEDGE)
            run.space_file.unlink(missing_ok=True)
        atomic_write_json(run.config_file, config.model_dump(mode="json"))
        return run

    @classmethod
    def open(cls, path: str | Path) -> RunFolder:
        """An existing run folder.

        Raises:
            FileNotFoundError: `path` holds no ``config.json``.
        """
        run = cls(Path(path))
        if not run.config_file.exists():
            raise FileNotFoundError(f"{run.config_file} not found: {path} is not a run folder")
        return run

    # -- paths ---------------------------------------------------------------------------------
    @property
    def config_file(self) -> Path:
        return self.root / "config.json"

    @property
    def ledger_file(self) -> Path:
        return self.root / "steps.json"

    @property
    def space_file(self) -> Path:
        return self.root / "space.json"

    @property
    def data_file(self) -> Path:
        return self.root / "data.json"

    @property
    def search_state_file(self) -> Path:
        return self.root / f"{Step.SEARCH}_state.json"

    @property
    def finalists_dir(self) -> Path:
        return self.root / "finalists"

    @property
    def knowledge_dir(self) -> Path:
        return self.root / "knowledge"

    @property
    def plots_dir(self) -> Path:
        return self.root / "plots"

    def step_file(self, step: Step | str) -> Path:
        """``<run>/<step>.parquet`` (a ValueError lists the steps for an unknown name)."""
        from nas_lib.steps import parse_step

        return self.root / f"{parse_step(str(step))}.parquet"

    def pareto_file(self, step: Step) -> Path:
        """``<run>/<step>_pareto.parquet``: the Pareto front the step found (search, finalists)."""
        from nas_lib.report import pareto_path

        return pareto_path(self.root, step)

    def write_pareto(self, step: Step, rows: list[dict[str, Any]]) -> Path:
        """Writes a `nas_lib.report.PARETO_SCHEMA` front atomically; returns its path."""
        from nas_lib.report import PARETO_SCHEMA

        return write_table(self.pareto_file(step), rows, PARETO_SCHEMA)

    def weights_file(self, arch_id: str) -> Path:
        return self.finalists_dir / f"{arch_id}.pt"

    # -- config and step tables -----------------------------------------------------------------
    def config(self) -> PipelineConfig:
        """The config stored in the folder."""
        if not self.config_file.exists():
            raise FileNotFoundError(f"{self.config_file} not found: {self.root} is not a run folder")
        return PipelineConfig.model_validate(json.loads(self.config_file.read_text(encoding="utf-8")))

    def read_step(self, step: Step) -> pd.DataFrame:
        """The step's table (FileNotFoundError when the step never wrote it)."""
        return read_table(self.step_file(step))

    def write_step(self, step: Step, rows: Any, schema: pa.Schema) -> Path:
        """Writes the step's table atomically; returns its path."""
        return write_table(self.step_file(step), rows, schema)

    # -- ledger ------------------------------------------------------------------------------------
    def ledger(self) -> dict[str, Any]:
        """step -> its entry; empty when there is no ledger or it is damaged (`ledger_problem`)."""
        return self._read_ledger()[0]

    def ledger_problem(self) -> str | None:
        """Why ``steps.json`` cannot be trusted (unreadable JSON), or None."""
        return self._read_ledger()[1]

    def _read_ledger(self) -> tuple[dict[str, Any], str | None]:
        path = self.ledger_file
        if not path.exists():
            return {}, None
        try:
            ledger = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            return {}, f"{path} is damaged ({err}); every step counts as unfinished"
        if not isinstance(ledger, dict):
            return {}, f"{path} is damaged (not a JSON object); every step counts as unfinished"
        return ledger, None

    def done(self, step: Step) -> bool:
        """True when `step` finished under the folder's current config and its file is the one
        the ledger recorded (same size and SHA-256)."""
        entry = self.ledger().get(str(step))
        if not entry:
            return False
        return entry.get("config") == self.config().fingerprint() and self.damage(step) is None

    def damage(self, step: Step) -> str | None:
        """Why the step's file no longer matches the ledger (missing, other size, other content),
        or None when it matches or the step was never recorded."""
        entry = self.ledger().get(str(step))
        path = self.step_file(step)
        if not entry:
            return None
        if not path.exists():
            return f"{path} is missing"
        if "sha256" not in entry:  # recorded before the ledger kept digests: existence is all we know
            return None
        now = file_digest(path)
        if now["size"] != entry.get("size"):
            return f"{path} changed size since it was written ({entry.get('size')} -> {now['size']} bytes)"
        if now["sha256"] != entry["sha256"]:
            return f"{path} changed content since it was written (SHA-256 differs)"
        return None

    def mark(self, step: Step, seconds: float, **extra: Any) -> None:
        """Records that `step` finished (after its Parquet file was written), with the file's
        size and SHA-256 so a later change to it is detected."""
        ledger = self.ledger()
        ledger[str(step)] = {
            "config": self.config().fingerprint(),
            "seconds": round(seconds, 3),
            "finished": time.time(),
            **file_digest(self.step_file(step)),
            **extra,
        }
        atomic_write_json(self.ledger_file, ledger)

    def mark_interrupted(self, step: str | None, signal_name: str) -> None:
        """Records that a signal (``SIGINT``/``SIGTERM``) stopped the run during `step`; the
        step's own entry stays absent, so a resume reruns it. Cleared when the run finishes."""
        ledger = self.ledger()
        ledger[INTERRUPTED] = {"step": step, "signal": signal_name, "at": time.time()}
        atomic_write_json(self.ledger_file, ledger)

    def interrupted(self) -> dict[str, Any] | None:
        """The ledger's record of the signal that last stopped the run, or None."""
        entry = self.ledger().get(INTERRUPTED)
        return entry if isinstance(entry, dict) else None

    def clear_interrupted(self) -> None:
        """Drops the interruption record (the run has since finished)."""
        ledger = self.ledger()
        if ledger.pop(INTERRUPTED, None) is not None:
            atomic_write_json(self.ledger_file, ledger)

    def forget(self, step: Step | str) -> list[Step]:
        """Marks `step` and every later step unfinished (``--redo``); returns them.

        The search state and the saved finalist rows go with their steps, or a redo would reuse them.
        """
        from nas_lib.steps import parse_step

        steps = list(Step)
        later = steps[steps.index(parse_step(str(step))) :]
        ledger = self.ledger()
        for name in later:
            ledger.pop(str(name), None)
        atomic_write_json(self.ledger_file, ledger)
        for name in later:  # a redone step writes its front again (or none, e.g. another strategy)
            self.pareto_file(name).unlink(missing_ok=True)
        if Step.SEARCH in later:
            self.search_state_file.unlink(missing_ok=True)
        if Step.TRAINING in later:
            for item in self.finalists_dir.glob("*.json"):
                item.unlink()
        return later

    # -- spaces ------------------------------------------------------------------------------------
    def spaces(self) -> dict[str, dict[str, Any]]:
        """layer -> JSON form of the space after it (only the layers that ran or were skipped)."""
        return json.loads(self.space_file.read_text(encoding="utf-8")) if self.space_file.exists() else {}

    def save_space(self, layer: str, space: dict[str, Any]) -> None:
        spaces = self.spaces()
        spaces[layer] = space
        atomic_write_json(self.space_file, spaces)

    def space_dict(self, upto: str | None = None) -> dict[str, Any]:
        """The space after layer `upto` (default: the last layer that ran); the base space when
        that layer left no record."""
        spaces = self.spaces()
        key = upto if upto is not None else next((k for k in reversed(list(LAYER_STEPS)) if k in spaces), None)
        if key is not None and key in spaces:
            return spaces[key]
        return base_space_dict(self.config().space)

    def space_before(self, layer: str) -> dict[str, Any]:
        """The space the layer `layer` starts from: the last earlier layer's, else the base space."""
        names = list(LAYER_STEPS)
        spaces = self.spaces()
        last = next((n for n in reversed(names[: names.index(layer)]) if n in spaces), None)
        return spaces[last] if last else base_space_dict(self.config().space)

    # -- data ----------------------------------------------------------------------------------------
    def save_data_record(self, data: Any, shown: int = 50) -> dict[str, Any]:
        """Records the loaded dataset (`ImageDataset.summary` plus the count and the first `shown`
        of the image files skipped as corrupt); returns the record."""
        skipped = list(getattr(data, "skipped", ()))
        record = {**data.summary(), "skipped_count": len(skipped), "skipped": [{"file": f, "reason": r} for f, r in skipped[:shown]]}
        atomic_write_json(self.data_file, record)
        return record

    # -- search state and finalists ----------------------------------------------------------------
    def search_state(self) -> dict[str, Any] | None:
        path = self.search_state_file
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None

    def save_search_state(self, state: dict[str, Any]) -> None:
        atomic_write_json(self.search_state_file, state)

    def finalist_row(self, arch_id: str) -> dict[str, Any] | None:
        """The saved row of a finalist trained earlier in this run, or None."""
        path = self.finalists_dir / f"{arch_id}.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None

    def save_finalist(self, row: dict[str, Any]) -> None:
        atomic_write_json(self.finalists_dir / f"{row['arch_id']}.json", row)
