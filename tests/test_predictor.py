"""The learned predictor (`nas_lib.predictor`): features, models, curves, state and the fitness adapter."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from nas_lib.bench.search import run_search
from nas_lib.bench.train import COLUMNS, protocol_path
from nas_lib.predictor import MODELS, FeatureBuilder, LearnedPredictor, Observation, PredictorConfig
from nas_lib.predictor.fitness import PredictedFitness
from nas_lib.predictor.table import read_table
from nas_lib.space.sampled import SampledSpace

TABLES = Path(__file__).resolve().parents[1] / "data" / "tables"
E4 = TABLES / "hybrid_mnist14_e4.csv"


@pytest.fixture(scope="module")
def e4():
    return read_table(E4)


@pytest.fixture(scope="module")
def synthetic(e4):
    """120 architectures of the table's space whose score is known: ViT blocks help, Mamba
    blocks hurt, plus a little noise; the curve's first epoch is the score plus noise."""
    rng = np.random.default_rng(0)
    specs = list(dict.fromkeys(e4.space.spread_sample(160, rng)))[:120]
    rows = []
    for spec in specs:
        score = 0.6 + 0.08 * spec.types.count("vit") - 0.06 * spec.types.count("mamba") + rng.normal(0, 0.02)
        rows.append(Observation(spec, {"params": float(rng.uniform(0.05, 0.3))}, (score - 0.3 + rng.normal(0, 0.01), score), score))
    return e4.space, rows


def rho(score: np.ndarray, rows: list[Observation]) -> float:
    return float(stats.spearmanr(score, [r.target for r in rows])[0])


def query(row: Observation, epochs: int = 0) -> Observation:
    return replace(row, curve=tuple(row.curve[:epochs]), target=None)


def test_read_table_gives_observations_and_says_when_test_accuracy_is_missing(e4) -> None:
    assert len(e4.rows) == 30 and len(e4.truth) == 30
    assert e4.truth_column == "val_accuracy" and "test_accuracy" in e4.note
    row = e4.rows[0]
    assert set(row.proxies) == {"params", "flops"} and 0.01 < row.proxies["params"] < 1.0  # millions, as the proxy reports
    assert len(row.curve) == 4 and row.target == pytest.approx(max(row.curve), abs=1e-4)


def test_read_table_keeps_sampled_ok_rows_and_skips_a_torn_line(tmp_path: Path) -> None:
    source = [dict(r) for r in csv.DictReader(E4.open())][:6]
    rows = []
    for i, r in enumerate(source):
        r["test_accuracy"] = str(0.5 + i / 100)
        r["role"] = "reference" if i == 0 else "sample"
        r["state"] = "failed" if i == 1 else r["state"]
        rows.append(r)
    path = tmp_path / "v2.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=[*COLUMNS, "test_accuracy", "role"])
        writer.writeheader()
        writer.writerows(rows)
        fh.write('"sequential:cnn(planes=16')  # a row cut by a kill
    protocol_path(path).write_text(json.dumps({**json.loads(protocol_path(E4).read_text()), "patience": 12}))  # a newer protocol field
    table = read_table(path)
    assert table.truth_column == "test_accuracy" and table.note == ""
    assert table.arch_ids == [r["arch_id"] for r in rows[2:]]
    assert table.truth == pytest.approx([0.52, 0.53, 0.54, 0.55])


def test_features_have_fixed_width_and_nan_for_what_is_unknown(e4) -> None:
    builder = FeatureBuilder(e4.space).fit(e4.rows)
    x = builder.transform([query(e4.rows[0], 2), Observation(e4.rows[1].spec)], epochs=3)
    assert x.shape == (2, len(builder.names(3)))
    names = builder.names(3)
    assert "summary.n_vit" in names and "proxy.params" in names and "curve[3]" in names
    assert not np.isnan(x[0, names.index("curve[2]")]) and np.isnan(x[0, names.index("curve[3]")])
    assert np.isnan(x[1, names.index("proxy.params")]) and np.isnan(x[1, names.index("curve[1]")])
    assert all(np.ptp(builder.codes(e4.rows)[:, j]) > 0 for j in builder.code_columns)  # constant digits dropped


