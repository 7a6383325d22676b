"""Where the LLM lives and how patiently we talk to it.

Every OpenAI-compatible chat-completions server works: OpenAI, DashScope (compatible mode),
vLLM, Ollama and llama.cpp's server. A local server needs no key; a dummy is sent instead.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from nas_lib.llm.result import MODES

DEFAULT_MODEL = "gpt-4o-mini"
DASHSCOPE_COMPAT_URL = "https://dashscope.aliyuncs.com/compatible-mode/v1"
DASHSCOPE_DEFAULT_MODEL = "qwen-plus"
# The SDK refuses an empty key even for servers that ignore it (Ollama, vLLM, llama.cpp).
DUMMY_API_KEY = "not-needed"


def _first_env(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def _env_number(name: str, kind: type) -> Any:
    value = _first_env(name)
    if value is None:
        return None
    try:
        return kind(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a{'n integer' if kind is int else ' number'}") from None


@dataclass(frozen=True)
class LLMSettings:
    """Endpoint, model and retry policy of one LLM.

    Attributes:
        base_url: chat-completions base URL (``http://localhost:11434/v1`` for Ollama); None
            means the SDK default (api.openai.com).
        api_key: secret; never printed (``repr=False``) and never written anywhere.
        model: model name as the server knows it.
        timeout_s: per-request timeout.
        max_transport_retries: retries of one request after 429, 5xx, timeouts and resets.
        max_invalid_retries: re-asks after an answer that fails the schema or semantic checks.
        cache_dir: on-disk response cache; None means ``~/.cache/ehnas/llm``.
        temperature: sampling temperature (0 keeps reruns comparable).
        backoff_s: first transport backoff; doubles per retry up to ``max_backoff_s``.
        max_backoff_s: cap of the exponential backoff.
        retry_after_cap_s: a server's Retry-After is honoured up to this many seconds.
        use_cache: False skips reading and writing the cache (and the remembered modes).
        max_tokens: completion budget per request; an answer cut off there (finish_reason
            ``length``) is a failed attempt, re-asked with that reason. None sends no limit.
        mode: ``auto`` negotiates json_schema -> json_object_schema -> json_object -> text and
            remembers what works per (base URL, model); a mode name forces it (EHNAS_LLM_MODE).
        context_tokens: the server's context size, for servers that do not report it (Ollama's
            ``num_ctx``; EHNAS_LLM_CONTEXT_TOKENS). None: read it from the server when it says.
    """

    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    model: str = DEFAULT_MODEL
    timeout_s: float = 60.0
    max_transport_retries: int = 4
    max_invalid_retries: int = 2
    cache_dir: Path | None = None
    temperature: float = 0.0
    backoff_s: float = 0.5
    max_backoff_s: float = 8.0
    retry_after_cap_s: float = 30.0
    use_cache: bool = True
    # An analysis or a layer decision is a few hundred tokens; 1024 leaves room for a verbose
    # small model while stopping one that loops until the server's own limit.
    max_tokens: int | None = 1024
    mode: str = "auto"
    context_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")
        if self.max_transport_retries < 0 or self.max_invalid_retries < 0:
            raise ValueError("retry counts must be >= 0")
        if self.backoff_s < 0 or self.max_backoff_s < 0 or self.retry_after_cap_s < 0:
            raise ValueError("backoff times must be >= 0")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if self.mode not in ("auto", *MODES):
            raise ValueError(f"mode must be auto or one of {', '.join(MODES)}, got {self.mode!r}")

    @property
    def configured(self) -> bool:
        """True when an endpoint or a key is set, i.e. there is an LLM to talk to."""
        return bool(self.base_url) or bool(self.api_key)

    @property
    def resolved_cache_dir(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else Path.home() / ".cache" / "ehnas" / "llm"

    @classmethod
    def from_env(cls, **overrides: Any) -> LLMSettings:
        """Settings from the environment, then ``overrides`` (None values are ignored).

        Each field takes the first set variable: ``EHNAS_LLM_*``, then ``OPENAI_*``, then
        ``DASHSCOPE_*`` (the seed project's names). A DashScope key without a base URL points at
        DashScope's OpenAI-compatible endpoint. ``EHNAS_LLM_CACHE_DIR`` sets the cache.
        """
        base_url = _first_env("EHNAS_LLM_BASE_URL", "OPENAI_BASE_URL", "DASHSCOPE_BASE_URL")
        api_key = _first_env("EHNAS_LLM_API_KEY", "OPENAI_API_KEY", "DASHSCOPE_API_KEY")
        model = _first_env("EHNAS_LLM_MODEL", "OPENAI_MODEL", "DASHSCOPE_MODEL")
        only_dashscope = api_key is not None and api_key == _first_env("DASHSCOPE_API_KEY") and not _first_env("EHNAS_LLM_API_KEY", "OPENAI_API_KEY")
        if only_dashscope and base_url is None:
            base_url = DASHSCOPE_COMPAT_URL
        if model is None:
            model = DASHSCOPE_DEFAULT_MODEL if base_url == DASHSCOPE_COMPAT_URL else DEFAULT_MODEL
        cache = _first_env("EHNAS_LLM_CACHE_DIR")
        tuning = {
            "timeout_s": _env_number("EHNAS_LLM_TIMEOUT_S", float),
            "max_tokens": _env_number("EHNAS_LLM_MAX_TOKENS", int),
            "mode": _first_env("EHNAS_LLM_MODE"),
            "context_tokens": _env_number("EHNAS_LLM_CONTEXT_TOKENS", int),
        }
        settings = cls(
            base_url=base_url,
            api_key=api_key,
            model=model,
            cache_dir=Path(cache) if cache else None,
            **{k: v for k, v in tuning.items() if v is not None},
        )
        return replace(settings, **{k: v for k, v in overrides.items() if v is not None})

    def public_dict(self) -> dict[str, Any]:
        """Every setting except the key (safe for logs, MLflow params and Parquet)."""
        out = asdict(self)
        out.pop("api_key")
        out["api_key_set"] = bool(self.api_key)
        out["cache_dir"] = str(self.resolved_cache_dir)
        return out
