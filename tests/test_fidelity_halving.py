"""The successive-halving planner: promotion, failures, resume and Hyperband brackets."""

from __future__ import annotations

import json
import math

import pytest

from nas_lib.fidelity import HalvingConfig, SuccessiveHalving, hyperband


def run_bracket(sh: SuccessiveHalving, score) -> list[tuple[int, list[str]]]:  # noqa: ANN001
    """Drives a bracket to the end with `score(arch, budget)`; returns the rungs asked."""
    asked = []
    while (step := sh.ask()) is not None:
        budget, archs = step
        asked.append((budget, archs))
        sh.tell(budget, {a: score(a, budget) for a in archs})
    return asked


def by_index(arch: str, budget: int) -> float:
    return float(int(arch[1:])) + 0.01 * budget


def test_nine_candidates_go_through_1_3_9() -> None:
    sh = SuccessiveHalving([f"a{i}" for i in range(9)], HalvingConfig())
    rungs = run_bracket(sh, by_index)
    assert rungs == [(1, [f"a{i}" for i in range(9)]), (3, ["a8", "a7", "a6"]), (9, ["a8"])]
    assert sh.best() == ("a8", 8.09)
    assert sh.finished() and sh.ask() is None


def test_ask_is_idempotent_until_told() -> None:
    sh = SuccessiveHalving(["x", "y", "x"], HalvingConfig(budgets=(2, 4), eta=2))
    assert sh.candidates == ["x", "y"]
    assert sh.ask() == sh.ask() == (2, ["x", "y"])


def test_failures_are_never_promoted() -> None:
    sh = SuccessiveHalving(["a", "b", "c", "d"], HalvingConfig(budgets=(1, 2), eta=2))
    sh.tell(1, {"a": math.nan, "b": 0.1, "c": math.nan, "d": 0.2})
    assert sh.ask() == (2, ["d", "b"])
    sh.tell(2, {"d": math.nan, "b": 0.3})
    assert sh.best() == ("b", 0.3)


def test_all_failed_finishes_the_bracket() -> None:
    sh = SuccessiveHalving(["a", "b"], HalvingConfig(budgets=(1, 3), eta=2))
    sh.tell(1, {"a": math.nan, "b": math.nan})
    assert sh.ask() is None
    with pytest.raises(RuntimeError):
        sh.best()


def test_best_falls_back_to_a_lower_rung_when_the_top_rung_failed() -> None:
    sh = SuccessiveHalving(["a", "b", "c"], HalvingConfig(budgets=(1, 3), eta=3))
    sh.tell(1, {"a": 0.5, "b": 0.7, "c": 0.1})
    sh.tell(3, {"b": math.nan})
    assert sh.best() == ("b", 0.7)
    assert sh.highest_scores()["b"] != sh.highest_scores()["b"]  # NaN at its highest rung


def test_tell_checks_budget_and_architectures() -> None:
    sh = SuccessiveHalving(["a", "b"], HalvingConfig(budgets=(1, 3), eta=2))
    with pytest.raises(ValueError, match="budget 3"):
        sh.tell(3, {"a": 1.0, "b": 2.0})
    with pytest.raises(ValueError, match="missing"):
        sh.tell(1, {"a": 1.0})
    with pytest.raises(ValueError, match="unexpected"):
        sh.tell(1, {"a": 1.0, "b": 2.0, "z": 0.0})
    sh.tell(1, {"a": 1.0, "b": 2.0})
    sh.tell(3, {"b": 2.5})
    with pytest.raises(ValueError, match="finished"):
        sh.tell(3, {"b": 2.5})


def test_ties_keep_candidate_order() -> None:
    sh = SuccessiveHalving(["p", "q", "r", "s"], HalvingConfig(budgets=(1, 2), eta=2))
    sh.tell(1, dict.fromkeys(["p", "q", "r", "s"], 0.5))
    assert sh.ask() == (2, ["p", "q"])


