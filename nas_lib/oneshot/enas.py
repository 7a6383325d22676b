"""ENAS on the NB201 supernet: Pham, Guan, Zoph, Le & Dean, "Efficient Neural Architecture
Search via Parameter Sharing", ICML 2018, arXiv 1802.03268.

An LSTM controller (hidden size 32) picks the cell autoregressively, one decision per edge in
NB201's edge order: a softmax over that edge's allowed candidates (a restricted space has fewer
per edge), the chosen candidate's embedding feeding the next step. Each training step:

- the shared weights take one SGD step on the train batch through a path the controller samples
  (no gradient reaches the controller);
- the controller takes one REINFORCE step on the val batch: it samples a path, whose reward is
  that path's accuracy (a fraction) on the val batch with the shared weights, plus 1e-4 times
  the sample's entropy; the advantage is the reward minus a moving-average baseline (decay
  0.95, started at the first reward), and the loss is ``-log p(path) * advantage``.

The reward is computed in train mode without gradients, so BN normalises with the val batch's
own statistics (and its running statistics move; the answer recalibrates them per cell anyway).
ENAS' controller settings as the paper gives them: Adam at lr 3.5e-4, logits passed through
``2.5 * tanh(logits / 5.0)`` (tanh constant 2.5, temperature 5.0), sample entropy added to the
reward with weight 1e-4. The baseline decay (ENAS: 0.99) and the controller size are scaled to
this budget of a few hundred steps. ENAS' derive step gives the answer: the controller's greedy
cell and `candidates` - 1 sampled ones (seeded by the config's seed), scored by inherited-weight
accuracy on the val half after BN recalibration; the best is returned.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from nas_lib.data.datasets import ImageDataset
from nas_lib.oneshot.scoring import inherited_accuracy
from nas_lib.oneshot.supernet import Path
from nas_lib.oneshot.trainer import METHODS, OneShotConfig, OneShotMethod
from nas_lib.space.nb201 import NB201Arch, NB201Space


class Decision(NamedTuple):
    """A path the controller chose, its log-probability and entropy (summed over edges), and the
    per-edge candidate probabilities along it."""

    path: Path
    log_prob: Tensor
    entropy: Tensor
    probs: tuple[Tensor, ...]


class Controller(nn.Module):
    """An LSTM cell that emits one candidate per edge; each edge has its own softmax head and
    candidate embeddings, so edges may allow different numbers of candidates.

    Args:
        edge_ops: the candidate operations of each edge.
        hidden: the LSTM's hidden size.
        tanh_constant, temperature: logits become ``tanh_constant * tanh(logits / temperature)``.
    """

    def __init__(self, edge_ops: Sequence[Sequence[str]], hidden: int = 32, tanh_constant: float = 2.5, temperature: float = 5.0) -> None:
        super().__init__()
        self.tanh_constant, self.temperature = tanh_constant, temperature
        self.start = nn.Parameter(torch.empty(1, hidden))
        self.lstm = nn.LSTMCell(hidden, hidden)
        self.heads = nn.ModuleList(nn.Linear(hidden, len(ops)) for ops in edge_ops)
        self.embeddings = nn.ModuleList(nn.Embedding(len(ops), hidden) for ops in edge_ops)
        for p in self.parameters():
            nn.init.uniform_(p, -0.1, 0.1)  # ENAS' initialisation

    def forward(self, generator: torch.Generator | None = None, greedy: bool = False, path: Path | None = None) -> Decision:
        """Samples a path (from `generator`, else torch's global RNG), takes the argmax on every
        edge (`greedy`), or follows the given `path`; returns it with its statistics."""
        x: Tensor = self.start
        state: tuple[Tensor, Tensor] | None = None
        chosen: list[int] = []
        log_probs, entropies, probs = [], [], []
        for k, (head, embedding) in enumerate(zip(self.heads, self.embeddings)):
            state = self.lstm(x, state)
            logits = self.tanh_constant * torch.tanh(head(state[0])[0] / self.temperature)
            log_p = logits.log_softmax(0)
            if path is not None:
                index = path[k]
            elif greedy:
                index = int(log_p.argmax())
            else:
                index = int(torch.multinomial(log_p.detach().exp(), 1, generator=generator))
            chosen.append(index)
            log_probs.append(log_p[index])
            entropies.append(-(log_p.exp() * log_p).sum())
            probs.append(log_p.exp())
            x = embedding(torch.tensor([index]))
        return Decision(tuple(chosen), torch.stack(log_probs).sum(), torch.stack(entropies).sum(), tuple(probs))


@METHODS.register("enas")
class ENAS(OneShotMethod):
    """Controller-sampled single-path training of the weights, REINFORCE for the controller."""

    hidden: ClassVar[int] = 32
    controller_lr: ClassVar[float] = 3.5e-4  # ENAS' Adam learning rate
    entropy_weight: ClassVar[float] = 1e-4  # ENAS: the sample entropy is added to the reward
    baseline_decay: ClassVar[float] = 0.95  # ENAS: 0.99; a few hundred steps here

    def __init__(self, space: NB201Space, data: ImageDataset, config: OneShotConfig) -> None:
        super().__init__(space, data, config)
        self.controller = Controller(self.decisions(), self.hidden)
        self.controller_optimizer = torch.optim.Adam(self.controller.parameters(), lr=self.controller_lr)
        self.baseline: float | None = None

    def decisions(self) -> Sequence[Sequence[Any]]:
        """The options of each decision the controller takes in turn (NB201: each edge's operations)."""
        return self.space.edge_ops

    def subnet(self, path: Path) -> Any:
        """What the supernet runs for the controller's choices `path` (NB201: the path itself)."""
        return path

    def step(self, x_train: Tensor, y_train: Tensor, x_val: Tensor, y_val: Tensor) -> float:
        with torch.no_grad():
            path = self.controller().path
        loss = self.criterion(self.model(x_train, path=self.subnet(path)), y_train)
        self.weight_update(loss)
        self.reinforce(lambda p: self.batch_accuracy(p, x_val, y_val))
        return float(loss.detach())

    def batch_accuracy(self, path: Path, x: Tensor, y: Tensor) -> float:
        """The fraction of `x` the subnet `path` classifies right (shared weights, current mode)."""
        with torch.no_grad():
            return float((self.model(x, path=self.subnet(path)).argmax(1) == y).float().mean())

    def reinforce(self, reward_of: Callable[[Path], float]) -> float:
        """One REINFORCE step of the controller on a path it samples; returns the reward."""
        decision = self.controller()
        reward = reward_of(decision.path) + self.entropy_weight * float(decision.entropy.detach())
        if self.baseline is None:
            self.baseline = reward
        self.baseline = self.baseline_decay * self.baseline + (1.0 - self.baseline_decay) * reward
        self.controller_optimizer.zero_grad(set_to_none=True)
        (-decision.log_prob * (reward - self.baseline)).backward()
        self.controller_optimizer.step()
        return reward

    def drawn(self, candidates: int) -> list[Path]:
        """The controller's greedy choice and `candidates` - 1 samples (seeded by the config's
        seed), duplicates dropped."""
        generator = torch.Generator().manual_seed(self.config.seed)
        with torch.no_grad():
            drawn = [self.controller(greedy=True).path] + [self.controller(generator).path for _ in range(candidates - 1)]
        return list(dict.fromkeys(drawn))

    def answer(self, candidates: int = 10) -> NB201Arch:
        """The best by inherited accuracy of the greedy cell and `candidates` - 1 sampled ones."""
        paths = self.drawn(candidates)
        scores = [inherited_accuracy(self.model, p, self.data) for p in paths]
        return NB201Arch(self.model.ops_of(paths[int(np.argmax(scores))]))

    def arch_state(self) -> dict[str, Any]:
        return {
            "controller": {k: v.detach().clone() for k, v in self.controller.state_dict().items()},
            "optimizer": self.controller_optimizer.state_dict(),
            "baseline": self.baseline,
        }

    def load_arch_state(self, state: dict[str, Any]) -> None:
        self.controller.load_state_dict(state["controller"])
        self.controller_optimizer.load_state_dict(state["optimizer"])
        self.baseline = state["baseline"]
