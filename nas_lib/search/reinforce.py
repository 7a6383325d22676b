"""REINFORCE with an LSTM controller that emits the code digit by digit.

Reference: B. Zoph and Q. V. Le, "Neural Architecture Search with Reinforcement Learning",
ICLR 2017, arXiv 1611.01578 (policy gradient of R. J. Williams, "Simple statistical
gradient-following algorithms for connectionist reinforcement learning", 1992).

The controller reads the previous digit (a start token first) and a position embedding at each
step and outputs a softmax over the digits allowed at that position (`code_cardinalities()`).
Sampled codes become specs through `space.project`. Each told result updates the controller
with the advantage (fitness - moving-average baseline) divided by a running scale, plus an
entropy bonus that keeps it from collapsing early. Sampling uses the strategy's numpy generator
and the weights start from the seed, so runs are reproducible and resumable.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn

from nas_lib.search.base import Spec, Strategy
from nas_lib.search.registry import STRATEGIES


@dataclasses.dataclass(frozen=True)
class ReinforceConfig:
    """Options of the REINFORCE controller."""

    hidden: int = 32
    lr: float = 0.05  # high for an RL controller: it gets only ~100 rewards on a benchmark
    baseline_decay: float = 0.9
    entropy_weight: float = 0.01


class Controller(nn.Module):
    """An LSTM cell that emits one digit per code position."""

    def __init__(self, cards: list[int], hidden: int) -> None:
        super().__init__()
        self.cards = cards
        self.width = max(cards)
        self.token = nn.Embedding(self.width + 1, hidden)  # 0 = start, d + 1 = digit d
        self.position = nn.Embedding(len(cards), hidden)
        self.cell = nn.LSTMCell(hidden, hidden)
        self.head = nn.Linear(hidden, self.width)
        mask = torch.zeros(len(cards), self.width)
        for i, card in enumerate(cards):
            mask[i, card:] = -math.inf
        self.mask: torch.Tensor
        self.register_buffer("mask", mask)

    def step(
        self, i: int, prev: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Log-probabilities of digit i given the previous digits (batch of sequences)."""
        inp = self.token(prev) + self.position.weight[i]
        h, c = self.cell(inp, state)
        return torch.log_softmax(self.head(h) + self.mask[i], dim=-1), (h, c)

    def score(self, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Sum of log-probabilities and of entropies of whole codes (teacher forcing)."""
        prev = torch.zeros(len(codes), dtype=torch.long)
        state, logp, ent = None, torch.zeros(len(codes)), torch.zeros(len(codes))
        for i in range(len(self.cards)):
            lp, state = self.step(i, prev, state)
            logp = logp + lp.gather(1, codes[:, i : i + 1]).squeeze(1)
            p = lp.exp()
            ent = ent - (p * torch.nan_to_num(lp, neginf=0.0)).sum(dim=1)
            prev = codes[:, i] + 1
        return logp, ent


@contextmanager
def single_thread() -> Iterator[None]:
    """Runs torch on one thread: the controller's ops are tiny, and on a busy machine extra
    intra-op threads cost far more in synchronisation than they save (40x measured)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@STRATEGIES.register("reinforce")
class Reinforce(Strategy):
    """Policy-gradient controller with moving-average baseline and entropy bonus."""

    name = "reinforce"
    Config = ReinforceConfig

    def __init__(self, space: Any, seed: int = 0, **options: Any) -> None:
        super().__init__(space, seed, **options)
        self.controller = Controller(list(space.code_cardinalities()), self.config.hidden)
        gen = torch.Generator().manual_seed(self.seed)
        with torch.no_grad():
            for p in self.controller.parameters():
                p.copy_(torch.empty_like(p).uniform_(-0.1, 0.1, generator=gen))
        self.optimizer = torch.optim.Adam(self.controller.parameters(), lr=self.config.lr)
        self.baseline: float | None = None
        self.scale: float | None = None  # running mean |advantage|: makes the step size unit-free
        self.actions: dict[str, list[int]] = {}  # spec string -> the code the controller emitted
        self._buffer: list[list[int]] = []
        self._batch = 1

    def _sample_codes(self, count: int) -> list[list[int]]:
        """`count` codes sampled from the controller in one batched pass."""
        prev = torch.zeros(count, dtype=torch.long)
        state, digits = None, []
        with torch.no_grad():
            for i, card in enumerate(self.controller.cards):
                lp, state = self.controller.step(i, prev, state)
                p = lp[:, :card].exp().double().numpy()
                cum = np.cumsum(p / p.sum(axis=1, keepdims=True), axis=1)
                d = np.minimum((self.rng.random((count, 1)) > cum).sum(axis=1), card - 1)  # inverse CDF
                digits.append(d)
                prev = torch.as_tensor(d + 1, dtype=torch.long)
        return np.stack(digits, axis=1).tolist()

    def _one(self) -> Spec:
        if not self._buffer:
            self._buffer = self._sample_codes(self._batch)
        code = self._buffer.pop(0)
        spec = self.space.project(code, self.rng)
        if not self.is_seen(spec):  # repeats are discarded by `fresh`, so only keep new ones
            self.actions[self.space.to_string(spec)] = code
        return spec

    def _propose(self, n: int) -> list[Spec]:
        self._batch, self._buffer = max(n, 1), []
        with single_thread():
            specs = [self.fresh(self._one) for _ in range(n)]
        self._buffer = []  # leftover samples are dropped, so no state outlives a call
        return specs

    def _observe(self, specs: list[Spec], fitnesses: list[float], extra: list[Any] | None) -> None:
        codes, advantages = [], []
        for spec, fitness in zip(specs, fitnesses):
            code = self.actions.pop(self.space.to_string(spec), None)
            if code is None or math.isnan(fitness):
                continue
            if self.baseline is None:
                self.baseline = fitness
            adv = fitness - self.baseline
            if adv:
                self.scale = abs(adv) if self.scale is None else 0.9 * self.scale + 0.1 * abs(adv)
            self.baseline = self.config.baseline_decay * self.baseline + (1 - self.config.baseline_decay) * fitness
            codes.append(code)
            advantages.append(adv / (self.scale or 1.0))
        if codes:
            with single_thread():
                self._update(torch.tensor(codes, dtype=torch.long), torch.tensor(advantages, dtype=torch.float32))

    def _update(self, codes: torch.Tensor, advantages: torch.Tensor) -> None:
        logp, ent = self.controller.score(codes)
        loss = -(advantages * logp).mean() - self.config.entropy_weight * ent.mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()

    def _extra_state(self) -> dict[str, Any]:
        return {
            "controller": _to_json(self.controller.state_dict()),
            "optimizer": _to_json(self.optimizer.state_dict()),
            "baseline": self.baseline,
            "scale": self.scale,
            "actions": self.actions,
        }

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        if "controller" in state:
            self.controller.load_state_dict(_from_json(state["controller"]))
            self.optimizer.load_state_dict(_from_json(state["optimizer"]))
        self.baseline = state.get("baseline")
        self.scale = state.get("scale")
        self.actions = {k: list(v) for k, v in state.get("actions", {}).items()}


def _to_json(obj: Any) -> Any:
    """Tensors -> {"__tensor__": nested lists, "dtype": ...}; dict keys -> strings (tagged)."""
    if isinstance(obj, torch.Tensor):
        return {"__tensor__": obj.detach().cpu().tolist(), "dtype": str(obj.dtype).removeprefix("torch.")}
    if isinstance(obj, dict):
        return {"__dict__": [[_to_json(k), _to_json(v)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return [_to_json(v) for v in obj]
    return obj


def _from_json(obj: Any) -> Any:
    if isinstance(obj, dict) and "__tensor__" in obj:
        return torch.tensor(obj["__tensor__"], dtype=getattr(torch, obj["dtype"]))
    if isinstance(obj, dict) and "__dict__" in obj:
        return {_from_json(k): _from_json(v) for k, v in obj["__dict__"]}
    if isinstance(obj, list):
        return [_from_json(v) for v in obj]
    return obj