def test_state_round_trips_through_json_mid_bracket() -> None:
    archs = [f"a{i}" for i in range(9)]
    straight = SuccessiveHalving(archs, HalvingConfig())
    expected = run_bracket(straight, by_index)
    first = SuccessiveHalving(archs, HalvingConfig())
    budget, batch = first.ask()  # type: ignore[misc]
    scores = {a: by_index(a, budget) for a in batch}
    scores["a0"] = math.nan
    first.tell(budget, scores)
    resumed = SuccessiveHalving([], HalvingConfig(budgets=(5,), eta=2))
    resumed.load_state_dict(json.loads(json.dumps(first.state_dict())))
    assert resumed.config == HalvingConfig()
    assert math.isnan(resumed.scores[0]["a0"])
    assert [(budget, batch)] + run_bracket(resumed, by_index) == expected
    assert resumed.best() == straight.best()


@pytest.mark.parametrize("bad", [{"budgets": ()}, {"budgets": (3, 3)}, {"budgets": (0, 1)}, {"eta": 1}])
def test_config_rejects_bad_rungs(bad: dict) -> None:
    with pytest.raises(ValueError):
        HalvingConfig(**bad)


def test_empty_bracket_is_finished() -> None:
    sh = SuccessiveHalving([], HalvingConfig())
    assert sh.ask() is None


def test_hyperband_brackets_for_9_epochs() -> None:
    brackets = hyperband(9, eta=3)
    assert brackets == [
        (9, HalvingConfig(budgets=(1, 3, 9), eta=3)),
        (5, HalvingConfig(budgets=(3, 9), eta=3)),
        (3, HalvingConfig(budgets=(9,), eta=3)),
    ]


def test_hyperband_rounds_budgets_and_respects_min_budget() -> None:
    brackets = hyperband(12, eta=3, min_budget=2)
    assert [cfg.budgets for _, cfg in brackets] == [(4, 12), (12,)]
    assert all(cfg.budgets[-1] == 12 and cfg.budgets[0] >= 2 for _, cfg in brackets)
    assert hyperband(1) == [(1, HalvingConfig(budgets=(1,), eta=3))]
    with pytest.raises(ValueError):
        hyperband(2, min_budget=3)


def test_plan_runs_hyperband_brackets_round_by_round() -> None:
    from nas_lib.fidelity.plan import FidelityPlan, FidelitySpec, deal

    assert deal(10, [9, 5, 3]) == [5, 3, 2] and deal(3, [9, 5, 3]) == [2, 1, 0]
    plan = FidelityPlan([f"a{i}" for i in range(10)], FidelitySpec(kind="hyperband", budgets=(1, 9), eta=3))
    assert [b.config.budgets for b in plan.brackets] == [(1, 3, 9), (3, 9), (9,)]
    rounds = []
    while work := plan.ask():
        rounds.append(work)
        plan.tell({(a, b): by_index(a, b) for a, b in work})
    assert rounds[0] == [*((f"a{i}", 1) for i in range(5)), ("a5", 3), ("a6", 3), ("a7", 3), ("a8", 9), ("a9", 9)]
    assert plan.highest()["a9"] == (9, by_index("a9", 9)) and plan.highest()["a0"] == (1, by_index("a0", 1))
    assert plan.highest()["a4"] == (9, by_index("a4", 9))  # the best of bracket 0 reaches the top rung


def test_spec_protocol_follows_the_schedule() -> None:
    from nas_lib.fidelity.plan import FidelitySpec, rung_key
    from nas_lib.fidelity.training import RungProtocol

    base = RungProtocol(horizon=1, seed=4)
    long, short = FidelitySpec(budgets=(1, 3)), FidelitySpec(budgets=(1, 3), schedule="short")
    assert long.protocol(base, 1).horizon == 3 and short.protocol(base, 1).horizon == 1
    assert rung_key("id", "fp", long.protocol(base, 1), 1) != rung_key("id", "fp", short.protocol(base, 1), 1)
    assert rung_key("id", "fp", long.protocol(base, 1), 1)[2:] == ("train@1", long.protocol(base, 1).version(), 4)
    with pytest.raises(ValueError, match="schedule"):
        FidelitySpec(schedule="medium")
    with pytest.raises(ValueError, match="kind"):
        FidelitySpec(kind="none")
