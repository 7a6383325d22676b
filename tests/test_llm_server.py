"""LLMClient against the behaviours of real OpenAI-compatible servers (issue 11), reproduced by
the scripted 127.0.0.1 server in tests/fake_llm.py: format rejections at any status, prose
around the JSON, truncated answers, extra and missing fields, 500s that are not about the format,
and 200s that are not chat completions."""

from __future__ import annotations

import json
from pathlib import Path

import openai
import pytest
from pydantic import BaseModel, ConfigDict, Field

from nas_lib.llm import LLMClient, LLMSettings
from nas_lib.llm.cache import MODES_FILE
from tests.fake_llm import LLAMA_CPP_FORMAT_ERROR, TEST_KEY, FakeLLM, Reply


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    depth: int = Field(ge=4, le=20)
    early: list[str] = Field(default_factory=list)
    note: str = ""


GOOD = {"depth": 8, "early": ["cnn"]}


def ask(client: LLMClient, user: str = "plan a network"):
    return client.complete_json(system="You design networks.", user=user, schema=Plan, name="plan")


@pytest.mark.parametrize("status", [400, 422, 500])
def test_format_rejection_degrades_at_once_whatever_the_status(status: int) -> None:
    waits: list[float] = []
    with FakeLLM() as llm:
        llm.reject_json_schema = status
        llm.push(GOOD)
        result = ask(LLMClient(llm.settings(), sleep=waits.append))
    assert result.ok and result.mode == "json_object_schema" and waits == []
    assert llm.formats() == ["json_schema", "json_object_schema"]
    assert [(a.mode, a.outcome) for a in result.trace] == [("json_schema", "format_rejected"), ("json_object_schema", "ok")]
    assert str(status) in result.trace[0].errors[0]


def test_llama_cpp_500_is_read_from_its_message_and_the_mode_is_remembered_across_runs(tmp_path: Path) -> None:
    assert "json_object" in LLAMA_CPP_FORMAT_ERROR and "response_format" in LLAMA_CPP_FORMAT_ERROR
    with FakeLLM() as llm:
        llm.reject_json_schema = 500
        llm.default = GOOD
        first = ask(LLMClient(llm.settings(tmp_path)))
        second_run = ask(LLMClient(llm.settings(tmp_path)), user="another layer")  # a new client: a new run
        assert llm.formats() == ["json_schema", "json_object_schema", "json_object_schema"]
        other_model = ask(LLMClient(llm.settings(tmp_path, model="other-model")), user="x")
    assert first.ok and second_run.ok and second_run.attempts == 1 and other_model.ok
    assert llm.formats()[-2:] == ["json_schema", "json_object_schema"]  # learned per (base URL, model)
    learned = json.loads((tmp_path / MODES_FILE).read_text())
    assert learned == {f"{llm.url} fake-model": "json_object_schema", f"{llm.url} other-model": "json_object_schema"}
    assert TEST_KEY not in (tmp_path / MODES_FILE).read_text()


def test_the_sdk_own_retries_would_repeat_a_format_rejection() -> None:
    """Why the client keeps max_retries=0: the SDK retries every 5xx, whatever it says."""
    with FakeLLM() as llm:
        llm.reject_json_schema = 500
        sdk = openai.OpenAI(base_url=llm.url, api_key=TEST_KEY, max_retries=1, timeout=5)
        with pytest.raises(openai.InternalServerError):
            sdk.chat.completions.create(
                model="m",
                messages=[{"role": "user", "content": "x"}],
                response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": {}}},
            )
        sdk_requests = len(llm.requests)
    assert sdk_requests == 2


def test_a_500_that_is_not_about_the_format_stays_a_transient_retry() -> None:
    waits: list[float] = []
    with FakeLLM() as llm:
        llm.push(Reply(kind="status", status=500, body={"error": {"message": "CUDA out of memory", "type": "server_error"}})).push(GOOD)
        result = ask(LLMClient(llm.settings(backoff_s=0.25, max_backoff_s=1.0), sleep=waits.append))
    assert result.ok and result.mode == "json_schema" and waits == [0.25]
    assert llm.formats() == ["json_schema", "json_schema"]
    assert [a.outcome for a in result.trace] == ["transport", "ok"]


def test_a_server_that_ignores_response_format_and_wraps_the_json_in_prose() -> None:
    with FakeLLM() as llm:
        llm.push("Sure! Here is the plan you asked for:\n" + json.dumps(GOOD) + "\nLet me know if you need anything else.")
        result = ask(LLMClient(llm.settings()))
    assert result.ok and result.value == Plan(**GOOD) and result.attempts == 1


def test_finish_reason_length_is_a_failure_with_that_reason() -> None:
    cut = json.dumps(GOOD)[:10]
    with FakeLLM() as llm:
        llm.push(Reply(content=cut, finish_reason="length")).push(GOOD)
        result = ask(LLMClient(llm.settings(max_tokens=64)))
        reask = llm.requests[1].body["messages"][-1]["content"]
    assert llm.requests[0].body["max_tokens"] == 64
    assert result.ok and [a.outcome for a in result.trace] == ["truncated", "ok"]
    assert "finish_reason=length" in reask and "max_tokens=64" in reask and result.trace[0].raw == cut
    with FakeLLM() as llm:
        llm.default = Reply(content=json.dumps(GOOD), finish_reason="length")  # even parseable, it was cut
        failed = ask(LLMClient(llm.settings(max_invalid_retries=1)))
    assert not failed.ok and "finish_reason=length" in failed.fallback_reason and failed.attempts == 2


