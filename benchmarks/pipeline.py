"""Pipeline timings in one process: Prefect cold run, warm rerun, and the same work without Prefect.

    .venv/bin/python benchmarks/pipeline.py [--set key=value ...] [--skip-bare]

Each measured run gets its own fresh runs root (so its evaluation store and MLflow database start
empty); the warm rerun reuses the cold run's folder. The ephemeral Prefect server is started by a
trivial flow first and timed on its own, so the Prefect/bare ratio measures the pipeline's
orchestration overhead (task and sub-flow runs, artifacts, state), not the server start.
Targets (issue 5): warm <= 10% of cold; Prefect run <= 1.3x the bare run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flows.pipeline import prefect_settings, set_prefect_defaults  # noqa: E402

set_prefect_defaults()


def run_bare(config) -> dict:  # noqa: ANN001 - PipelineConfig
    """The pipeline's steps called directly (task `.fn`s and nas_lib), no Prefect run."""
    from nas_lib.artifacts import write_table
    from nas_lib.evaluation import split_batches
    from nas_lib.population import POPULATION_SCHEMA
    from tasks import knowledge, population, pruning, registry, search, training
    from tasks.context import LAYER_STEPS, load_config, step_path, write_config
    from tasks.evaluation import score_rows, write_evaluations

    run_dir = str(write_config(config))
    cfg = load_config(run_dir)
    knowledge.knowledge_step.fn(run_dir)
    for layer in LAYER_STEPS:
        pruning.prune_layer.fn(run_dir, layer) if layer in cfg.pruning.layers else pruning.skip_layer(run_dir, layer)
    write_table(step_path(run_dir, "05_population"), population.population_rows(run_dir), POPULATION_SCHEMA)

    def evaluate(archs: list[str]) -> list[dict]:
        return [r for b in split_batches(archs, cfg.evaluation.batch_size) for r in score_rows(run_dir, b)]

    write_evaluations(run_dir, evaluate(population.population_archs(run_dir)))
    for generation in range(search.start_search(run_dir)["generation"], cfg.search.generations + 1):
        search.record_generation.fn(run_dir, generation, evaluate(search.propose_generation.fn(run_dir, generation)))
    search.finish_search(run_dir)
    training.write_training(run_dir, [training.train_row(run_dir, f) for f in training.select_finalists(run_dir)])
    registry.register_winner.fn(run_dir, skip=not cfg.registry.enabled)
    return {"run_dir": run_dir}


def timed(label: str, fn, *args, **kwargs) -> tuple[float, object]:  # noqa: ANN001
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    seconds = time.perf_counter() - start
    print(f"{label:<28s} {seconds:8.1f} s", flush=True)
    return seconds, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="config override key=value")
    parser.add_argument("--skip-bare", action="store_true")
    args = parser.parse_args()

    from prefect import flow

    from flows.config import load_config
    from flows.pipeline import nas_pipeline

    @flow(name="ehnas-bench-warmup")
    def warmup() -> int:
        return 1

    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="ehnas-bench-") as tmp, prefect_settings(home=Path(tmp) / "prefect"):
        results["server_start_s"], _ = timed("ephemeral server + 1 flow", warmup)
        cfg = load_config(None, [*args.overrides, f"runs_root={tmp}/prefect_runs", "run_name=bench"])
        results["prefect_cold_s"], _ = timed("prefect cold run", nas_pipeline, cfg)
        results["prefect_warm_s"], _ = timed("prefect warm rerun", nas_pipeline, cfg)
        if not args.skip_bare:
            bare_cfg = load_config(None, [*args.overrides, f"runs_root={tmp}/bare_runs", "run_name=bench"])
            results["bare_cold_s"], _ = timed("bare (no Prefect) cold run", run_bare, bare_cfg)
    results["warm_over_cold"] = results["prefect_warm_s"] / results["prefect_cold_s"]
    print(f"warm / cold       = {results['warm_over_cold']:.3f}   (target <= 0.10)")
    if "bare_cold_s" in results:
        results["prefect_over_bare"] = results["prefect_cold_s"] / results["bare_cold_s"]
        print(f"prefect / bare    = {results['prefect_over_bare']:.3f}   (target <= 1.30)")
    print(json.dumps({k: round(v, 3) for k, v in results.items()}))


if __name__ == "__main__":
    main()
