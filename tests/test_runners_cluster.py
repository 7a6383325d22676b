"""The pipeline on real clusters: a Dask scheduler with 2 worker processes on 127.0.0.1 and a
local Ray, both started here, against Prefect's thread runner.

* For the same seed, ``06_evaluations`` and ``07_search`` equal the thread runner's row for row
  (scores, states, fitness; timings excluded).
* A Dask worker killed (SIGKILL) while the population is scored: the run completes on the other
  worker with every evaluation in the store once and no architecture scored twice (a test-only
  proxy, tests/runner_proxy.py, logs every score it computes).
* Tasks on a CUDA device ask for the Dask worker resource ``GPU`` and so land on the worker
  that has it.
* On a cluster at an address the flow passes the device request, and each worker resolves it and
  chooses its torch threads from its own cores and task threads.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest

from nas_lib.artifacts import read_table
from nas_lib.evaluation import EvaluationStore
from tasks.config import PipelineConfig, load_config
from tasks.run_folder import RunFolder
from tests import runner_proxy
from tests.conftest import ROOT

# The killer thread of the killed-worker test must fail the test when it raises.
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")]

OVERRIDES = [
    "run_name=r",
    "space.min_depth=4",
    "space.max_depth=4",
    "population.size=6",
    "evaluation.batch_size=2",
    "data.proxy_batch=16",
    "pruning.layers=[]",
    "search.generations=1",
    "search.per_generation=4",
    "training.top_k=1",
    "training.epochs=1",
    "training.max_batches_per_epoch=1",
    "registry.enabled=false",
]
COMPARED = {
    "06_evaluations": ["arch_id", "arch", "proxy", "value", "state", "error"],
    "07_search": ["generation", "arch_id", "arch", "fitness", "fitness_proxy", "params", "state", "best_so_far"],
}


def _config(root: Path, *extra: str) -> PipelineConfig:
    return load_config(None, [*OVERRIDES, f"runs_root={root}", *extra])


def _scores(run_dir: str, step: str) -> pd.DataFrame:
    return read_table(RunFolder(Path(run_dir)).step_file(step))[COMPARED[step]].reset_index(drop=True)


def _assert_same_scores(run_dir: str, reference: str) -> None:
    for step in COMPARED:
        pd.testing.assert_frame_equal(_scores(run_dir, step), _scores(reference, step), check_exact=True)


@pytest.fixture(scope="module")
def harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture(scope="module")
def thread_run(harness, tmp_path_factory) -> str:
    from flows.pipeline import nas_pipeline

    return nas_pipeline(_config(tmp_path_factory.mktemp("thread")))["run_dir"]


class DaskCluster:
    """``dask scheduler`` and two ``dask worker`` processes (no nanny) on 127.0.0.1 at random
    ports; worker ``a`` has 1 thread, worker ``b`` 2 threads and the resource ``GPU=1``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.scheduler_file = folder / "scheduler.json"
        self.proxy_log = folder / "proxy.log"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), runner_proxy.LOG_ENV: str(self.proxy_log)}
        self.procs: dict[str, subprocess.Popen] = {}
        self._start(
            "scheduler",
            ["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", str(self.scheduler_file)],
            env,
        )
        worker = [
            "distributed.cli.dask_worker",
            "--scheduler-file",
            str(self.scheduler_file),
            "--host",
            "127.0.0.1",
            "--nworkers",
            "1",
            "--no-nanny",
            "--no-dashboard",
            "--preload",
            "tests.runner_proxy",
        ]
        self._start("a", [*worker, "--name", "a", "--nthreads", "1"], env)
        self._start("b", [*worker, "--name", "b", "--nthreads", "2", "--resources", "GPU=1"], env)
        self.client = self._connect()

    def _start(self, name: str, args: list[str], env: dict[str, str]) -> None:
        log = open(self.folder / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
        self.procs[name] = subprocess.Popen([sys.executable, "-m", *args], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)

    def _connect(self):
        import time

        from distributed import Client

        while not self.scheduler_file.exists():  # written once the scheduler listens
            if self.procs["scheduler"].poll() is not None:
                raise RuntimeError((self.folder / "scheduler.log").read_text())
            time.sleep(0.1)
        client = Client(scheduler_file=str(self.scheduler_file), timeout=120)
        client.wait_for_workers(2, timeout=300)
        return client

    @property
    def address(self) -> str:
        return self.client.scheduler.address

    def logged_scores(self) -> list[tuple[str, int]]:
        """(arch_id, worker pid) of every score the test proxy computed."""
        if not self.proxy_log.exists():
            return []
        return [(a, int(p)) for a, p in (line.split() for line in self.proxy_log.read_text().splitlines())]

    def close(self) -> None:
        self.client.close()
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    cluster = DaskCluster(tmp_path_factory.mktemp("dask"))
    yield cluster
    cluster.close()


def test_dask_cluster_gives_the_thread_runner_scores(harness, thread_run, dask_cluster, tmp_path):
    from flows.pipeline import nas_pipeline

    out = nas_pipeline(_config(tmp_path, "execution.runner=dask", f"execution.address={dask_cluster.address}"))
    _assert_same_scores(out["run_dir"], thread_run)
    assert {"06_evaluations", "07_search", "08_training"} <= set(out["ran"])
    run = RunFolder(Path(out["run_dir"]))  # the flow passed device=auto; the workers resolved it
    assert set(read_table(run.step_file("06_evaluations"))["device"]) == {"cpu"}
    assert set(read_table(run.step_file("08_training"))["device"]) == {"cpu"}


def test_local_ray_gives_the_thread_runner_scores(harness, thread_run, tmp_path):
    import ray

    from flows.pipeline import nas_pipeline
    from tasks.context import cluster_threads

    try:
        out = nas_pipeline(_config(tmp_path, "execution.runner=ray", "execution.workers=2"))
        assert ray.is_initialized()  # the run used (and left for later sub-flows) its local Ray
        threads = ray.remote(cluster_threads)  # a Ray task's threads: the CPUs Ray assigned it
        assert ray.get([threads.remote(), threads.options(num_cpus=2).remote()], timeout=120) == [1, 2]
    finally:
        ray.shutdown()
    _assert_same_scores(out["run_dir"], thread_run)


def test_cuda_tasks_go_to_the_gpu_worker(dask_cluster):
    """What `gpu_resources` annotates reaches the real scheduler: only worker b has GPU=1."""
    from distributed import get_worker

    from flows.runners import gpu_resources

    def where() -> str:
        return get_worker().name

    with gpu_resources("dask", "cuda:0", 1.0):
        gpu = [dask_cluster.client.submit(where, pure=False) for _ in range(4)]
    assert {f.result(timeout=120) for f in gpu} == {"b"}


def test_each_worker_chooses_its_device_and_threads(dask_cluster):
    """`on_worker` runs where the task runs: a's one task thread gets every core, b's two share
    them; a configured thread count is kept; ``auto`` resolves on the worker."""
    import torch

    from tasks.context import on_worker, usable_cores

    by_name = {w["name"]: addr for addr, w in dask_cluster.client.scheduler_info()["workers"].items()}
    torch.set_num_threads(1)  # this process (the flow's) says nothing about the workers'

    def chosen(name: str, threads: int | None) -> tuple[str, int]:
        return dask_cluster.client.submit(on_worker, "auto", threads, workers=[by_name[name]], pure=False).result(timeout=120)

    cores = usable_cores()
    assert chosen("a", None) == ("cpu", cores)
    assert chosen("b", None) == ("cpu", max(1, cores // 2))
    assert chosen("b", 3) == ("cpu", 3)


def test_the_flow_asks_for_a_gpu_it_does_not_have(harness, dask_cluster, tmp_path):
    """device=cuda on a flow without CUDA: nothing is refused on the flow's machine; the tasks ask
    for GPU=1, land on worker b, and b finds it has no CUDA (said in the run's error)."""
    from flows.pipeline import nas_pipeline
    from flows.runners_dask import EhnasDaskTaskRunner
    from tasks.context import plan_devices

    cfg = _config(tmp_path, "device=cuda", "execution.runner=dask", f"execution.address={dask_cluster.address}")
    assert plan_devices(cfg.device, cfg.execution) == ["cuda"]
    with EhnasDaskTaskRunner(address=dask_cluster.address) as runner:
        assert runner.declared_gpus() == 1.0  # worker b's GPU=1
    with pytest.raises(Exception, match="CUDA is not available"):
        nas_pipeline(cfg)


def _stored_archs(store: Path) -> set[str]:
    if not store.exists():
        return set()
    con = sqlite3.connect(store, timeout=60)
    try:
        return {row[0] for row in con.execute("SELECT arch_id FROM evals")}
    except sqlite3.OperationalError as err:  # the file exists before its table does
        if "no such table" in str(err):
            return set()
        raise
    finally:
        con.close()


def test_killed_worker_loses_and_repeats_nothing(harness, dask_cluster, tmp_path):
    """Worker a is killed once one of its scores is in the store. Every stored score is reused,
    never recomputed; the only scores that may be computed twice are those of the batch worker a
    was scoring when it died (the flow stores a batch when the batch comes back, and a's single
    thread holds one batch)."""
    from flows.pipeline import nas_pipeline

    cfg = _config(
        tmp_path,
        "execution.runner=dask",
        f"execution.address={dask_cluster.address}",
        "evaluation.proxies=[slow_params]",
        "population.size=8",
        "search.generations=0",
    )
    before = len(dask_cluster.logged_scores())
    victim = dask_cluster.procs["a"]
    at_kill: dict[str, object] = {}
    finished = threading.Event()

    def kill_once_a_has_stored() -> None:
        while not finished.is_set():
            scored = dask_cluster.logged_scores()[before:]
            stored = _stored_archs(cfg.store_path())
            if {a for a, pid in scored if pid == victim.pid} & stored and len(stored) < cfg.population.size:
                victim.send_signal(signal.SIGKILL)
                at_kill.update(stored=stored, logged=len(scored), victim={a for a, pid in scored if pid == victim.pid} - stored)
                return
            finished.wait(0.05)

    killer = threading.Thread(target=kill_once_a_has_stored, daemon=True)
    killer.start()
    try:
        out = nas_pipeline(cfg)
    finally:
        finished.set()
        killer.join()
    assert at_kill and victim.wait(timeout=30) == -signal.SIGKILL

    rows = read_table(RunFolder(Path(out["run_dir"])).step_file("06_evaluations"))
    assert len(rows) == cfg.population.size and set(rows["state"]) == {"ok"}
    scored = [arch for arch, _ in dask_cluster.logged_scores()[before:]]
    after_kill = scored[at_kill["logged"] :]
    assert not set(after_kill) & at_kill["stored"], "a stored score was computed again"
    twice = {a for a in scored if scored.count(a) > 1}
    assert twice <= at_kill["victim"] and len(twice) <= cfg.evaluation.batch_size, f"scored twice: {twice}"
    assert set(scored) == set(rows["arch_id"])
    assert EvaluationStore(cfg.store_path()).count() == cfg.population.size  # nothing lost, no duplicate key
