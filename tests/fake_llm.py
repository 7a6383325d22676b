"""A scripted OpenAI-compatible chat-completions server on 127.0.0.1 for tests.

Usage (any test, including other helpers' tests)::

    from tests.fake_llm import FakeLLM

    def test_something(tmp_path):
        with FakeLLM() as llm:                      # random free port, stops on exit
            llm.push({"answer": 42})                # dict/list -> assistant content = json.dumps
            llm.push("not json at all")             # other str -> assistant content verbatim
            llm.push(429, retry_after=0)            # int -> that HTTP status (+ Retry-After)
            llm.push("timeout")                     # sleep past the client's timeout, no answer
            llm.push("reset")                       # close the connection without a response
            llm.push_refusal("I can't help")        # message.refusal set, content null
            llm.default = lambda body: {"answer": 1}   # used when the queue is empty
            llm.reject_json_schema = True           # 400 for response_format json_schema
            llm.reject_json_schema = 500            # ... or llama-cpp-python's 500 validation error
            llm.reject_json_object_schema = True    # 400 for json_object with a "schema" (OpenAI)
            llm.push(Reply(content="{...", finish_reason="length"))   # cut off at max_tokens
            llm.push_body("<html>502</html>", "text/html")            # a 200 that is no completion
            llm.intercept = lambda body: 400 if "temperature" in body else None  # checked first
            llm.get_routes["/v1/models"] = {"data": [{"id": "fake-model", "max_model_len": 4096}]}  # GETs
            settings = llm.settings(tmp_path)       # LLMSettings pointing here, fast retries
            ...
            assert len(llm.requests) == 3           # RecordedRequest(path, headers, body)

Each request pops one scripted reply; with an empty queue and no ``default`` the server answers
500 "script exhausted". ``llm.requests`` records every request (headers lower-cased, body parsed),
so tests can count retries and check where the key was sent. ``default`` may be a callable that
receives the request body (dict) and returns anything ``push`` accepts.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

TEST_KEY = "sk-test-SECRET-0123456789abcdef"
CLIENT_TIMEOUT_S = 0.5
TIMEOUT_SLEEP_S = 1.5  # > CLIENT_TIMEOUT_S; cut short when the server stops

# What llama-cpp-python's server answers (HTTP 500, type internal_server_error) when
# response_format.type is json_schema: its request model allows only text and json_object, and
# its route error handler wraps the pydantic ValidationError text as an OpenAI-style error.
LLAMA_CPP_FORMAT_ERROR = (
    "1 validation error for CreateChatCompletionRequest\n"
    "response_format.type\n"
    "  Input should be 'text' or 'json_object' [type=literal_error, input_value='{fmt}', input_type=str]\n"
    "    For further information visit https://errors.pydantic.dev/2.9/v/literal_error"
)


def format_rejection(status: int, fmt: str) -> Reply:
    """The rejection of response_format ``fmt``: llama-cpp-python's 500, else an OpenAI-style 4xx."""
    if status >= 500:
        error = {"message": LLAMA_CPP_FORMAT_ERROR.format(fmt=fmt), "type": "internal_server_error", "param": None, "code": None}
    else:
        error = {"message": f"response_format {fmt} is not supported", "type": "invalid_request_error", "param": "response_format"}
    return Reply(kind="status", status=status, body={"error": error})


def request_format(body: dict[str, Any]) -> str | None:
    """The client mode a request body asks for (None: plain text)."""
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_object" and "schema" in fmt:
        return "json_object_schema"
    return fmt.get("type")


@dataclass
class Reply:
    """One scripted answer. kind: content | refusal | status | timeout | reset | body (a raw
    200 body with its own Content-Type, e.g. an HTML page)."""

    kind: str = "content"
    content: str | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    usage: tuple[int, int] = (11, 7)
    finish_reason: str = "stop"
    content_type: str = "application/json"


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    raw: str


def as_reply(item: Any, retry_after: float | None = None) -> Reply:
    """Turns what `FakeLLM.push` accepts into a `Reply`."""
    if isinstance(item, Reply):
        return item
    if isinstance(item, bool):
        raise TypeError("push a dict, str, int status or Reply")
    if isinstance(item, int):
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        return Reply(
            kind="status", status=item, headers=headers, body={"error": {"message": f"scripted status {item}", "type": "fake", "code": item}}
        )
    if item in ("timeout", "reset"):
        return Reply(kind=item)
    if isinstance(item, (dict, list)):
        return Reply(content=json.dumps(item))
    if isinstance(item, str):
        return Reply(content=item)
    raise TypeError(f"cannot script {item!r}")


