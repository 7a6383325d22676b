"""A server that dies mid-run (issue 21): reported once as gone, with its URL, and every later
call falls back at once instead of spending transport retries on a closed port. The server is a
real process (tests/fake_llm.py run as a script) killed with SIGKILL."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
from pydantic import BaseModel

from nas_lib.llm import LLMClient, LLMSettings
from nas_lib.llm.client import forget_gone_servers


class Plan(BaseModel):
    depth: int


@pytest.fixture(autouse=True)
def _fresh_endpoints() -> Iterator[None]:
    forget_gone_servers()
    yield
    forget_gone_servers()


def settings(url: str) -> LLMSettings:
    return LLMSettings(base_url=url, api_key="k", model="m", timeout_s=5, backoff_s=0, max_backoff_s=0, use_cache=False)


def ask(client: LLMClient, user: str = "plan"):
    return client.complete_json(system="s", user=user, schema=Plan, name="plan")


def test_a_killed_server_is_reported_once_and_later_calls_fail_at_once(caplog: pytest.LogCaptureFixture) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "tests.fake_llm", '{"depth": 8}'], stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip() if proc.stdout else ""
        waits: list[float] = []
        client = LLMClient(settings(url), sleep=waits.append)
        assert ask(client).ok
    finally:
        proc.kill()
        proc.wait(timeout=10)
    with caplog.at_level(logging.ERROR, logger="nas_lib.llm.client"):
        dead = ask(client, "second layer")
        later = ask(LLMClient(settings(url), sleep=waits.append), "third layer")  # another client, same URL
    assert not dead.ok and dead.fallback_reason.startswith(f"server_gone: {url}") and dead.attempts == 1
    assert not later.ok and later.fallback_reason.startswith(f"server_gone: {url}") and later.attempts == 0
    assert waits == []  # no backoff: no transport retries against the closed port
    gone_logs = [r for r in caplog.records if "server gone" in r.getMessage()]
    assert len(gone_logs) == 1 and url in gone_logs[0].getMessage()


def test_a_server_that_never_answered_gets_the_retries_then_counts_as_gone() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    waits: list[float] = []
    first = ask(LLMClient(settings(url), sleep=waits.append))
    assert not first.ok and first.fallback_reason.startswith("server_gone") and first.attempts == 5 and len(waits) == 4
    second = ask(LLMClient(settings(url), sleep=waits.append))
    assert second.attempts == 0 and second.fallback_reason == first.fallback_reason and len(waits) == 4
    forget_gone_servers()
    assert ask(LLMClient(settings(url), sleep=waits.append)).attempts == 5  # tried again after a restart
