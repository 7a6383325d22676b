"""The registry of search strategies (name -> `Strategy` subclass)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nas_lib.registry import Registry

if TYPE_CHECKING:
    from nas_lib.search.base import Strategy

STRATEGIES: Registry[type[Strategy]] = Registry("search strategy")