class FakeLLM:
    """Context manager running the scripted server; see the module docstring."""

    def __init__(self, *, model: str = "fake-model") -> None:
        self.model = model
        self.queue: deque[Reply] = deque()
        self.requests: list[RecordedRequest] = []
        self.default: Callable[[dict[str, Any]], Any] | Any | None = None
        self.reject_json_schema: bool | int = False  # True: 400; an int: that status
        self.reject_json_object_schema: bool | int = False
        self.reject_json_object: bool | int = False
        self.intercept: Callable[[dict[str, Any]], Any] | None = None
        self.get_routes: dict[str, Any] = {}  # GET path -> JSON body (vLLM's /v1/models, llama.cpp's /props); else 404
        self.timeout_sleep_s = TIMEOUT_SLEEP_S
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- scripting ------------------------------------------------------------------------------
    def push(self, item: Any, *, retry_after: float | None = None) -> FakeLLM:
        with self._lock:
            self.queue.append(as_reply(item, retry_after))
        return self

    def push_body(self, text: str, content_type: str = "text/html") -> FakeLLM:
        """A 200 whose body is ``text`` verbatim (an HTML page, plain text, foreign JSON)."""
        with self._lock:
            self.queue.append(Reply(kind="body", content=text, content_type=content_type))
        return self

    def formats(self) -> list[str | None]:
        """The client mode of every request so far: the response_format type, with
        ``json_object_schema`` for a json_object that carries a schema (None: plain text)."""
        return [request_format(r.body) for r in self.requests]

    def push_refusal(self, text: str = "I'm sorry, but I can't help with that.") -> FakeLLM:
        with self._lock:
            self.queue.append(Reply(kind="refusal", content=text))
        return self

    @property
    def url(self) -> str:
        assert self._server is not None, "use FakeLLM as a context manager"
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def settings(self, cache_dir: Path | None = None, **overrides: Any) -> Any:
        """`LLMSettings` for this server: test key, small timeout, no backoff, cache in cache_dir."""
        from nas_lib.llm import LLMSettings

        values: dict[str, Any] = dict(
            base_url=self.url,
            api_key=TEST_KEY,
            model=self.model,
            timeout_s=CLIENT_TIMEOUT_S,
            backoff_s=0.0,
            max_backoff_s=0.0,
            retry_after_cap_s=0.0,
            cache_dir=cache_dir,
            use_cache=cache_dir is not None,
        )
        values.update(overrides)
        return LLMSettings(**values)

    # -- lifecycle ------------------------------------------------------------------------------
    def __enter__(self) -> FakeLLM:
        fake = self

        class Handler(_Handler):
            owner = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # -- server side ----------------------------------------------------------------------------
    def next_reply(self, body: dict[str, Any]) -> Reply:
        forced = self.intercept(body) if self.intercept else None
        if forced is not None:
            return as_reply(forced)
        fmt = request_format(body)
        rejections = {
            "json_schema": self.reject_json_schema,
            "json_object_schema": self.reject_json_object_schema,
            "json_object": self.reject_json_object,
        }
        rejection = rejections.get(fmt or "", False)
        if rejection is not False:
            return format_rejection(400 if rejection is True else int(rejection), fmt or "")
        with self._lock:
            if self.queue:
                return self.queue.popleft()
        if self.default is None:
            return Reply(kind="status", status=500, body={"error": {"message": "script exhausted"}})
        item = self.default(body) if callable(self.default) else self.default
        return as_reply(item)


class _Handler(BaseHTTPRequestHandler):
    owner: FakeLLM
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        body = self.owner.get_routes.get(self.path)
        if body is None:
            self._send(404, {"error": {"message": f"no route {self.path}"}}, {})
        else:
            self._send(200, body, {})

    def do_POST(self) -> None:  # noqa: N802 (http.server naming)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode("utf-8")
        body = json.loads(raw or "{}")
        headers = {k.lower(): v for k, v in self.headers.items()}
        with self.owner._lock:
            self.owner.requests.append(RecordedRequest(self.path, headers, body, raw))
        reply = self.owner.next_reply(body)
        if reply.kind == "timeout":
            self.owner._stop.wait(self.owner.timeout_sleep_s)
            self.close_connection = True
            return
        if reply.kind == "reset":
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if reply.kind == "status":
            self._send(reply.status, reply.body or {}, reply.headers)
            return
        if reply.kind == "body":
            self._send_bytes(200, (reply.content or "").encode(), reply.content_type, reply.headers)
            return
        self._send(200, self._completion(reply), reply.headers)

    def _completion(self, reply: Reply) -> dict[str, Any]:
        refusal = reply.content if reply.kind == "refusal" else None
        content = None if reply.kind == "refusal" else reply.content
        prompt, completion = reply.usage
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.owner.model,
            "choices": [{"index": 0, "finish_reason": reply.finish_reason, "message": {"role": "assistant", "content": content, "refusal": refusal}}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
        }

    def _send(self, status: int, payload: Any, headers: dict[str, str]) -> None:
        self._send_bytes(status, json.dumps(payload).encode(), "application/json", headers)

    def _send_bytes(self, status: int, data: bytes, content_type: str, headers: dict[str, str]) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout test); nothing to do


def main() -> None:
    """``python -m tests.fake_llm '{"depth": 8}'``: serves that answer to every request in a
    process of its own (for tests that kill the server) and prints its base URL."""
    import sys

    with FakeLLM() as llm:
        llm.default = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
        print(llm.url, flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
