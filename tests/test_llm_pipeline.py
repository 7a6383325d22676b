"""The LLM entry points end to end against a llama-cpp-python-like server on 127.0.0.1 (issue 11):
`ehnas prune --provider openai` and `ehnas knowledge add --provider openai`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ehnas.cli import app
from nas_lib.artifacts import read_table
from nas_lib.knowledge import read_rows
from nas_lib.pruning import LAYERS
from tests.fake_llm import TEST_KEY, FakeLLM, Reply

ROOT = Path(__file__).resolve().parents[1]
PAPERS = ROOT / "data" / "papers"
NO_CUT = {"keep": [], "rationale": "the evidence does not single out an option"}
ANALYSIS = {"architectural_overview": "three stages", "cnn_module": "grouped convs", "tips": ["conv early"]}


def point_at(llm: FakeLLM, monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    for name, value in {
        "EHNAS_LLM_BASE_URL": llm.url,
        "EHNAS_LLM_API_KEY": TEST_KEY,
        "EHNAS_LLM_MODEL": llm.model,
        "EHNAS_LLM_CACHE_DIR": str(cache),
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("EHNAS_LLM_TIMEOUT_S", "EHNAS_LLM_MODE", "EHNAS_LLM_MAX_TOKENS", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def test_prune_reaches_the_model_in_json_object_with_a_schema_when_json_schema_gets_a_500(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeLLM() as llm:
        point_at(llm, monkeypatch, tmp_path / "cache")
        llm.reject_json_schema = 500  # llama-cpp-python's validation error
        llm.push(Reply(content='Here it is: {"keep": [{"group": "stage:nowhere", "options": ["cnn"]}]}', usage=(900, 40)))
        llm.default = Reply(content=json.dumps(NO_CUT), usage=(850, 30))
        result = CliRunner().invoke(
            app,
            [
                "prune",
                "--provider",
                "openai",
                "--out",
                str(tmp_path / "out"),
                "--k",
                "20",
                "--offline-samples",
                "10",
                "--proxy",
                "params",
                "--llm-timeout",
                "5",
            ],
        )
        formats = llm.formats()
    assert result.exit_code == 0, result.output
    # one immediate rejection, then every request in json_object with the schema (a grammar): nothing waited on retries of it
    assert formats == ["json_schema", "json_object_schema", "json_object_schema", "json_object_schema", "json_object_schema"]
    frame = read_table(tmp_path / "out" / "pruning.parquet")
    assert list(frame["layer"]) == list(LAYERS) and not frame["fallback"].any()
    assert (frame["prompt_tokens"] > 0).all() and (frame["completion_tokens"] > 0).all() and set(frame["llm_mode"]) == {"json_object_schema"}
    macro = json.loads(frame["llm_attempts_json"][0])
    assert [(a["mode"], a["outcome"]) for a in macro] == [
        ("json_schema", "format_rejected"),
        ("json_object_schema", "invalid"),
        ("json_object_schema", "ok"),
    ]
    assert "response_format" in macro[0]["errors"][0] and "stage:nowhere" in macro[1]["raw"]
    # the schema names the real groups, so the grammar (and, here, validation) refuses an invented one
    assert any(e.startswith("keep.0.group: Input should be 'stage:early'") and "(got 'stage:nowhere')" in e for e in macro[1]["errors"])
    assert [len(json.loads(t)) for t in frame["llm_attempts_json"][1:]] == [1, 1]
    assert TEST_KEY not in frame.to_json() and TEST_KEY not in result.output


def test_prune_says_why_every_answer_was_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeLLM() as llm:
        point_at(llm, monkeypatch, tmp_path / "cache")
        llm.default = Reply(content='{"keep": [{"group": "stage:early", "options": ["lstm"]}], "why": "x"}', finish_reason="stop")
        result = CliRunner().invoke(app, ["prune", "--provider", "openai", "--out", str(tmp_path / "out"), "--k", "20", "--offline-samples", "10"])
    assert result.exit_code == 0, result.output
    frame = read_table(tmp_path / "out" / "pruning.parquet")
    assert frame["fallback"].all() and all("why" in r and "invalid_output" in r for r in frame["fallback_reason"])
    assert "no LLM cut" in result.output and "llm_attempts_json" in result.output
    attempts = json.loads(frame["llm_attempts_json"][0])
    assert len(attempts) == 3 and all(a["outcome"] == "invalid" and "lstm" in a["raw"] for a in attempts)


def test_a_bad_timeout_variable_is_a_clear_cli_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EHNAS_LLM_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("EHNAS_LLM_TIMEOUT_S", "1m")
    result = CliRunner().invoke(app, ["prune", "--provider", "openai", "--out", str(tmp_path / "out"), "--k", "20", "--offline-samples", "10"])
    assert result.exit_code != 0 and "EHNAS_LLM_TIMEOUT_S='1m' is not a number" in result.output


def test_knowledge_add_survives_an_html_200_and_keeps_every_paper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    papers = sorted(PAPERS.glob("*.pdf"))
    with FakeLLM() as llm:
        point_at(llm, monkeypatch, tmp_path / "cache")
        llm.reject_json_schema = 500
        llm.push_body("<html><body>502 Bad Gateway</body></html>", "text/html")
        llm.default = ANALYSIS
        result = CliRunner().invoke(
            app, ["knowledge", "add", *map(str, papers), "--out", str(tmp_path / "kb"), "--provider", "openai", "--llm-timeout", "5"]
        )
    assert result.exit_code == 0, result.output
    frame = read_rows(tmp_path / "kb")
    assert set(frame["path"]) == {str(p) for p in papers} and result.output.count("added") == len(papers)
    flagged = frame[frame["state"] == "fallback"]
    assert len(flagged) >= 1 and all("malformed_reply" in e for e in flagged["error"])
    first = json.loads(flagged["llm_json"].iloc[0])
    assert first[-1]["outcome"] == "malformed" and "502 Bad Gateway" in first[-1]["errors"][0]
    done = frame[frame["state"] == "done"]
    assert len(done) >= 1 and all(json.loads(t)[-1]["mode"] == "json_object_schema" for t in done["llm_json"])


def test_llm_ranker_picks_through_a_server_that_rejects_json_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nas_lib.search.llm_ranker import LLMRanker
    from nas_lib.space import NB201Space

    space = NB201Space()
    with FakeLLM() as llm:
        point_at(llm, monkeypatch, tmp_path / "cache")
        llm.reject_json_schema = 500
        llm.default = {"index": 0}
        ranker = LLMRanker(space, seed=0, init=4)
        for _ in range(6):
            specs = ranker.ask(1)
            ranker.tell(specs, [float(sum(space.encode(s))) for s in specs])
        formats = llm.formats()
    assert ranker.ranker_used == "llm" and ranker.used["llm"] == 2
    assert formats == ["json_schema", "json_object_schema", "json_object_schema"]


def test_the_run_summary_says_why_the_llm_answer_was_rejected(tmp_path: Path) -> None:
    from nas_lib.artifacts import write_table
    from nas_lib.pruning import PRUNING_SCHEMA, MeasureConfig, run_layer
    from nas_lib.report import summary_markdown
    from nas_lib.space import NB201Space
    from tasks.config import load_config

    assert load_config(None, ["pruning.provider=openai", "pruning.llm_timeout_s=7"]).pruning.llm_timeout_s == 7
    with FakeLLM() as llm:
        llm.default = {"keep": [{"group": "edge3", "options": ["teleport"]}]}
        out = run_layer(
            "macro", NB201Space(), None, provider="openai", settings=llm.settings(None, max_invalid_retries=1), measure=MeasureConfig(k=50)
        )
    write_table(tmp_path / "02_macro.parquet", [out.record], PRUNING_SCHEMA)
    summary = summary_markdown(tmp_path)
    assert "invalid_output: 2 answers rejected" in summary and "(got 'teleport')" in summary
