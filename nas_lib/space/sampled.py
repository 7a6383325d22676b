"""A finite sample of a larger space as a space of its own: what a search benchmark searches when
its ground-truth table holds a sample of the space, not all of it (the hybrid space has about
1e10 architectures even in the pipeline's small default; a trained table holds hundreds).

Every move stays inside the sample: a mutation or crossover is made in the base space, then the
child snaps to the nearest architecture of the sample by Hamming distance between codes
(ties broken at random, the parent excluded), so strategies keep their own notion of
neighbourhood and every answer has a trained score. Encoding, strings, ids and models are the
base space's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
from torch import nn

from nas_lib.space.base import InvalidArchitectureError, SearchSpace


class SampledSpace(SearchSpace):
    """The architectures `archs` of `base` (canonical strings), searched as a space."""

    def __init__(self, base: SearchSpace, archs: Sequence[str]) -> None:
        self.base = base
        self.name = base.name  # ids and strings stay those of the base space
        self.specs = [base.from_string(a) for a in dict.fromkeys(archs)]
        if not self.specs:
            raise ValueError("a sampled space needs at least one architecture")
        self.index = {spec: i for i, spec in enumerate(self.specs)}
        self.codes = np.array([base.encode(s) for s in self.specs], dtype=np.int64)

    def size(self) -> int:
        return len(self.specs)

    def validate(self, spec: Any) -> None:
        if spec not in self.index:
            raise InvalidArchitectureError("architecture", "not in the trained sample")

    def sample(self, rng: np.random.Generator) -> Hashable:
        return self.specs[int(rng.integers(len(self.specs)))]

    def nearest(self, code: Sequence[int], rng: np.random.Generator, exclude: Hashable | None = None) -> Hashable:
        """The sample's architecture whose code differs from `code` in the fewest digits."""
        distance = (self.codes != np.asarray(code, dtype=np.int64)[None, :]).sum(axis=1).astype(float)
        if exclude is not None and exclude in self.index and len(self.specs) > 1:
            distance[self.index[exclude]] = np.inf
        best = np.flatnonzero(distance == distance.min())
        return self.specs[int(best[int(rng.integers(len(best)))])]

    def mutate(self, spec: Any, rng: np.random.Generator) -> Hashable:
        return self.nearest(self.base.encode(self.base.mutate(spec, rng)), rng, exclude=spec)

    def crossover(self, a: Any, b: Any, rng: np.random.Generator) -> Hashable:
        return self.nearest(self.base.encode(self.base.crossover(a, b, rng)), rng)

    def to_string(self, spec: Any) -> str:
        return self.base.to_string(spec)

    def from_string(self, text: str) -> Hashable:
        return self.base.from_string(text)

    def encode(self, spec: Any) -> tuple[int, ...]:
        return self.base.encode(spec)

    def decode(self, code: Sequence[int]) -> Hashable:
        spec = self.base.decode(code)
        self.validate(spec)
        return spec

    def code_cardinalities(self) -> tuple[int, ...]:
        return self.base.code_cardinalities()

    def project(self, code: Sequence[int], rng: np.random.Generator) -> Hashable:
        return self.nearest(code, rng)

    def arch_id(self, spec: Any) -> str:
        return self.base.arch_id(spec)

    def build_model(self, spec: Any, input_shape: tuple[int, int, int] = (3, 32, 32), num_classes: int = 10) -> nn.Module:
        return self.base.build_model(spec, input_shape, num_classes)

    def state_key(self) -> str:
        members = hashlib.sha256("\n".join(sorted(self.to_string(s) for s in self.specs)).encode()).hexdigest()
        return f"{self.base.state_key()}|sample {members}"

    def describe(self) -> str:
        return f"{len(self.specs)} trained architectures of: {self.base.describe()}"
