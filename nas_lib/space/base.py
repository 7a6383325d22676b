"""The interface every search space implements (hybrid CNN/ViT/Mamba, NAS-Bench-201).

Proxies, search strategies, pruning layers and the pipeline only talk to this interface, so each
of them runs unchanged on every space. What is specific to one space (how a pruning layer reads
it, how its reference draws are spread, which architectures share a proxy score) sits behind
this interface too, never in an ``isinstance`` branch elsewhere.
"""

from __future__ import annotations

import hashlib
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from torch import nn

from nas_lib.registry import Registry
from nas_lib.space.narrowing import LayerView


class InvalidArchitectureError(ValueError):
    """An architecture spec or code breaks a rule of its space.

    Attributes:
        field: the decision at fault, e.g. ``"block 3 vit.qkv_dim"``.
        rule: the rule it breaks, e.g. ``"qkv_dim 250 is not divisible by num_heads 4"``.
    """

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


@dataclass(frozen=True)
class Membership:
    """Answer of `SearchSpace.contains`: truthy when the spec lies in the space, else says why."""

    ok: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.ok


def stable_arch_id(space_name: str, canonical: str) -> str:
    """A short stable hash of a canonical architecture string: the key of Parquet rows,
    caches, MLflow tags and log lines."""
    digest = hashlib.sha256(f"{space_name}:{canonical}".encode()).hexdigest()
    return digest[:12]


def randbelow(rng: np.random.Generator, n: int) -> int:
    """Uniform integer in [0, n) for arbitrarily large Python ints, drawn from a numpy rng."""
    if n <= 0:
        raise ValueError("randbelow needs n > 0")
    if n < 2**62:
        return int(rng.integers(n))
    bits = n.bit_length()
    while True:  # rejection sampling over 62-bit chunks; accepts with probability > 1/2
        value = 0
        for _ in range(math.ceil(bits / 62)):
            value = (value << 62) | int(rng.integers(2**62))
        value >>= math.ceil(bits / 62) * 62 - bits
        if value < n:
            return value


class SearchSpace(ABC):
    """A set of valid architectures with exact size, uniform sampling and one canonical encoding.

    Specs are frozen, hashable dataclasses owned by each space. Codes are fixed-length integer
    vectors (one digit per decision); ``code_cardinalities()[i]`` bounds digit i. Random
    generators are ``numpy.random.Generator`` everywhere.
    """

    name: str = "space"
    # layer name -> view factory; every subclass gets its own (see `__init_subclass__`)
    prune_views: ClassVar[Registry[Callable[[Any], LayerView]]] = Registry("pruning view")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.prune_views = Registry(f"{cls.__name__} pruning view")

    # -- size and membership -------------------------------------------------------------
    @abstractmethod
    def size(self) -> int:
        """The exact number of valid architectures, honouring every constraint."""

    def log10_size(self) -> float:
        """log10 of `size()` (0 architectures gives -inf)."""
        n = self.size()
        return math.log10(n) if n > 0 else float("-inf")

    @abstractmethod
    def validate(self, spec: Any) -> None:
        """Raises `InvalidArchitectureError` naming the field and rule if `spec` is not in the space."""

    def contains(self, spec: Any) -> Membership:
        """Whether `spec` lies in this (possibly constrained) space, and if not, why."""
        try:
            self.validate(spec)
        except InvalidArchitectureError as err:
            return Membership(False, str(err))
        return Membership(True)

    # -- sampling and variation ------------------------------------------------------------
    @abstractmethod
    def sample(self, rng: np.random.Generator) -> Hashable:
        """Draws one architecture uniformly among the valid ones."""

    @abstractmethod
    def mutate(self, spec: Any, rng: np.random.Generator) -> Hashable:
        """Changes one decision of `spec` and returns a different valid spec (when one exists)."""

    @abstractmethod
    def crossover(self, a: Any, b: Any, rng: np.random.Generator) -> Hashable:
        """Mixes the decisions of two parents into a valid child."""

    # -- encoding ---------------------------------------------------------------------------
    @abstractmethod
    def to_string(self, spec: Any) -> str:
        """The canonical, readable string of a spec."""

    @abstractmethod
    def from_string(self, text: str) -> Hashable:
        """Parses a canonical string (validated against the full space)."""

    @abstractmethod
    def encode(self, spec: Any) -> tuple[int, ...]:
        """The fixed-length integer code of a spec."""

    @abstractmethod
    def decode(self, code: Sequence[int]) -> Hashable:
        """Inverse of `encode`; raises `InvalidArchitectureError` on an invalid code."""

    @abstractmethod
    def code_cardinalities(self) -> tuple[int, ...]:
        """For each code position, the number of values a digit can take."""

    @abstractmethod
    def project(self, code: Sequence[int], rng: np.random.Generator) -> Hashable:
        """Maps any code whose digits are within `code_cardinalities()` to a valid spec of this
        space, changing as few decisions as it can (used by generative strategies)."""

    def arch_id(self, spec: Any) -> str:
        """Stable short hash of the canonical string."""
        return stable_arch_id(self.name, self.to_string(spec))

    # -- models -----------------------------------------------------------------------------
    @abstractmethod
    def build_model(self, spec: Any, input_shape: tuple[int, int, int] = (3, 32, 32), num_classes: int = 10) -> nn.Module:
        """A freshly initialised `nn.Module` for `spec`."""

    def describe(self) -> str:
        """A human-readable summary of the choices and constraints."""
        return f"{self.name}: {self.size()} architectures (log10 {self.log10_size():.2f})"

    # -- what pruning and measuring need ------------------------------------------------------
    @abstractmethod
    def state_key(self) -> str:
        """Canonical text of what this space allows: equal spaces give equal keys (a cache key)."""

    def prune_view(self, layer: str) -> LayerView:
        """How pruning layer `layer` reads and narrows this space (see `nas_lib.space.narrowing`).

        Raises:
            KeyError: naming the layers this space has views for.
        """
        return self.prune_views.get(layer)(self)

    def spread_sample(self, k: int, rng: np.random.Generator) -> Sequence[Hashable]:
        """K draws for measuring or ranking cuts: uniform unless the space spreads them otherwise."""
        return [self.sample(rng) for _ in range(k)]

    def score_key(self, proxy: str, spec: Any) -> Hashable:
        """What proxy `proxy`'s score of `spec` depends on: specs sharing a key share the score,
        so a memo keyed by it scores each once (default: the spec itself)."""
        return spec
