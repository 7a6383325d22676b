"""How many tokens a server's context holds, and how many characters of a prompt fit in it.

Servers say it in different places: vLLM's ``/v1/models`` gives ``max_model_len`` per model,
llama.cpp's own server gives ``n_ctx`` under ``/props`` (``meta.n_ctx_train`` in its model list
is the training length, an upper bound). llama-cpp-python's server says it nowhere but in the
error that rejects an over-long prompt ("Requested tokens (3100) exceed context window of 2048").
Ollama's OpenAI endpoint says nothing: set ``EHNAS_LLM_CONTEXT_TOKENS`` (``num_ctx``) there.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from typing import Any

# Characters per token when only characters can be counted. English prose is about 4 with
# BPE tokenizers; JSON, numbers and names cost more, so 3 keeps an estimate on the safe side.
CHARS_PER_TOKEN = 3.0
_OVERFLOW = re.compile(r"context window of (\d+)|maximum context length is (\d+)|context[_ ]length[^\d]{0,20}(\d+)", re.IGNORECASE)


def context_from_error(message: str) -> int | None:
    """The context size named in a server's "prompt too long" error, if any."""
    match = _OVERFLOW.search(message)
    return int(next(g for g in match.groups() if g)) if match else None


def read_context_tokens(base_url: str | None, model: str, *, api_key: str | None = None, timeout_s: float = 5.0) -> int | None:
    """The server's context size for ``model`` when it reports one, else None (never raises)."""
    if not base_url:
        return None
    base = base_url.rstrip("/")
    models = _get_json(f"{base}/models", api_key, timeout_s)
    entries = [e for e in (models or {}).get("data") or [] if isinstance(e, dict)]
    for entry in entries:
        size = entry.get("max_model_len")
        if (entry.get("id") == model or len(entries) == 1) and isinstance(size, int) and size > 0:
            return size
    root = base[: -len("/v1")] if base.endswith("/v1") else base
    props = _get_json(f"{root}/props", api_key, timeout_s) or {}
    size = (props.get("default_generation_settings") or {}).get("n_ctx")
    return size if isinstance(size, int) and size > 0 else None


def prompt_char_budget(context_tokens: int, max_tokens: int | None, fixed_chars: int) -> int:
    """Characters left for variable text (the knowledge) once the fixed part of the prompt and
    the answer's token budget are taken from the context (0 when nothing is left)."""
    answer = max_tokens or 1024
    return max(0, int((context_tokens - answer) * CHARS_PER_TOKEN) - fixed_chars)


def _get_json(url: str, api_key: str | None, timeout_s: float) -> dict[str, Any] | None:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {api_key or 'not-needed'}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 (the configured server)
            data = json.loads(response.read().decode("utf-8", "replace"))
    except (OSError, ValueError, urllib.error.URLError):
        return None
    return data if isinstance(data, dict) else None
