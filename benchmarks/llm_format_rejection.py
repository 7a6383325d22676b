"""Cost of a server that rejects json_schema with a 500 (llama-cpp-python) for the three pruning
layers on the hybrid space, with the client's format detection against the pre-issue-11 rule
(only 400/422 degrade the mode; a 500 is a transient fault, retried with backoff), in one run.

Prints requests the server saw, layers that fell back and wall seconds for each, and the
ratios. Default LLMSettings (real backoff: 0.5 s doubling, 4 transport retries).

    .venv/bin/python benchmarks/llm_format_rejection.py
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

from nas_lib.knowledge import load_knowledge
from nas_lib.llm import LLMSettings, protocol
from nas_lib.pruning import MeasureConfig, run_all_layers
from nas_lib.space import HybridSpace
from tests.fake_llm import FakeLLM

NO_CUT = {"keep": [], "rationale": "no cut"}


@contextmanager
def old_rule() -> Iterator[None]:
    """The format rule before issue 11: a rejection only when the status is 400 or 422."""
    current = protocol.is_format_rejection
    protocol.is_format_rejection = lambda exc, mode: mode != "text" and exc.status_code in (400, 422)
    try:
        yield
    finally:
        protocol.is_format_rejection = current


def prune_once() -> tuple[int, int, float]:
    """(requests, layers that fell back, seconds) of one run_all_layers against the 500 server."""
    with FakeLLM() as llm, tempfile.TemporaryDirectory() as cache:
        llm.reject_json_schema = 500
        llm.default = NO_CUT
        settings = LLMSettings(base_url=llm.url, api_key="bench-key-0123456789", model=llm.model, cache_dir=cache)
        start = time.perf_counter()
        outcomes = run_all_layers(HybridSpace(), load_knowledge(None), provider="openai", settings=settings, measure=MeasureConfig(k=20))
        seconds = time.perf_counter() - start
        return len(llm.requests), sum(bool(o.record["fallback"]) for o in outcomes), seconds


def main() -> None:
    logging.getLogger("nas_lib.llm").setLevel(logging.ERROR)  # the old rule logs every 500 it gives up on
    with old_rule():
        base = prune_once()
    new = prune_once()
    for label, (requests, fallbacks, seconds) in (("500 retried (old rule)", base), ("500 read as a format rejection", new)):
        print(f"{label:32s} requests {requests:3d}  layers fallen back {fallbacks}/3  {seconds:6.2f} s")
    print(f"ratio old/new: requests {base[0] / new[0]:.1f}x, seconds {base[2] / new[2]:.1f}x")


if __name__ == "__main__":
    main()
