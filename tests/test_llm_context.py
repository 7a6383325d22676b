"""Prompts that fit the server's context (issue 21): the context size is read where the server
reports it (vLLM's /v1/models, llama.cpp's /props), learned from llama-cpp-python's rejection of
an over-long prompt, or set by EHNAS_LLM_CONTEXT_TOKENS; the knowledge is shortened to fit."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from nas_lib.llm import LLMClient, LLMSettings
from nas_lib.llm.client import forget_gone_servers
from nas_lib.llm.context import CHARS_PER_TOKEN, context_from_error, read_context_tokens
from nas_lib.pruning import LAYER_REGISTRY, MeasureConfig, run_layer
from nas_lib.space import NB201Space
from tests.fake_llm import FakeLLM, Reply

KEEP = {"keep": [{"group": "edge3", "options": ["skip_connect"]}]}
MEASURE = MeasureConfig(score_fn=lambda spec: float(spec.ops[3] == "skip_connect"), offline_samples=50)


class LongKnowledge:
    """A knowledge base far longer than a small context."""

    def __init__(self, chars: int = 20_000) -> None:
        self._text, self.rules = ("Skip connections on the input-output edge help. " * (chars // 48))[:chars], {}

    def text(self, max_chars: int | None = None) -> str:
        return self._text[:max_chars] if max_chars is not None else self._text


@pytest.fixture(autouse=True)
def _fresh_endpoints() -> Iterator[None]:
    forget_gone_servers()
    yield
    forget_gone_servers()


def prompt_chars(body: dict) -> int:
    return sum(len(m["content"]) for m in body["messages"])


def prune_macro(llm: FakeLLM, knowledge_chars: int = 20_000, **settings: object):
    return run_layer(
        "macro", NB201Space(), LongKnowledge(knowledge_chars), provider="openai", settings=llm.settings(None, **settings), measure=MEASURE
    )


def test_the_context_is_read_from_vllm_models_and_llama_cpp_props() -> None:
    with FakeLLM() as llm:
        assert read_context_tokens(llm.url, llm.model) is None  # neither route: unknown
        llm.get_routes["/props"] = {"default_generation_settings": {"n_ctx": 8192}}
        assert read_context_tokens(llm.url, llm.model) == 8192
        llm.get_routes["/v1/models"] = {"data": [{"id": "other"}, {"id": llm.model, "max_model_len": 3000}]}
        assert read_context_tokens(llm.url, llm.model) == 3000
    assert context_from_error("Requested tokens (3100) exceed context window of 2048") == 2048
    assert context_from_error("This model's maximum context length is 4097 tokens") == 4097


def test_a_reported_context_shortens_the_knowledge_to_fit() -> None:
    with FakeLLM() as llm:
        llm.get_routes["/v1/models"] = {"data": [{"id": llm.model, "max_model_len": 2048}]}
        llm.default = KEEP
        out = prune_macro(llm, max_tokens=512)
    assert not out.record["fallback"] and len(llm.requests) == 1
    assert prompt_chars(llm.requests[0].body) <= (2048 - 512) * CHARS_PER_TOKEN < 20_000
    assert "Skip connections" in llm.requests[0].body["messages"][1]["content"]  # shortened, not dropped


def test_llama_cpp_python_names_its_context_in_the_rejection_and_the_prompt_is_refitted() -> None:
    def overflow(body: dict) -> object:
        if prompt_chars(body) > 6000:
            message = f"Requested tokens ({prompt_chars(body) // 3}) exceed context window of 2048"
            return Reply(kind="status", status=400, body={"error": {"message": message, "type": "invalid_request_error"}})
        return None

    with FakeLLM() as llm:
        llm.intercept, llm.default = overflow, KEEP
        out = prune_macro(llm, knowledge_chars=10_000, max_tokens=256)  # not long enough to be summarised
        sizes = [prompt_chars(r.body) for r in llm.requests]
    assert not out.record["fallback"] and len(sizes) == 2 and sizes[0] > 10_000 > 6000 >= sizes[1]
    attempts = json.loads(out.record["llm_attempts_json"])
    assert [a["outcome"] for a in attempts] == ["http_error", "ok"] and "context window of 2048" in attempts[0]["errors"][0]


def test_the_context_from_the_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EHNAS_LLM_CONTEXT_TOKENS", "1500")
    assert LLMSettings.from_env().context_tokens == 1500
    with FakeLLM() as llm:
        llm.get_routes["/props"] = {"default_generation_settings": {"n_ctx": 8192}}
        assert LLMClient(llm.settings(context_tokens=1500)).context_tokens() == 1500
        assert LLMClient(llm.settings()).context_tokens() == 8192
    assert "macro" in LAYER_REGISTRY.names()
