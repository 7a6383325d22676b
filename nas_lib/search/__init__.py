"""Search strategies behind one ask/tell interface (`Strategy`), registered by name.

`make_strategy(name, space, seed, **options)` builds only the chosen one. Every strategy of
`STRATEGIES` runs on any `SearchSpace` (hybrid, NB201). The one-shot strategies (a supernet
trained on images, `nas_lib.oneshot.strategies`) sit in a registry of their own, imported only
when a name is not in `STRATEGIES`; every function here looks a name up in both.
"""

from __future__ import annotations

from typing import Any

from nas_lib.search import ednag, ga, llm_ranker, nsga2, pnas, random_search, rea, reinforce, surrogate  # noqa: F401  (modules register themselves)
from nas_lib.search.base import Spec, Strategy
from nas_lib.search.registry import STRATEGIES
from nas_lib.space.base import SearchSpace


def strategy_class(name: str) -> type[Strategy]:
    """The ask/tell strategy `name` from `STRATEGIES` or the one-shot `ONESHOT_STRATEGIES`
    (KeyError listing both)."""
    if name in STRATEGIES:
        return STRATEGIES.get(name)
    from nas_lib.oneshot.strategies import ONESHOT_STRATEGIES  # torch-heavy; imported when asked for

    if name in ONESHOT_STRATEGIES:
        return ONESHOT_STRATEGIES.get(name)
    raise KeyError(f"unknown search strategy {name!r}; known: {', '.join(STRATEGIES.names())}; one-shot: {', '.join(ONESHOT_STRATEGIES.names())}")


def strategy_names() -> list[str]:
    """Every registered strategy name: `STRATEGIES`' and the one-shot ones."""
    from nas_lib.oneshot.strategies import ONESHOT_STRATEGIES

    return [*STRATEGIES.names(), *ONESHOT_STRATEGIES.names()]


def make_strategy(name: str, space: SearchSpace, seed: int = 0, **options: Any) -> Strategy:
    """Builds the registered strategy `name` on `space` (KeyError listing the known names)."""
    return strategy_class(name)(space, seed=seed, **options)


def strategy_options(name: str) -> dict[str, Any]:
    """The options strategy `name` takes, with their defaults."""
    import dataclasses

    config = strategy_class(name).Config
    return {f.name: (f.default if f.default is not dataclasses.MISSING else None) for f in dataclasses.fields(config)}


def check_options(name: str, options: dict[str, Any]) -> None:
    """Raises ValueError when `options` holds a key strategy `name` does not take (the message
    lists the valid ones) or a value its Config rejects."""
    valid = strategy_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"strategy {name!r} has no option(s) {unknown}; valid: {', '.join(sorted(valid)) or '(none)'}")
    try:
        strategy_class(name).Config(**options)
    except (TypeError, ValueError) as err:
        raise ValueError(f"strategy {name!r}: {err}") from None


def fitted_options(name: str, options: dict[str, Any], initial: int) -> dict[str, Any]:
    """`options` with the strategy's warm-up lowered to the `initial` evaluations the pipeline
    already gives it, unless the options set it (a larger default would keep the strategy
    sampling uniformly, i.e. asking what random search asks, through a short budget)."""
    field = strategy_class(name).warmup_option
    if field is None or field in options:
        return dict(options)
    default = strategy_options(name)[field]
    return {**options, field: min(int(default), max(int(initial), 2))} if isinstance(default, int) else dict(options)


def warmup_note(name: str, options: dict[str, Any], budget: int) -> str | None:
    """A sentence when the warm-up of strategy `name` under `options` uses up `budget`
    evaluations or more (it then never leaves uniform sampling), else None."""
    field = strategy_class(name).warmup_option
    warmup = {**strategy_options(name), **options}.get(field) if field else None
    if isinstance(warmup, int) and warmup >= budget:
        return (
            f"strategy {name!r} samples uniformly until {warmup} architectures are evaluated ({field}), but the budget is "
            f"{budget}: it behaves as random search; lower search.options.{field} or raise search.generations"
        )
    return None


__all__ = [
    "STRATEGIES",
    "Spec",
    "Strategy",
    "check_options",
    "fitted_options",
    "make_strategy",
    "strategy_class",
    "strategy_names",
    "strategy_options",
    "warmup_note",
]
