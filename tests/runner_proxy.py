"""A test-only proxy for the runner tests: the parameter count, computed slowly and logged.

`slow_params` sleeps before scoring, so a test can kill a Dask worker while evaluations run,
and appends each architecture it scored to the file named by ``EHNAS_TEST_PROXY_LOG``, so the
test can tell whether any architecture was paid for twice. Dask workers load it with
``dask worker --preload tests.runner_proxy``; the flow process imports it.
"""

from __future__ import annotations

import os
import time

from nas_lib.proxies.base import PROXIES, Proxy, ScoringContext, register_proxy
from nas_lib.space.stats import count_parameters

LOG_ENV = "EHNAS_TEST_PROXY_LOG"
SLEEP_ENV = "EHNAS_TEST_PROXY_SLEEP_S"


class SlowParams(Proxy):
    """Trainable parameters / 1e6 after a pause; every score is appended to a log file."""

    name = "slow_params"
    version = "1"
    higher_is_better = True

    def compute(self, ctx: ScoringContext) -> float:
        time.sleep(float(os.environ.get(SLEEP_ENV, "0.5")))
        value = count_parameters(ctx.model()) / 1e6
        log = os.environ.get(LOG_ENV)
        if log:
            with open(log, "a", encoding="utf-8") as out:  # one short append per score: atomic on POSIX
                out.write(f"{ctx.space.arch_id(ctx.spec)} {os.getpid()}\n")
        return value


if SlowParams.name not in PROXIES:
    register_proxy(SlowParams)
