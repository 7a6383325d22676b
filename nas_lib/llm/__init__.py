"""LLM access for EHNAS: one client for every OpenAI-compatible chat-completions server.

Example:
    >>> from nas_lib.llm import LLMClient, LLMSettings
    >>> settings = LLMSettings.from_env()          # EHNAS_LLM_* / OPENAI_* / DASHSCOPE_*
    >>> if settings.configured:                    # else use the offline fallback
    ...     result = LLMClient(settings).complete_json(system="...", user="...", schema=MyModel)
"""

from nas_lib.llm.client import LLMClient, check_answer
from nas_lib.llm.parsing import extract_json_object, looks_like_refusal
from nas_lib.llm.result import MODES, Attempt, LLMResult, LLMUsage, trace_json
from nas_lib.llm.settings import LLMSettings

__all__ = [
    "MODES",
    "Attempt",
    "LLMClient",
    "LLMResult",
    "LLMSettings",
    "LLMUsage",
    "check_answer",
    "extract_json_object",
    "looks_like_refusal",
    "trace_json",
]
