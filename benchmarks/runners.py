"""Task runners measured in one process: evaluation throughput on 1 and 2 Dask workers, and each
runner's per-task overhead against Prefect's thread pool.

    .venv/bin/python benchmarks/runners.py [--archs 24] [--proxy nwot] [--tasks 40] [--skip-ray]

1. **Evaluations per second.** The pipeline's own `evaluate` sub-flow (flows/stages.py) scores the
   same seeded sample of architectures on a local Dask cluster of 1 worker process, then of 2.
   Each measurement has its own runs root, so its evaluation store starts empty and every score
   is computed; the workers first score a different sample, so imports and first kernels are
   paid before the clock starts. Ratio: 2 workers / 1 worker.
2. **Per-task overhead.** A flow submits `--tasks` empty tasks to one runner and waits for them:
   thread pool (2 threads), the 2-worker Dask cluster, a local Ray with 2 CPUs. Each runner is
   warmed by one such flow first. Ratio: seconds per task / the thread pool's.

The Prefect API is the temporary server `ehnas run` uses; it is started before any timing.
Results depend on the machine's load: on a shared machine run it twice and report both.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flows.pipeline import prefect_settings, set_prefect_defaults

set_prefect_defaults()

BASE = ["space.min_depth=4", "space.max_depth=4", "pruning.layers=[]", "evaluation.batch_size=2", "data.proxy_batch=16"]


def sample_archs(n: int, seed: int) -> list[str]:
    """`n` distinct architectures of the default hybrid space (canonical strings)."""
    import numpy as np

    from tasks.config import load_config
    from tasks.spaces import base_space_dict, space_from_dict

    space = space_from_dict(base_space_dict(load_config(None, BASE).space))
    rng, out = np.random.default_rng(seed), {}
    while len(out) < n:
        arch = space.to_string(space.sample(rng))
        out.setdefault(arch, None)
    return list(out)


def evaluations_per_second(address: str, archs: list[str], proxy: str, root: Path) -> float:
    """Scores `archs` with the pipeline's `evaluate` sub-flow on the cluster at `address`."""
    from flows.stages import evaluate
    from tasks.config import load_config
    from tasks.run_folder import RunFolder

    cfg = load_config(None, [*BASE, f"runs_root={root}", f"evaluation.proxies=[{proxy}]", "execution.runner=dask", f"execution.address={address}"])
    run = RunFolder.create(cfg)
    start = time.perf_counter()
    rows = evaluate(run, archs, "bench")
    seconds = time.perf_counter() - start
    assert len(rows) == len(archs) and all(r["state"] == "ok" for r in rows), rows
    return len(archs) / seconds


def empty_task_seconds(runner, tasks: int) -> float:
    """Wall seconds per empty task submitted `tasks` times to `runner` (one flow run)."""
    from prefect import flow, task

    @task(name="empty")
    def empty(i: int) -> int:
        return i

    @flow(name="overhead", task_runner=runner)
    def overhead() -> float:
        start = time.perf_counter()
        futures = [empty.submit(i) for i in range(tasks)]
        assert [f.result() for f in futures] == list(range(tasks))
        return time.perf_counter() - start

    overhead()  # warm-up: connections, worker imports of prefect's task engine
    return overhead() / tasks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", type=int, default=24, help="Architectures scored per measurement.")
    parser.add_argument("--proxy", default="nwot", help="Proxy scored (the cost of one evaluation).")
    parser.add_argument("--tasks", type=int, default=40, help="Empty tasks per overhead measurement.")
    parser.add_argument("--skip-ray", action="store_true", help="Leave Ray out of the overhead table.")
    args = parser.parse_args()

    from distributed import LocalCluster
    from prefect import flow
    from prefect.task_runners import ThreadPoolTaskRunner

    from flows.runners_dask import EhnasDaskTaskRunner

    with prefect_settings(home=tempfile.mkdtemp(prefix="ehnas-bench-prefect-")):
        flow(name="start-server")(lambda: None)()
        result: dict = {"archs": args.archs, "proxy": args.proxy}
        warm, measured = sample_archs(4, seed=1), sample_archs(args.archs, seed=0)
        clusters = {}
        for workers in (1, 2):
            clusters[workers] = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0")
            address = clusters[workers].scheduler_address
            evaluations_per_second(address, warm, args.proxy, Path(tempfile.mkdtemp()))
            result[f"evals_per_s_{workers}_workers"] = evaluations_per_second(address, measured, args.proxy, Path(tempfile.mkdtemp()))
        result["ratio_2_over_1_workers"] = result["evals_per_s_2_workers"] / result["evals_per_s_1_workers"]
        clusters[1].close()

        runners = {"thread": ThreadPoolTaskRunner(max_workers=2), "dask": EhnasDaskTaskRunner(address=clusters[2].scheduler_address)}
        if not args.skip_ray:
            from flows.runners_ray import EhnasRayTaskRunner, local_ray

            local_ray(2)
            runners["ray"] = EhnasRayTaskRunner()
        per_task = {name: empty_task_seconds(runner, args.tasks) for name, runner in runners.items()}
        clusters[2].close()
        for name, seconds in per_task.items():
            result[f"seconds_per_task_{name}"] = seconds
            result[f"overhead_ratio_{name}_over_thread"] = seconds / per_task["thread"]
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}, indent=1))


if __name__ == "__main__":
    main()
