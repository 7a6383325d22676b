"""`ehnas bench train`: the trained ground-truth table (rows as they finish, resume, failures,
device refusal) and the three benches that read it with ``--space hybrid``."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from ehnas.cli import app
from nas_lib.bench.train import (
    COLUMNS,
    TrainProtocol,
    build_space,
    load_table,
    protocol_path,
    read_protocol,
    read_rows,
    stratified_sample,
    train_table,
)
from nas_lib.data.datasets import DatasetError
from nas_lib.space.sampled import SampledSpace

# The pipeline's default space on digits (8x8), one short epoch: a few seconds per architecture.
SET = ["--set", "data.max_items=200", "--set", "training.epochs=1", "--set", "space.max_depth=5"]


def _protocol(**budget: float) -> TrainProtocol:
    from ehnas.commands.bench_train import protocol_from_config

    return TrainProtocol.from_dict({**protocol_from_config(None, SET[1::2]).to_dict(), **budget})


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("table") / "t.csv"
    result = CliRunner().invoke(app, ["bench", "train", "--out", str(out), "--n", "4", *SET])
    assert result.exit_code == 0, result.output
    return out


def test_table_rows_and_protocol(table: Path) -> None:
    frame = pd.read_csv(table)
    assert list(frame.columns) == list(COLUMNS)
    assert len(frame) == 4 and set(frame["state"]) == {"ok"}
    assert frame["depth"].tolist() == [4, 5, 4, 5]  # depth-stratified
    assert (frame["params"] > 0).all() and (frame["flops"] > 0).all()
    assert all(len(json.loads(h)) == 1 for h in frame["history"])  # one epoch, one accuracy
    assert frame["val_accuracy"].between(0, 1).all()
    protocol = read_protocol(table)
    assert protocol.data["kind"] == "digits" and protocol.epochs == 1 and protocol.space["name"] == "hybrid"


def test_rerun_resumes_and_drops_a_torn_line(table: Path, tmp_path: Path) -> None:
    copy = tmp_path / "t.csv"
    copy.write_text(table.read_text())
    protocol_path(copy).write_text(protocol_path(table).read_text())
    with copy.open("a") as fh:
        fh.write('"sequential:cnn(planes=16,str')  # a row cut by a kill
    before = load_table(copy)
    lines: list[str] = []
    archs = stratified_sample(build_space(read_protocol(copy).space), 5, 0)
    rows = train_table(read_protocol(copy), archs, copy, progress=lines.append)
    assert lines[0].startswith("4 rows already") and "1 to train" in lines[0]  # only the fifth is new
    assert len(rows) == 5 and {k: v for k, v in load_table(copy).items() if k in before} == before
    assert [r["arch"] for r in read_rows(copy)][:4] == list(before)


def test_the_same_command_resumes_its_table(table: Path) -> None:
    # the protocol from the config (tuples) is the one saved as JSON (lists)
    before = table.read_text()
    result = CliRunner().invoke(app, ["bench", "train", "--out", str(table), "--n", "4", *SET])
    assert result.exit_code == 0, result.output
    assert table.read_text() == before


def test_another_protocol_is_refused(table: Path) -> None:
    with pytest.raises(ValueError, match="differs in: epochs"):
        train_table(_protocol(epochs=2), [], table)


def test_diverging_training_is_a_failed_row(tmp_path: Path) -> None:
    protocol = _protocol(lr=1e9)
    archs = stratified_sample(build_space(protocol.space), 1, 3)
    rows = train_table(protocol, archs, tmp_path / "bad.csv")
    assert rows[0]["state"] == "failed" and "non-finite" in rows[0]["error"]
    assert load_table(tmp_path / "bad.csv") == {}


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_missing_device_is_refused_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cuda"):
        train_table(_protocol(), ["x"], tmp_path / "t.csv", device="cuda")
    assert not (tmp_path / "t.csv").exists()
    result = CliRunner().invoke(app, ["bench", "train", "--out", str(tmp_path / "t.csv"), "--device", "cuda:0", *SET])
    assert result.exit_code == 2 and "--device" in result.output


def test_sampled_space_moves_stay_in_the_table(table: Path) -> None:
    truth = load_table(table)
    space = SampledSpace(build_space(read_protocol(table).space), list(truth))
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b = space.sample(rng), space.sample(rng)
        for child in (space.mutate(a, rng), space.crossover(a, b, rng), space.project(space.encode(a), rng)):
            assert space.contains(child) and space.to_string(child) in truth
        assert space.mutate(a, rng) != a  # the parent is never its own neighbour


def test_proxies_bench_reads_the_table(table: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.json"
    result = CliRunner().invoke(
        app, ["bench", "proxies", "--space", "hybrid", "--table", str(table), "--proxies", "params,nwot", "--batch-size", "8", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["metric"] == "val_accuracy" and report["n"] == 4
    assert set(report["proxies"]) == {"params", "nwot"} and report["proxies"]["params"]["n"] == 4
    assert "fitted_ensemble" in report


def test_search_bench_reads_the_table(table: Path, tmp_path: Path) -> None:
    out = tmp_path / "s.json"
    args = [
        "bench",
        "search",
        "--space",
        "hybrid",
        "--table",
        str(table),
        "--strategies",
        "random,rea",
        "--budget",
        "3",
        "--seeds",
        "2",
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    truth = load_table(table)
    assert report["optimum"] == max(truth.values())
    assert all(v in truth.values() for s in report["strategies"].values() for v in s["answers"])
    result = CliRunner().invoke(app, args[:-2] + ["--fitness", "proxy:params", "--out", str(out)])
    assert result.exit_code == 0, result.output


def test_pruning_bench_reads_the_table(table: Path, tmp_path: Path) -> None:
    out = tmp_path / "pr.json"
    result = CliRunner().invoke(
        app,
        [
            "bench",
            "pruning",
            "--space",
            "hybrid",
            "--table",
            str(table),
            "--proxy",
            "params",
            "--guard-by",
            "proxy",
            "--offline-samples",
            "10",
            "--k",
            "20",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["measured_by"] == "table" and len(report["layers"]) == 3
    assert all(layer["reference_size"] == 4 for layer in report["layers"])


def test_a_table_without_protocol_is_refused(tmp_path: Path) -> None:
    bare = tmp_path / "bare.csv"
    bare.write_text("arch,val_accuracy\nx,0.5\n")
    result = CliRunner().invoke(app, ["bench", "search", "--space", "hybrid", "--table", str(bare)])
    assert result.exit_code == 2 and "comes from `ehnas bench train`" in re.sub(r"[\s│]+", " ", result.output)


def test_damaged_protocol_and_bad_config_are_usage_errors(table: Path, tmp_path: Path) -> None:
    copy = tmp_path / "t.csv"
    copy.write_text(table.read_text())
    protocol_path(copy).write_text('{"space": {"name": "hyb')  # cut by a full disk
    result = CliRunner().invoke(app, ["bench", "proxies", "--space", "hybrid", "--table", str(copy), "--proxies", "params"])
    assert result.exit_code == 2 and "not a readable training protocol" in re.sub(r"[\s│]+", " ", result.output)
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [kind: idx\n")
    result = CliRunner().invoke(app, ["bench", "train", "--out", str(tmp_path / "x.csv"), "--config", str(bad)])
    assert result.exit_code == 2 and not (tmp_path / "x.csv").exists()
    result = CliRunner().invoke(app, ["bench", "train", "--out", str(tmp_path / "x.csv"), "--set", "training.epochs=zero"])
    assert result.exit_code == 2 and "epochs" in result.output


def _npz_with_test_split(path: Path) -> Path:
    """A tiny CIFAR-like npz whose labels a network can learn (class = brightest channel)."""
    rng = np.random.default_rng(0)
    y = np.arange(150) % 3
    x = rng.integers(0, 60, size=(150, 8, 8, 3)).astype(np.uint8)
    x[np.arange(150), :, :, y] += 150
    split = np.array(["train"] * 120 + ["test"] * 30)
    np.savez(path, x=x, y=y.astype(np.uint8), split=split)
    return path


def test_learning_curves_test_accuracy_references_and_floor(tmp_path: Path) -> None:
    data = _npz_with_test_split(tmp_path / "d.npz")
    out = tmp_path / "v2.csv"
    space = build_space(_protocol().space)
    reference = space.to_string(space.sample(np.random.default_rng(5), depth=4))
    args = ["bench", "train", "--out", str(out), "--n", "2", "--set", "training.epochs=3", "--set", "space.max_depth=5"]
    args += ["--set", "data.kind=cifar10_npz", "--set", f"data.path={data}", "--patience", "3", "--reference", reference]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out)
    assert frame["role"].tolist() == ["reference", "sample", "sample"]  # the reference first
    assert frame.loc[0, "arch"] == reference
    assert all(len(json.loads(h)) == 3 for h in frame["history"])  # patience = epochs: whole curves
    assert frame["test_accuracy"].between(0, 1).all()
    assert reference not in load_table(out) and len(load_table(out)) == 2
    floor = json.loads((tmp_path / "v2.csv.floor.json").read_text())
    assert set(floor) == {"method", "val_accuracy", "test_accuracy"} and floor["test_accuracy"] > 0.9  # a learnable toy


def test_a_bad_reference_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["bench", "train", "--out", str(tmp_path / "t.csv"), "--reference", "cnn(nonsense)", *SET])
    assert result.exit_code == 2 and "--reference" in result.output


def test_a_table_written_before_patience_existed_still_resumes(table: Path, tmp_path: Path) -> None:
    saved = json.loads(protocol_path(table).read_text())
    old = tmp_path / "old.csv"
    old.write_text(table.read_text())
    protocol_path(old).write_text(json.dumps({k: v for k, v in saved.items() if k != "patience"}))
    rows = train_table(read_protocol(old), [], old)
    assert len(rows) == 4


def test_a_dataset_error_is_said_before_any_worker_starts(tmp_path: Path) -> None:
    data = _npz_with_test_split(tmp_path / "d.npz")
    with np.load(data) as arrays:
        codes = {key: arrays[key] for key in ("x", "y")}
    np.savez(data, **codes, split=np.array([0] * 120 + [1] * 30))  # integer codes instead of train/test
    args = ["bench", "train", "--out", str(tmp_path / "t.csv"), "--n", "2", "--workers", "2", *SET]
    result = CliRunner().invoke(app, [*args, "--set", "data.kind=cifar10_npz", "--set", f"data.path={data}"])
    text = re.sub(r"[\s│╭╮╰╯─]+", " ", result.output)
    assert result.exit_code == 2, result.output
    assert "unknown split value(s) ['0', '1']; use train, val or test" in text and "BrokenProcessPool" not in text
    assert not (tmp_path / "t.csv").exists() or read_rows(tmp_path / "t.csv") == []
    protocol = TrainProtocol.from_dict({**_protocol().to_dict(), "data": {"kind": "cifar10_npz", "path": str(data)}})
    with pytest.raises(DatasetError, match=r"unknown split value"):  # the library checks in the parent too (no floor needed)
        train_table(protocol, ["x"], tmp_path / "u.csv", workers=2)


def test_a_worker_that_cannot_start_says_why(tmp_path: Path) -> None:
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from nas_lib.bench.train import WorkerFailed, _init_worker, _result, _train_in_worker

    protocol = {**_protocol().to_dict(), "data": {"kind": "cifar10_npz", "path": str(tmp_path / "gone.npz")}}
    with ProcessPoolExecutor(1, mp_context=get_context("spawn"), initializer=_init_worker, initargs=(protocol, "cpu", 1)) as pool:
        with pytest.raises(WorkerFailed, match=r"worker could not start: .*gone\.npz"):
            _result(pool.submit(_train_in_worker, "x"))
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:  # a worker killed mid-task
        with pytest.raises(WorkerFailed, match="a worker process ended abruptly"):
            _result(pool.submit(os._exit, 9))
