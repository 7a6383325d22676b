"""Pipeline timings in one process: Prefect cold run, warm rerun, and the same work without Prefect.

    .venv/bin/python benchmarks/pipeline.py [--set key=value ...] [--skip-bare]

Each measured run gets its own fresh runs root (so its evaluation store and MLflow database start
empty); the warm rerun reuses the cold run's folder. The ephemeral Prefect server is started by a
trivial flow first and timed on its own, so the Prefect/bare ratio measures the pipeline's
orchestration overhead (task and sub-flow runs, artifacts, state), not the server start. A tiny
bare run first pays the process's one-time costs (MLflow database set-up, first torch kernels),
which otherwise fall on whichever measured run comes first.
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
    """The pipeline's steps called directly (task `.fn`s and nas_lib), no Prefect run; the flow's
    single-writer pattern (RunFolder, scores stored after each batch)."""
    from flows.pipeline import prune, register
    from flows.stages import save_finalist
    from nas_lib.evaluation import EVALUATION_SCHEMA, EvalRecord, EvaluationStore, assemble, split_batches, split_cached
    from nas_lib.steps import LAYER_STEPS, Step
    from tasks import knowledge, population, pruning, registry, search, training
    from tasks.context import apply_runtime
    from tasks.data_ref import DataRef
    from tasks.evaluation import Scoring, evaluation_rows, score_records
    from tasks.run_folder import RunFolder
    from tasks.spaces import space_from_dict

    apply_runtime(config)
    run = RunFolder.create(config)
    cfg = run.config()
    run.write_step(Step.KNOWLEDGE, knowledge.build_knowledge_rows(cfg.knowledge, run.knowledge_dir), knowledge.KNOWLEDGE_SCHEMA)
    for layer in LAYER_STEPS:
        prune(run, cfg, layer, pruning.prune_layer.fn)
    space = run.space_dict()
    run.write_step(Step.POPULATION, population.population_rows(space, cfg.population, cfg.seed), population.POPULATION_SCHEMA)
    store, scoring = EvaluationStore(cfg.store_path()), Scoring.of(cfg)
    built, proxies = space_from_dict(space), scoring.proxy_objects()

    def evaluate(archs: list[str]) -> list[dict]:
        known, work = split_cached(store, built, archs, proxies, data_fingerprint=scoring.data_fingerprint(), seed=cfg.seed)
        fresh: list[EvalRecord] = []
        for batch in split_batches(work, cfg.evaluation.batch_size):
            records = score_records(scoring, space, batch)
            store.put_many(records)
            fresh += records
        return [r.to_row() for r in assemble(built, archs, proxies, [*known.values(), *fresh])]

    run.write_step(Step.EVALUATIONS, evaluation_rows(evaluate(run.read_step(Step.POPULATION)["arch"].tolist())), EVALUATION_SCHEMA)
    setup = search.SearchSetup.of(cfg, space)
    state = search.initial_state(setup, run.read_step(Step.EVALUATIONS).to_dict("records"))
    for generation in range(1, cfg.search.generations + 1):
        state = search.propose_generation.fn(state, generation, setup)
        state = search.record_generation.fn(state, generation, evaluate(state["pending"]), setup)
        run.save_search_state(state)
    run.write_step(Step.SEARCH, state["rows"], search.SEARCH_SCHEMA)
    finalists = training.select_finalists(run.read_step(Step.SEARCH), cfg.training.top_k)
    rows = [save_finalist(run, training.train_result(f, space, DataRef.of(cfg), cfg.training, cfg.seed, cfg.data.test)) for f in finalists]
    run.write_step(Step.TRAINING, training.training_frame(rows), training.TRAINING_SCHEMA)
    register(run, cfg, registry.register_winner.fn)
    return {"run_dir": str(run.root)}


def cpu_seconds() -> float:
    """CPU time of this process and every descendant (the ephemeral API server included).

    The machine is shared, so wall time drifts with other users' load; CPU time does much less.
    """
    import os
    import resource

    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        parents[pid], times[pid] = int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks
    me, live = os.getpid(), 0.0
    for pid in times:
        p = parents.get(pid)
        while p and p != me:
            p = parents.get(p)
        if p == me:
            live += times[pid]
    done = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + live + done.ru_utime + done.ru_stime


CPU: dict[str, float] = {}
TINY = [
    "run_name=warmup",
    "population.size=2",
    "pruning.layers=[]",
    "search.generations=0",
    "training.top_k=1",
    "training.epochs=1",
    "training.max_batches_per_epoch=1",
]


def timed(label: str, fn, *args, **kwargs) -> tuple[float, object]:  # noqa: ANN001
    start, cpu = time.perf_counter(), cpu_seconds()
    out = fn(*args, **kwargs)
    seconds, CPU[label] = time.perf_counter() - start, cpu_seconds() - cpu
    print(f"{label:<28s} {seconds:8.1f} s wall {CPU[label]:8.1f} s cpu", flush=True)
    return seconds, out


def import_everything() -> None:
    """Imports both runs need, so neither pays them inside its timing."""
    import mlflow  # noqa: F401

    import nas_lib.knowledge  # noqa: F401
    import nas_lib.proxies  # noqa: F401
    import nas_lib.pruning  # noqa: F401
    import nas_lib.search  # noqa: F401
    import nas_lib.train  # noqa: F401
    import tasks.mlflow_pipeline  # noqa: F401


def clear_caches() -> None:
    """Forgets the in-process dataset and space caches (each measured run loads its own)."""
    from tasks import data_ref, spaces

    data_ref._load.cache_clear()
    spaces._space.cache_clear()


def task_overhead(n: int) -> float:
    """Seconds Prefect adds per task run: (flow of 2n no-op tasks - flow of n) / n, after a
    first flow of n tasks that pays the one-time set-up of the flow and task definitions."""
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE

    @task(cache_policy=NO_CACHE)
    def noop(i: int) -> int:
        return i

    @flow(name="ehnas-bench-overhead")
    def many(k: int) -> int:
        return sum(noop(i) for i in range(k))

    timed(f"flow with {n} tasks (set-up)", many, n)
    base, _ = timed(f"flow with {n} tasks", many, n)
    double, _ = timed(f"flow with {2 * n} tasks", many, 2 * n)
    return (double - base) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="config override key=value")
    parser.add_argument("--skip-bare", action="store_true")
    parser.add_argument("--overhead-tasks", type=int, default=20, help="no-op tasks timed for the per-task overhead (0 = skip)")
    args = parser.parse_args()

    from prefect import flow

    from flows.pipeline import nas_pipeline
    from tasks.config import load_config

    @flow(name="ehnas-bench-warmup")
    def warmup() -> int:
        return 1

    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="ehnas-bench-") as tmp, prefect_settings(home=Path(tmp) / "prefect"):
        results["server_start_s"], _ = timed("ephemeral server + 1 flow", warmup)
        timed("imports (mlflow, torch libs)", import_everything)
        # One-time costs of a process (MLflow store set-up, first torch kernels) are paid here by
        # a tiny run, so neither measured run gets them and the order of the runs does not matter.
        timed("warm-up tiny bare run", run_bare, load_config(None, [*TINY, f"runs_root={tmp}/warmup"]))
        if not args.skip_bare:  # bare first: a drift in the machine's load then does not favour Prefect
            bare_cfg = load_config(None, [*args.overrides, f"runs_root={tmp}/bare_runs", "run_name=bench"])
            clear_caches()
            results["bare_cold_s"], _ = timed("bare (no Prefect) cold run", run_bare, bare_cfg)
        if args.overhead_tasks:
            results["task_overhead_ms"] = task_overhead(args.overhead_tasks) * 1000
            print(f"{'per-task overhead':<28s} {results['task_overhead_ms']:8.1f} ms", flush=True)
        cfg = load_config(None, [*args.overrides, f"runs_root={tmp}/prefect_runs", "run_name=bench"])
        clear_caches()
        results["prefect_cold_s"], _ = timed("prefect cold run", nas_pipeline, cfg)
        results["prefect_warm_s"], _ = timed("prefect warm rerun", nas_pipeline, cfg)
    results["prefect_cold_cpu_s"] = CPU["prefect cold run"]
    results["prefect_warm_cpu_s"] = CPU["prefect warm rerun"]
    results["warm_over_cold"] = results["prefect_warm_s"] / results["prefect_cold_s"]
    print(f"warm / cold       = {results['warm_over_cold']:.3f}   (target <= 0.10)")
    if "bare_cold_s" in results:
        results["bare_cold_cpu_s"] = CPU["bare (no Prefect) cold run"]
        results["prefect_over_bare"] = results["prefect_cold_s"] / results["bare_cold_s"]
        results["prefect_over_bare_cpu"] = results["prefect_cold_cpu_s"] / results["bare_cold_cpu_s"]
        print(f"prefect / bare    = {results['prefect_over_bare']:.3f} wall, {results['prefect_over_bare_cpu']:.3f} cpu   (target <= 1.30)")
    print(json.dumps({k: round(v, 3) for k, v in results.items()}))


if __name__ == "__main__":
    main()
