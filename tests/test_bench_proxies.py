"""The proxy benchmark: metrics on synthetic scores, ensemble fitting, and the CLI end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from nas_lib.bench import proxies as bench
from nas_lib.space import get_space

CELLS = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "|nor_conv_1x1~0|+|skip_connect~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_1x1~2|",
    "|avg_pool_3x3~0|+|none~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
]


def _frame(values: dict[str, dict[str, float]]) -> pd.DataFrame:
    rows = []
    for proxy, per_arch in values.items():
        for arch, v in per_arch.items():
            ok = math.isfinite(v)
            rows.append(
                {
                    "arch": arch,
                    "arch_id": arch[:12],
                    "proxy": proxy,
                    "version": "1",
                    "value": v,
                    "seconds": 0.5,
                    "state": "ok" if ok else "failed",
                    "error": None if ok else "boom",
                    "seed": 0,
                }
            )
    return pd.DataFrame(rows)


def test_top_recall() -> None:
    truth = np.arange(20.0)
    assert bench.top_recall(truth, truth) == 1.0
    assert bench.top_recall(-truth, truth) == 0.0


def test_fidelity_ranks_failures_last_and_counts_them() -> None:
    archs = [f"a{i}" for i in range(10)]
    truth = pd.Series(np.arange(10.0), index=archs)
    scores = {a: float(i) for i, a in enumerate(archs)}
    scores["a0"] = math.nan  # the worst cell failed: ranking is unchanged
    out = bench.fidelity(_frame({"nwot": scores, "latency": {a: -float(i) for i, a in enumerate(archs)}}), truth, ["nwot", "latency"])
    assert out["nwot"]["spearman"] == pytest.approx(1.0) and out["nwot"]["failed"] == 1
    assert out["latency"]["spearman"] == pytest.approx(1.0)  # lower is better: oriented before ranking
    assert out["nwot"]["n"] == 10 and out["nwot"]["median_s_per_arch"] == 0.5


def test_agreement_with_reference() -> None:
    archs = [f"a{i}" for i in range(8)]
    ours = _frame({"snip": {a: float(i) for i, a in enumerate(archs)}})
    ref = pd.DataFrame({"arch": archs, "snip": [10.0 * i for i in range(8)], "other": 1.0})
    out = bench.agreement(ours, ref, ["snip", "nwot"])
    assert out == {"snip": {"spearman": 1.0, "n": 8}}


def test_fit_ensemble_prefers_the_informative_member() -> None:
    rng = np.random.default_rng(0)
    archs = [f"a{i}" for i in range(200)]
    truth = pd.Series(rng.normal(size=200), index=archs)
    good = {a: float(t + 0.1 * rng.normal()) for a, t in zip(archs, truth)}
    noise = {a: float(rng.normal()) for a in archs}
    fit = bench.fit_ensemble(_frame({"nwot": good, "synflow": noise}), truth, ["nwot", "synflow"], trials=200)
    assert fit["weights"].get("nwot", 0) > fit["weights"].get("synflow", 0)
    assert fit["holdout_spearman"] > 0.9 and fit["n_fit"] + fit["n_holdout"] == 200


def test_sample_archs_is_seeded_and_uniform_without_replacement() -> None:
    pool = [str(i) for i in range(100)]
    a, b = bench.sample_archs(pool, 10, 1), bench.sample_archs(pool, 10, 1)
    assert a == b and len(set(a)) == 10 and a != bench.sample_archs(pool, 10, 2)
    assert bench.sample_archs(pool, 500, 0) == pool


def test_resolve_proxies() -> None:
    assert "nwot" in bench.resolve_proxies("all")
    assert bench.resolve_proxies("nwot, params") == ["nwot", "params"]
    with pytest.raises(KeyError):
        bench.resolve_proxies("nwot,bogus")


@pytest.fixture
def tiny_inputs(tmp_path):  # noqa: ANN001, ANN201
    rng = np.random.default_rng(0)
    images = tmp_path / "imgs.npz"
    np.savez(images, x=rng.integers(0, 256, size=(16, 8, 8, 3), dtype=np.uint8), y=rng.integers(0, 10, size=16).astype(np.uint8))
    table = tmp_path / "table.csv"
    pd.DataFrame({"arch": CELLS, "acc": [94.0, 88.0, 80.0]}).to_csv(table, index=False)
    reference = tmp_path / "ref.csv"
    pd.DataFrame({"arch": CELLS, "params": [1.0, 0.5, 0.2]}).to_csv(reference, index=False)
    return tmp_path, images, table, reference


def test_cli_nb201_with_reference_and_resume(tiny_inputs) -> None:  # noqa: ANN001
    from ehnas.cli import app

    tmp, images, table, reference = tiny_inputs
    out, ckpt = tmp / "result.json", tmp / "scores.parquet"
    args = [
        "bench",
        "proxies",
        "--space",
        "nb201",
        "--table",
        str(table),
        "--metric",
        "acc",
        "--images",
        str(images),
        "--reference",
        str(reference),
        "--sample",
        "3",
        "--batch-size",
        "4",
        "--proxies",
        "params,synflow",
        "--checkpoint",
        str(ckpt),
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["space"] == "nb201" and data["n"] == 3 and data["metric"] == "acc"
    assert set(data["proxies"]) == {"params", "synflow"}
    assert {"spearman", "kendall", "top10pct_recall", "median_s_per_arch", "failed"} <= set(data["proxies"]["params"])
    assert data["reference"]["params"]["spearman"] == pytest.approx(1.0)
    assert "spearman" in result.output
    again = CliRunner().invoke(app, args + ["--max-seconds", "0"])  # everything comes from the checkpoint
    assert again.exit_code == 0 and json.loads(out.read_text())["n"] == 3


def test_cli_shards_score_disjoint_cells_and_merge_into_one_report(tiny_inputs) -> None:  # noqa: ANN001
    from ehnas.cli import app

    tmp, images, table, _ref = tiny_inputs
    base = [
        "bench",
        "proxies",
        "--space",
        "nb201",
        "--table",
        str(table),
        "--metric",
        "acc",
        "--images",
        str(images),
        "--sample",
        "3",
        "--batch-size",
        "4",
        "--proxies",
        "params",
    ]
    shards = []
    for i in range(2):
        ckpt, out = tmp / f"s{i}.parquet", tmp / f"s{i}.json"
        result = CliRunner().invoke(app, base + ["--shard", f"{i}/2", "--checkpoint", str(ckpt), "--out", str(out)])
        assert result.exit_code == 0, result.output
        shards.append((ckpt, json.loads(out.read_text())))
    assert [d["n"] for _c, d in shards] == [2, 1] and shards[0][1]["shard"] == "0/2"
    out = tmp / "merged.json"
    merged = CliRunner().invoke(
        app,
        base
        + [
            "--merge",
            str(shards[0][0]),
            "--merge",
            str(shards[1][0]),
            "--checkpoint",
            str(tmp / "all.parquet"),
            "--max-seconds",
            "0",
            "--out",
            str(out),
        ],
    )
    assert merged.exit_code == 0, merged.output
    assert json.loads(out.read_text())["n"] == 3  # nothing scored again (--max-seconds 0): all from the shards
    bad = CliRunner().invoke(app, base + ["--shard", "2/2", "--out", str(tmp / "bad.json")])
    assert bad.exit_code == 2 and "0 <= i < n" in bad.output


def test_shard_splits_a_sample_without_overlap() -> None:
    items = list(range(7))
    parts = [bench.shard(items, f"{i}/3") for i in range(3)]
    assert sorted(sum(parts, [])) == items and bench.shard(items, None) == items
    with pytest.raises(ValueError, match="i/n"):
        bench.shard(items, "half")


def test_cli_hybrid_reports_failures_and_seconds(tiny_inputs) -> None:  # noqa: ANN001
    from ehnas.cli import app

    tmp, images, _table, _ref = tiny_inputs
    out = tmp / "hybrid.json"
    result = CliRunner().invoke(
        app,
        [
            "bench",
            "proxies",
            "--space",
            "hybrid",
            "--images",
            str(images),
            "--sample",
            "1",
            "--batch-size",
            "4",
            "--proxies",
            "params,nwot",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["space"] == "hybrid" and data["proxies"]["nwot"]["failed"] == 0 and data["proxies"]["nwot"]["n"] == 1


def test_cli_rejects_unknown_proxy(tiny_inputs) -> None:  # noqa: ANN001
    from ehnas.cli import app

    tmp, images, table, _ref = tiny_inputs
    result = CliRunner().invoke(app, ["bench", "proxies", "--table", str(table), "--images", str(images), "--proxies", "bogus"])
    assert result.exit_code != 0


def test_cli_rejects_a_device_before_scoring(tiny_inputs, tmp_path) -> None:  # noqa: ANN001
    from ehnas.cli import app

    _tmp, images, table, _ref = tiny_inputs
    out = tmp_path / "r.json"
    result = CliRunner().invoke(app, ["bench", "proxies", "--table", str(table), "--images", str(images), "--device", "gpu", "--out", str(out)])
    assert result.exit_code == 2 and "unknown device 'gpu'" in result.output and not out.exists()


def test_hybrid_sampler_draws_varied_depths() -> None:
    specs = bench.sample_hybrid(get_space("hybrid"), 6, seed=0)
    assert len({s.depth for s in specs}) > 1


def test_checkpoint_rows_of_an_older_proxy_version_are_not_reported(tmp_path) -> None:  # noqa: ANN001
    import torch

    from nas_lib.artifacts import read_table, write_table

    space = get_space("nb201")
    specs = [space.sample(np.random.default_rng(k)) for k in range(2)]
    batch = (torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 2, 3]))
    ckpt = tmp_path / "scores.parquet"
    frame = bench.score_specs(space, specs, ["params"], batch, seed=0, checkpoint=ckpt)
    stale = read_table(ckpt).to_dict("records")
    stale += [{**row, "version": "0-old", "value": -1.0} for row in stale]  # same cells, older version
    write_table(ckpt, stale, bench.SCORE_SCHEMA)
    again = bench.score_specs(space, specs, ["params"], batch, seed=0, checkpoint=ckpt)
    assert len(again) == len(frame) == 2
    assert sorted(again["value"]) == sorted(frame["value"])


def test_networks_built_ahead_by_a_worker_give_the_same_scores() -> None:
    import torch

    from nas_lib.bench.prefetch import prebuilt_networks

    space = get_space("nb201")
    specs = [space.from_string(c) for c in CELLS]
    batch = (torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 2, 3]))
    names = ["nwot", "synflow", "az_expressivity"]
    inline = bench.score_specs(space, specs, names, batch, seed=3)
    ahead = bench.score_specs(space, specs, names, batch, seed=3, build_workers=1)
    key = ["arch", "proxy"]
    a, b = inline.sort_values(key).reset_index(drop=True), ahead.sort_values(key).reset_index(drop=True)
    assert list(a["arch"]) == list(b["arch"]) and np.array_equal(a["value"].to_numpy(), b["value"].to_numpy())
    got = list(prebuilt_networks(space, specs[:2], batch, seed=3, workers=1, window=1))
    assert [s for s, _m in got] == specs[:2] and all(isinstance(m, torch.nn.Module) for _s, m in got)
    with pytest.raises(ValueError, match="at least one worker"):
        next(prebuilt_networks(space, specs, batch, seed=3, workers=0))