@pytest.mark.parametrize("model", MODELS.names())
def test_every_model_fits_and_predicts_with_missing_curves(e4, model: str) -> None:
    predictor = LearnedPredictor(e4.space, PredictorConfig(model=model)).fit(e4.rows[:20])
    held = e4.rows[20:]
    prediction = predictor.predict([query(r, k % 3) for k, r in enumerate(held)])  # 0, 1 or 2 epochs known
    assert prediction.mean.shape == (10,) and np.isfinite(prediction.mean).all()
    assert np.isfinite(prediction.spread).all() and (prediction.spread >= 0).all()
    assert sorted(predictor._models) == [0, 1, 2]  # one model per known curve length


def test_training_rows_without_curves_are_used(e4) -> None:
    rows = [replace(r, curve=() if i % 2 else r.curve) for i, r in enumerate(e4.rows[:20])]
    score = LearnedPredictor(e4.space).fit(rows).score([query(r, 1) for r in e4.rows[20:]])
    assert np.isfinite(score).all()


def test_too_few_rows_predict_nan_and_unknown_model_lists_the_known(e4) -> None:
    assert np.isnan(LearnedPredictor(e4.space).fit(e4.rows[:2]).score([query(e4.rows[3])])).all()
    with pytest.raises(KeyError, match="gbt"):
        PredictorConfig(model="xgboost")


def test_ranks_better_than_random_where_the_signal_is_known(synthetic) -> None:
    space, rows = synthetic
    train, held = rows[:60], rows[60:]
    learned = rho(LearnedPredictor(space).fit(train).score([query(r) for r in held]), held)
    shuffled = [replace(r, target=t) for r, t in zip(train, np.random.default_rng(1).permutation([r.target for r in train]))]
    blind = rho(LearnedPredictor(space).fit(shuffled).score([query(r) for r in held]), held)
    assert learned > 0.7 and learned > blind + 0.4


def test_a_partial_curve_improves_the_ranking(synthetic) -> None:
    space, rows = synthetic
    train, held = rows[:60], rows[60:]
    predictor = LearnedPredictor(space, PredictorConfig(code=False, summary=False)).fit(train)  # only params + curve
    without = rho(predictor.score([query(r) for r in held]), held)
    with_curve = rho(predictor.score([query(r, 1) for r in held]), held)
    assert with_curve > 0.9 and with_curve > without + 0.3


def test_state_round_trips_through_json(e4) -> None:
    predictor = LearnedPredictor(e4.space, PredictorConfig(model="gbt", proxies=("params",), max_epochs=2, seed=3)).fit(e4.rows[:20])
    queries = [query(r, 3) for r in e4.rows[20:]]
    restored = LearnedPredictor.from_state(e4.space, json.loads(json.dumps(predictor.state_dict())))
    assert restored.config == predictor.config
    np.testing.assert_allclose(restored.score(queries), predictor.score(queries))
    assert sorted(predictor._models) == [2]  # max_epochs caps what a 3-epoch query reads


def test_predicted_fitness_falls_back_then_predicts_and_scores_proxies_once(e4) -> None:
    calls: list[str] = []

    def proxies(spec):
        calls.append(e4.space.to_string(spec))
        return {"params": 0.1}

    fitness = PredictedFitness(LearnedPredictor(e4.space), proxies=proxies, fallback=lambda spec: -1.0)
    rows = e4.rows
    assert fitness(rows[25].spec) == -1.0
    for r in rows[:10]:
        fitness.tell(r.spec, r.target, curve=r.curve)
    assert fitness(rows[0].spec) == rows[0].target  # a trained architecture's fitness is its score
    first = fitness(rows[25].spec)
    assert math.isfinite(first) and first != -1.0
    fitness.observe_curve(rows[25].spec, rows[25].curve[:1])
    assert fitness(rows[25].spec) != first  # the epoch-1 model reads the partial curve
    assert len(calls) == len(set(calls))
    assert np.isnan(PredictedFitness(LearnedPredictor(e4.space)).score([rows[0].spec])).all()  # no rows, no fallback


