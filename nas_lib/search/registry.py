"""The registry of search strategies (name -> `Strategy` subclass)."""

from __future__ import annotations

from nas_lib.registry import Registry

STRATEGIES: Registry[type] = Registry("search strategy")