def test_extra_fields_are_rejected_with_their_name_and_missing_optional_ones_take_defaults() -> None:
    with FakeLLM() as llm:
        llm.push({**GOOD, "explanation": "cnn first"}).push({"depth": 6})
        result = ask(LLMClient(llm.settings()))
        reask = llm.requests[1].body["messages"][-1]["content"]
    assert result.ok and result.value == Plan(depth=6) and "explanation" in reask
    assert result.trace[0].outcome == "invalid" and any("explanation" in e for e in result.trace[0].errors)
    assert "cnn first" in result.trace[0].raw


@pytest.mark.parametrize(
    ("body", "content_type", "fragment"),
    [
        ("<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html", "502 Bad Gateway"),
        ("upstream busy", "text/plain", "upstream busy"),
        ('{"id": "x", "object": "chat.completion", "choices": []}', "application/json", "no choices"),
        ('{"choices": [{"index": 0, "finish_reason": "stop"}]}', "application/json", "no message"),
        ('{"status": "ok"}', "application/json", "no choices"),
        ("<html>not json</html>", "application/json", "malformed"),
    ],
    ids=["html", "plain-text", "empty-choices", "missing-message", "foreign-json", "json-type-html-body"],
)
def test_a_200_that_is_not_a_chat_completion_is_a_flagged_failure(body: str, content_type: str, fragment: str) -> None:
    with FakeLLM() as llm:
        llm.push_body(body, content_type).push(GOOD)
        result = ask(LLMClient(llm.settings()))
    assert not result.ok and result.fallback_reason.startswith("malformed_reply") and fragment in result.fallback_reason
    assert len(llm.requests) == 1 and [a.outcome for a in result.trace] == ["malformed"]


def test_the_response_cache_is_keyed_by_base_url(tmp_path: Path) -> None:
    with FakeLLM() as one, FakeLLM() as two:
        one.push(GOOD)
        two.push({"depth": 12})
        first = ask(LLMClient(one.settings(tmp_path)))
        second = ask(LLMClient(two.settings(tmp_path)))
    assert first.value.depth == 8 and second.value.depth == 12 and not second.cached


def test_timeout_max_tokens_and_mode_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EHNAS_LLM_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("EHNAS_LLM_TIMEOUT_S", "2.5")
    monkeypatch.setenv("EHNAS_LLM_MAX_TOKENS", "300")
    monkeypatch.setenv("EHNAS_LLM_MODE", "json_object")
    s = LLMSettings.from_env()
    assert (s.timeout_s, s.max_tokens, s.mode) == (2.5, 300, "json_object")
    assert LLMSettings.from_env(timeout_s=9.0).timeout_s == 9.0
    monkeypatch.setenv("EHNAS_LLM_TIMEOUT_S", "soon")
    with pytest.raises(ValueError, match="EHNAS_LLM_TIMEOUT_S='soon' is not a number"):
        LLMSettings.from_env()
    monkeypatch.setenv("EHNAS_LLM_TIMEOUT_S", "-1")
    with pytest.raises(ValueError, match="timeout_s must be > 0"):
        LLMSettings.from_env()


def test_the_timeout_reaches_the_request() -> None:
    with FakeLLM() as llm:
        llm.push("timeout").push(GOOD)
        llm.timeout_sleep_s = 1.0
        result = ask(LLMClient(llm.settings(timeout_s=0.2)))
    assert result.ok and [a.outcome for a in result.trace] == ["transport", "ok"]
    assert "Timeout" in result.trace[0].errors[0]


def test_a_forced_mode_is_used_from_the_first_request() -> None:
    with FakeLLM() as llm:
        llm.push(GOOD)
        result = ask(LLMClient(llm.settings(mode="json_object")))
    assert result.ok and llm.formats() == ["json_object"]


def test_every_attempt_records_mode_tokens_seconds_and_raw_answer() -> None:
    with FakeLLM() as llm:
        llm.reject_json_schema = 500
        llm.push(Reply(content='{"depth": 99}', usage=(120, 9))).push(Reply(content=json.dumps(GOOD), usage=(150, 12)))
        result = ask(LLMClient(llm.settings()))
    rejected, invalid, ok = result.trace
    assert (rejected.outcome, rejected.prompt_tokens) == ("format_rejected", 0)
    assert (invalid.mode, invalid.outcome, invalid.prompt_tokens, invalid.completion_tokens, invalid.raw) == (
        "json_object_schema",
        "invalid",
        120,
        9,
        '{"depth": 99}',
    )
    assert invalid.errors == ["depth: Input should be less than or equal to 20 (got 99)"]
    assert (ok.outcome, ok.prompt_tokens, ok.finish_reason) == ("ok", 150, "stop") and all(a.seconds >= 0 for a in result.trace)
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (270, 21)


def test_a_context_overflow_is_not_a_format_rejection_and_an_unnamed_400_is_not_remembered(tmp_path: Path) -> None:
    overflow = Reply(
        kind="status",
        status=400,
        body={
            "error": {
                "message": "Requested tokens (3100) exceed context window of 2048",
                "type": "invalid_request_error",
                "code": "context_length_exceeded",
            }
        },
    )
    with FakeLLM() as llm:
        llm.push(overflow).push(GOOD)
        result = ask(LLMClient(llm.settings(tmp_path)))
    assert not result.ok and result.fallback_reason.startswith("bad_request") and "context window" in result.fallback_reason
    assert len(llm.requests) == 1 and result.mode == "json_schema"
    with FakeLLM() as llm:
        llm.push(Reply(kind="status", status=400, body={"error": {"message": "unknown field"}})).push(GOOD)
        degraded = ask(LLMClient(llm.settings(tmp_path)))
    assert degraded.ok and degraded.mode == "json_object_schema" and not (tmp_path / MODES_FILE).exists()