def test_predicted_fitness_waits_for_min_rows(e4) -> None:
    fitness = PredictedFitness(LearnedPredictor(e4.space), fallback=lambda spec: -1.0, min_rows=8)
    for r in e4.rows[:7]:
        fitness.tell(r.spec, r.target, curve=r.curve)
    assert fitness(e4.rows[20].spec) == -1.0
    fitness.tell(e4.rows[7].spec, e4.rows[7].target, curve=e4.rows[7].curve)
    assert fitness(e4.rows[20].spec) != -1.0


@pytest.mark.parametrize("strategy", ["random", "rea", "ga"])
def test_predicted_fitness_drives_a_search_strategy(e4, strategy: str) -> None:
    """A strategy searches the table's architectures by predicted fitness; its answer is judged
    by the table (the predictor knows 12 trained rows, proxies come from the table)."""
    space = SampledSpace(e4.space, [e4.space.to_string(r.spec) for r in e4.rows])
    proxies = {e4.space.to_string(r.spec): r.proxies for r in e4.rows}
    fitness = PredictedFitness(LearnedPredictor(e4.space), proxies=lambda spec: proxies[e4.space.to_string(spec)])
    for r in e4.rows[:12]:
        fitness.tell(r.spec, r.target, curve=r.curve)
    truth = {e4.space.to_string(r.spec): float(r.target) for r in e4.rows}
    run = run_search(strategy, space, fitness, truth, budget=8, seed=0)
    assert run.queries == 8 and run.answer in truth and math.isfinite(run.answer_metric)


def test_rung_fitness_keeps_the_trained_predicts_the_rest_and_waits_for_min_rows(synthetic) -> None:
    from nas_lib.predictor.rungs import rung_curve, rung_fitness

    space, rows = synthetic
    archs = [space.to_string(r.spec) for r in rows[:40]]
    # the first 30 reached the top rung (budget 3), the last 10 stopped at budget 1; one has no rung at all
    known = {a: {"proxies": dict(r.proxies), "rungs": {"1": r.curve[0], "3": r.target}} for a, r in zip(archs[:30], rows)}
    known |= {a: {"proxies": dict(r.proxies), "rungs": {"1": r.curve[0]}} for a, r in zip(archs[30:39], rows[30:39])}
    known[archs[39]] = {"proxies": {}, "rungs": {}}
    out = rung_fitness(space, known, [1, 3], PredictorConfig(), min_rows=10)
    assert all(out[a] == (r.target, "trained") for a, r in zip(archs[:30], rows))
    assert {out[a][1] for a in archs[30:39]} == {"predicted"}
    assert math.isnan(out[archs[39]][0]) and out[archs[39]][1] == "none"
    predicted = [out[a][0] for a in archs[30:39]]
    assert stats.spearmanr(predicted, [r.target for r in rows[30:39]])[0] > 0.5  # the synthetic signal is strong
    # too few trained: the highest rung's score answers
    early = rung_fitness(space, known, [1, 3], PredictorConfig(), min_rows=31)
    assert all(early[a] == (r.curve[0], "highest rung") for a, r in zip(archs[30:39], rows[30:39]))
    # a Hyperband bracket entering at budget 3 has no epoch-1 score: an empty curve, not a shifted one
    assert rung_curve({"3": 0.5}, [1, 3, 9]) == [] and rung_curve({"1": 0.2, "3": 0.5}, [1, 3, 9]) == [0.2, 0.5]
