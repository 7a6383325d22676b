"""The shared forward pass over a real batch that activation-based proxies read (nwot, rbflex).

One forward, in inference mode, with a hook on every activation module (ReLU family, GELU, SiLU,
...). Each hook folds its output into small N x N accumulators right away, so no activation is
kept. An activation's input that feeds several activation modules (an NB201 node feeding three
edges) gives identical codes; it is folded once and weighted by its multiplicity.

For every activation a > 0 iff its input > 0 (ReLU, GELU, SiLU, ELU, LeakyReLU, ...), so the
codes can be read from the output, which also works for in-place modules.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import torch
from torch import nn

from nas_lib.proxies.base import ScoringContext

ACTIVATIONS: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.ELU,
    nn.CELU,
    nn.SELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Hardswish,
)
# what a proxy can declare in `Proxy.needs` to get it from the shared activation pass
HAMMING_CODES = "activation_codes"  # NASWOT's kernel of binary codes
RBF_TERMS = "activation_gram"  # min-max normalised Gram terms and the head's input (RBFleX)
ACTIVATION_NEEDS = frozenset({HAMMING_CODES, RBF_TERMS})
NONNEGATIVE: tuple[type[nn.Module], ...] = (nn.ReLU, nn.ReLU6)
# Distinct activation inputs remembered for de-duplication; an NB201 cell has three. An input
# that falls out is folded again if seen later: slower, never wrong (the reference held here
# keeps its memory from being reused by another tensor while its key is remembered).
_DEDUP_WINDOW = 4


@dataclass
class ActivationStats:
    """N x N accumulators of one forward pass.

    Attributes:
        hamming_kernel: sum over activations of (units - Hamming distance of the binary codes),
            i.e. NASWOT's K.
        units: number of activation units folded (with multiplicity).
        gram: sum over activations of Xn Xn^T, Xn = outputs min-max normalised per unit.
        sq_norms: the diagonal terms ||Xn_i||^2 (for squared distances).
        raw_sum, raw_sumsq, raw_count: per-image sums of the raw outputs (for gamma detection).
        last_input: the input of the final linear layer (N, F), float64.
    """

    hamming_kernel: torch.Tensor | None = None
    units: int = 0
    gram: torch.Tensor | None = None
    sq_norms: torch.Tensor | None = None
    raw_sum: torch.Tensor | None = None
    raw_sumsq: torch.Tensor | None = None
    raw_count: int = 0
    last_input: torch.Tensor | None = None
    layers: int = 0
    _seen: OrderedDict = field(default_factory=OrderedDict)


def flat_rows(t: torch.Tensor) -> torch.Tensor:
    """(N, ...) -> (N, D) without a copy when the layout allows (column order is irrelevant to
    every Gram matrix taken here)."""
    if t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous():
        return t.permute(0, 2, 3, 1).reshape(t.shape[0], -1)
    return t.reshape(t.shape[0], -1)


def _code_terms(rows: torch.Tensor, nonnegative: bool) -> dict[str, torch.Tensor | int]:
    d = rows.shape[1]
    if nonnegative:
        # outputs of the ReLU family are >= 0, so sign() is the 0/1 code in one float32 pass;
        # 0/1 products of at most 2**24 units are exact in float32.
        codes = rows.sign()
        g = (codes @ codes.T).to(torch.float64)
        ones = torch.diagonal(g)
        # matches of ones plus matches of zeros: c c^T + (1-c)(1-c)^T = D - r_i - r_j + 2 c c^T
        return {"hamming_kernel": d - ones[:, None] - ones[None, :] + 2.0 * g, "units": d}
    signs = torch.where(rows > 0, 1.0, -1.0).to(torch.float32)
    # with s = 2c - 1: c c^T + (1-c)(1-c)^T = (D + s s^T) / 2
    return {"hamming_kernel": 0.5 * (d + (signs @ signs.T).to(torch.float64)), "units": d}


def _rbf_terms(rows: torch.Tensor) -> dict[str, torch.Tensor | int]:
    x = rows.to(torch.float32)
    lo, hi = torch.aminmax(x, dim=0, keepdim=True)
    inv = 1.0 / torch.where(hi > lo, hi - lo, torch.ones_like(hi))  # constant units add no distance
    xn = torch.addcmul(-lo * inv, x, inv)  # (x - lo) / span in one pass
    g = (xn @ xn.T).to(torch.float64)
    return {
        "gram": g,
        "sq_norms": torch.diagonal(g).clone(),
        "raw_sum": x.sum(1).double(),
        "raw_sumsq": torch.linalg.vector_norm(x, dim=1).double() ** 2,
        "raw_count": rows.shape[1],
    }


def _add_terms(stats: ActivationStats, terms: dict[str, torch.Tensor | int], weight: int) -> None:
    for name, value in terms.items():
        current = getattr(stats, name)
        setattr(stats, name, weight * value if current is None else current + weight * value)


def final_linear(model: nn.Module) -> nn.Module | None:
    """The classifier (`model.classifier`, else the last nn.Linear)."""
    head = getattr(model, "classifier", None)
    if isinstance(head, nn.Module):
        return head
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None


def activation_stats(ctx: ScoringContext) -> ActivationStats:
    """The shared activation pass of `ctx` (computed once)."""
    return ctx.shared("activations", lambda: _activation_pass(ctx))


def _activation_pass(ctx: ScoringContext) -> ActivationStats:
    model = ctx.model()
    x, _ = ctx.batch()
    stats = ActivationStats()
    needs = ctx.needs & ACTIVATION_NEEDS or frozenset({HAMMING_CODES})  # nothing declared: the codes
    want_codes, want_rbf = HAMMING_CODES in needs, RBF_TERMS in needs

    def on_activation(module: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
        source = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else out
        entry = stats._seen.get(id(source))
        if entry is not None:  # same input as an earlier activation: same codes, same terms
            entry[1] += 1
            stats._seen.move_to_end(id(source))
            return
        rows = flat_rows(out.detach())
        terms: dict[str, torch.Tensor | int] = {}
        if want_codes:
            terms.update(_code_terms(rows, isinstance(module, NONNEGATIVE)))
        if want_rbf:
            terms.update(_rbf_terms(rows))
        stats._seen[id(source)] = [source, 1, terms]
        stats.layers += 1
        while len(stats._seen) > _DEDUP_WINDOW:
            _flush(stats, stats._seen.popitem(last=False)[1])

    def on_head(module: nn.Module, inputs: tuple) -> None:
        stats.last_input = flat_rows(inputs[0].detach()).to(torch.float64)

    handles = [m.register_forward_hook(on_activation) for m in model.modules() if isinstance(m, ACTIVATIONS)]
    head = final_linear(model)
    if head is not None:
        handles.append(head.register_forward_pre_hook(on_head))
    try:
        with torch.inference_mode():
            logits = model(x)
        if not torch.isfinite(logits).all():  # a network that yields NaN/inf is broken
            raise FloatingPointError("the network's output is not finite")
    finally:
        for h in handles:
            h.remove()
    while stats._seen:
        _flush(stats, stats._seen.popitem(last=False)[1])
    return stats


def _flush(stats: ActivationStats, entry: list) -> None:
    """Adds an activation's terms, times the number of activations that shared its input."""
    _source, count, terms = entry
    _add_terms(stats, terms, count)
