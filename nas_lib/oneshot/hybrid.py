"""One-shot methods on the hybrid space's supernet (`nas_lib.oneshot.hybrid_supernet`).

``hybrid_spos``: single-path one-shot. Each training step draws a path: a depth uniform over the
depths the space holds (a uniform draw of the whole space is almost always of the maximal
depth), then, with ``sampling="decision"`` (the default), each block's type and connection
uniform among the options that keep the architecture valid, its hyperparameters uniform; with
``sampling="architecture"`` an architecture uniform among that depth's. The second trains the
type with the most hyperparameter combinations most often (CNN: 72% of the blocks on the v2
space), and its supernet then ranks by that type's share instead of by quality (measured in
docs/search.md); the first gives every type a fair share, as FairNAS argues (Chu et al., ICCV
2021, arXiv 1907.01845). With ``sandwich``
(BigNAS' rule, Yu et al., ECCV 2020, arXiv 2003.11142) the step also trains that path at its
largest and its smallest widths (`extreme`) and sums the three losses: the width dimension is
nested here, unlike NB201's operations, so the rule applies as BigNAS states it. The draw's
random generator is seeded from torch's, which the checkpoint keeps, so a resumed run draws the
same paths as an uninterrupted one.

``hybrid_enas``: ENAS (`nas_lib.oneshot.enas`) with the same controller, whose decisions are the
digits of the space's architecture code (`HybridSpace.code_cardinalities`); a code becomes an
architecture through `HybridSpace.project` (seeded by the code itself, so one code is always one
architecture). The weights train on the paths the controller samples, and the controller learns
by REINFORCE from their accuracy on a validation batch.

``hybrid_gdas``: differentiable search with a sampled relaxation, GDAS (Dong & Yang, "Searching
for a Robust Neural Architecture in Four GPU Hours", CVPR 2019, arXiv 1910.04465). DARTS' mixed
operation, a softmax-weighted sum of every candidate's output, cannot be formed here: a CNN, a
ViT and a Mamba block at one position give outputs of different widths, and depth is a choice.
So the relaxation samples. Architecture logits (one per allowed depth, one per block type and one
per connection at every position) define a policy; a step draws one choice per decision by
Gumbel-max (infeasible options masked, so every draw is a valid architecture;
`HybridSpace.sample` with a policy) and multiplies each block's output (and the pooled features,
for the depth) by straight-through gates ``1 - p + p.detach()`` of value 1, where p is the
Gumbel-softmax probability at temperature tau of the choice taken. The weights follow the train
batch through one such path, the logits (Adam on the val half, DARTS' settings) the val batch's
gradient through the gates of another; tau falls linearly from 10 to 0.1 over the epochs, as in
GDAS. Hyperparameters other than type, connection and depth stay uniform draws.
Discretisation: the argmax path (DARTS' rule), with hyperparameters drawn by the config's seed.

All three rank architectures by inherited-weight accuracy on the val half after BN
recalibration (`ranking`, best first): ``hybrid_spos`` ``candidates`` depth-stratified samples,
``hybrid_enas`` the controller's greedy choice and ``candidates`` - 1 samples of it,
``hybrid_gdas`` the argmax path and ``candidates`` - 1 draws of its policy. The answer is the
first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from nas_lib.oneshot.darts import Alphas
from nas_lib.oneshot.enas import ENAS
from nas_lib.oneshot.hybrid_supernet import HybridSupernet, extreme
from nas_lib.oneshot.scoring import inherited_accuracy
from nas_lib.oneshot.supernet import Path
from nas_lib.oneshot.trainer import METHODS, OneShotMethod
from nas_lib.space.constraints import CONNECTIONS
from nas_lib.space.hybrid import HybridArch, HybridSpace


class HybridMethod(OneShotMethod):
    """What the hybrid methods share: the supernet and the ranking by inherited accuracy."""

    space: HybridSpace

    def build_model(self) -> nn.Module:
        if not isinstance(self.space, HybridSpace):
            raise TypeError(f"method {self.name!r} trains the hybrid space's supernet, got {type(self.space).__name__}")
        return HybridSupernet(self.space, tuple(self.data.input_shape), self.data.num_classes)  # type: ignore[arg-type]

    def candidates(self, n: int) -> list[HybridArch]:
        """The architectures `ranking` scores."""
        raise NotImplementedError

    def ranking(self, candidates: int = 100) -> list[tuple[HybridArch, float]]:
        """The `candidates` (duplicates dropped) with their inherited-weight accuracy (%), best first."""
        archs = list(dict.fromkeys(self.candidates(candidates)))
        scored = [(a, inherited_accuracy(self.model, a, self.data)) for a in archs]
        return sorted(scored, key=lambda item: -item[1])

    def answer(self, candidates: int = 100) -> HybridArch:
        return self.ranking(candidates)[0][0]


@METHODS.register("hybrid_spos")
class HybridSPOS(HybridMethod):
    """Uniform single-path training of the hybrid supernet (plus the sandwich's extremes)."""

    def sample_path(self) -> HybridArch:
        """A uniform depth, then (``sampling``) a uniform architecture of that depth, or every
        type and connection uniform among the options that stay valid."""
        rng = np.random.default_rng(int(torch.randint(2**31 - 1, ())))
        if self.config.sampling == "architecture":
            return self.space.spread_sample(1, rng)[0]
        depths = self.space.held_depths()
        return self.space.sample(
            rng, depth=depths[int(rng.integers(len(depths)))], policy=lambda _d, _i, options: options[int(rng.integers(len(options)))]
        )

    def step(self, x_train: Tensor, y_train: Tensor, x_val: Tensor, y_val: Tensor) -> float:
        path = self.sample_path()
        paths = [path]
        if self.config.sandwich:
            paths += [extreme(self.space, path, largest=True), extreme(self.space, path, largest=False)]
        loss = sum(self.criterion(self.model(x_train, path=p), y_train) for p in paths)
        self.weight_update(loss)
        return float(loss.detach()) / len(paths)

    def candidates(self, n: int) -> list[HybridArch]:
        """`n` depth-stratified samples, seeded by the config's seed."""
        return self.space.spread_sample(n, np.random.default_rng(self.config.seed))


@METHODS.register("hybrid_enas")
class HybridENAS(HybridMethod, ENAS):  # type: ignore[misc]  # answer: HybridMethod's (an architecture, not a cell)
    """ENAS whose controller writes the hybrid space's architecture code."""

    def decisions(self) -> Sequence[Sequence[Any]]:
        return [range(card) for card in self.space.code_cardinalities()]

    def subnet(self, path: Path) -> HybridArch:
        return self.space.project(path, np.random.default_rng(list(path)))

    def candidates(self, n: int) -> list[HybridArch]:
        return [self.subnet(p) for p in self.drawn(n)]


@METHODS.register("hybrid_gdas")
class HybridGDAS(HybridMethod, Alphas):
    """GDAS' sampled differentiable relaxation of the hybrid space (see the module docstring)."""

    def __init__(self, space: HybridSpace, data: Any, config: Any) -> None:
        super().__init__(space, data, config)
        self.depths = self.space.held_depths()
        positions = self.space.constraints.max_depth
        self.init_alphas([(len(self.depths),), (positions, len(self.space.types)), (positions, len(CONNECTIONS))])

    def tau(self) -> float:
        """The Gumbel-softmax temperature of the current epoch: 10 down to 0.1."""
        epochs, done = self.config.epochs, self.scheduler.last_epoch
        return 10.0 - (10.0 - 0.1) * min(done, epochs - 1) / max(epochs - 1, 1)

    def draw(self, noise: torch.Generator | None, greedy: bool = False) -> tuple[HybridArch, tuple[list[Tensor], Tensor]]:
        """A path from the policy (Gumbel-max; `greedy`: the argmax) and its straight-through gates."""
        tau = self.tau()
        gates: list[Tensor] = []

        def choose(logits: Tensor, options: Sequence[Any], allowed: Sequence[Any]) -> Any:
            masked = logits.masked_fill(torch.tensor([o not in allowed for o in options]), -torch.inf)
            if not greedy:
                uniform = torch.rand(masked.shape, generator=noise).clamp(1e-10, 1.0)
                masked = masked - torch.log(-torch.log(uniform))
            k = int(masked.argmax())
            p = (masked / tau).softmax(0)[k]
            gates.append(1.0 - p.detach() + p)
            return options[k]

        depth_alpha, type_alpha, connection_alpha = self.alphas
        depth = choose(depth_alpha, self.depths, self.depths)
        rows = {"type": (type_alpha, self.space.types), "connection": (connection_alpha, CONNECTIONS)}

        def policy(decision: str, i: int, allowed: Sequence[str]) -> str:
            logits, options = rows[decision]
            return str(choose(logits[i], options, allowed))

        seed = self.config.seed if greedy else int(torch.randint(2**31 - 1, (), generator=noise))  # the hyperparameters' draw
        arch = self.space.sample(np.random.default_rng(seed), depth=depth, policy=policy)
        per_block = [gates[1 + 2 * k] * gates[2 + 2 * k] for k in range(arch.depth)]  # type x connection
        return arch, (per_block, gates[0])

    def step(self, x_train: Tensor, y_train: Tensor, x_val: Tensor, y_val: Tensor) -> float:
        arch, gates = self.draw(None)
        self.arch_optimizer.zero_grad(set_to_none=True)
        self.criterion(self.model(x_val, path=arch, gates=gates), y_val).backward(inputs=self.alphas)
        self.arch_optimizer.step()
        arch, _ = self.draw(None)
        loss = self.criterion(self.model(x_train, path=arch), y_train)
        self.weight_update(loss)
        return float(loss.detach())

    def candidates(self, n: int) -> list[HybridArch]:
        """The argmax path, then `n` - 1 draws of the policy (seeded by the config's seed)."""
        with torch.no_grad():
            noise = torch.Generator().manual_seed(self.config.seed)
            return [self.draw(None, greedy=True)[0]] + [self.draw(noise)[0] for _ in range(n - 1)]
