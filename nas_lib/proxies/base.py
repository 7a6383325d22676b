"""The proxy contract: a `Proxy` turns (space, spec, batch, seed) into one `ProxyResult`.

A failure (a network that cannot be built, an out-of-memory error, a proxy that raises, a
non-finite score) becomes a failed `ProxyResult` where it happens, in `ScoringContext.run`;
everything downstream reads the result's ``state`` and never re-derives it.

A `ScoringContext` holds what several proxies of one network can share: the model built under
the seed, its forward pass with activation codes, its cross-entropy gradients. Each shared item
is computed once, on first use, and its cost is recorded, so a proxy's reported seconds are what
it would have cost alone (its own work plus every shared item it used), whichever proxy happened
to trigger the shared work.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar, cast

import torch
from torch import nn

from nas_lib.failures import describe_failure, is_out_of_memory
from nas_lib.registry import Registry
from nas_lib.space.base import SearchSpace

V = TypeVar("V")

PROXIES: Registry[type[Proxy]] = Registry("proxy")


ProxyState = Literal["ok", "failed"]


@dataclass(frozen=True)
class ProxyResult:
    """One proxy score of one architecture: what crosses the scoring seam, from a proxy to the
    evaluation store (`nas_lib.evaluation.EvalRecord`), for every outcome.

    Attributes:
        value: the score (NaN when failed); compare with the proxy's `higher_is_better`.
        seconds: cost of the score alone, shared passes included.
        state: ``"ok"`` or ``"failed"``.
        error: why it failed (`nas_lib.failures.describe_failure`), else None.
    """

    value: float
    seconds: float
    state: ProxyState
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.state == "ok"

    @classmethod
    def failure(cls, reason: BaseException | str, seconds: float = 0.0) -> ProxyResult:
        """The failed result: NaN, with ``reason`` (an exception is described as ``<kind>: <message>``)."""
        error = reason if isinstance(reason, str) else describe_failure(reason)
        return cls(math.nan, seconds, "failed", error)


class _Failure:
    """A shared computation that raised: replayed to every proxy that asks for it."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def set_bn_momentum_zero(model: nn.Module) -> None:
    """Train-mode forwards then use batch statistics without moving the running statistics,
    so the order in which proxies run cannot change what later (eval-mode) proxies see."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = 0.0


def build_network(space: SearchSpace, spec: Any, batch: tuple[torch.Tensor, torch.Tensor], seed: int) -> nn.Module:
    """The network every proxy of (spec, batch, seed) scores: `spec` built under
    `torch.manual_seed(seed)` for the batch's input shape and at least 10 classes, on CPU.
    A process that builds it ahead (`nas_lib.bench.prefetch`) gets the same weights."""
    num_classes = int(batch[1].max().item()) + 1 if batch[1].numel() else 10
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        input_shape = cast("tuple[int, int, int]", tuple(batch[0].shape[1:]))  # an image batch: (N, C, H, W)
        return space.build_model(spec, input_shape=input_shape, num_classes=max(num_classes, 10))


class ScoringContext:
    """Everything proxies of one (space, spec, batch, seed, device) can share.

    Args:
        space: the search space that builds the model.
        spec: the architecture.
        batch: images (N, C, H, W) float32 and integer labels (N,).
        seed: seeds weight initialisation and any random inputs.
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        wanted: names of the proxies that will be asked, so shared passes compute only what
            is needed (e.g. activation gradients only when fisher is among them).
        model: an already built network to score instead of building `spec` (it must be
            initialised as the caller wants; its BN momentum is set to 0 so scoring leaves
            its running statistics alone, and it is moved to `device` and channels-last).
    """

    def __init__(
        self,
        space: SearchSpace,
        spec: Any,
        batch: tuple[torch.Tensor, torch.Tensor],
        seed: int,
        device: str = "cpu",
        wanted: frozenset[str] | set[str] = frozenset(),
        model: nn.Module | None = None,
    ) -> None:
        self.space = space
        self.spec = spec
        self.seed = int(seed)
        self.device = torch.device(device)
        self.wanted = frozenset(wanted)
        # the shared items the wanted proxies declare (`Proxy.needs`), e.g. "stage_features"
        self.needs = frozenset().union(*(PROXIES.get(n).needs for n in self.wanted if n in PROXIES))
        self._batch = batch
        self._channels_last = batch[0].dim() == 4
        self._memo: dict[str, Any] = {}
        self._cost: dict[str, float] = {}
        self._deps: dict[str, set[str]] = {}  # shared items each shared item used
        self._used: set[str] = set()
        self._nested = 0.0
        if model is not None:
            self._memo["model"] = self._prepare(model)
            self._cost["model"], self._deps["model"] = 0.0, set()

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self._batch[0].shape[1:])  # type: ignore[return-value]

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch on the scoring device."""

        def move() -> tuple[torch.Tensor, torch.Tensor]:
            x = self._batch[0].to(self.device, torch.float32)
            if self._channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            return x, self._batch[1].to(self.device, torch.long)

        return self.shared("batch", move)

    def gaussian_batch(self) -> torch.Tensor:
        """Standard normal inputs of the batch's shape, drawn under `seed`, on the scoring device
        (for proxies whose paper scores random inputs instead of images)."""

        def draw() -> torch.Tensor:
            gen = torch.Generator().manual_seed(self.seed)
            x = torch.randn(tuple(self._batch[0].shape), generator=gen).to(self.device)
            return x.contiguous(memory_format=torch.channels_last) if self._channels_last else x

        return self.shared("gaussian_batch", draw)

    def model(self) -> nn.Module:
        """The network initialised under `torch.manual_seed(seed)`, in train mode, on device.

        Proxies must not change its weights; one that needs other weights deep-copies it.
        """
        return self.shared("model", self._build)

    def _build(self) -> nn.Module:
        return self._prepare(build_network(self.space, self.spec, self._batch, self.seed))

    def reinitialised_model(self, name: str, init: Callable[[nn.Module], None]) -> nn.Module:
        """A second network, the shared one with weights drawn again by `init` under the seed
        (for proxies whose paper fixes an initialisation), built once per `name`."""

        def build() -> nn.Module:
            model = copy.deepcopy(self.model())
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                init(model)
            return model

        return self.shared(f"model:{name}", build)

    def _prepare(self, model: nn.Module) -> nn.Module:
        set_bn_momentum_zero(model)
        model = model.to(self.device).train()
        if self._channels_last:
            # NHWC convolutions and pools are 1.5-2.5x faster on CPU here, same maths
            model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stub lacks memory_format
        return model

    def shared(self, key: str, compute: Callable[[], V]) -> V:
        """Returns the shared item `key`, computing it (and recording its cost) on first use."""
        if key not in self._memo:
            start, outer_nested, outer_used = time.perf_counter(), self._nested, self._used
            self._nested, self._used = 0.0, set()
            try:
                self._memo[key] = compute()
            except Exception as exc:  # replayed to each proxy that needs it
                self._memo[key] = _Failure(exc)
            finally:
                elapsed = time.perf_counter() - start
                self._cost[key] = elapsed - self._nested  # exclusive of nested shared items
                self._deps[key] = self._used
                self._nested, self._used = outer_nested + elapsed, outer_used
        self._used.add(key)
        self._used |= self._deps[key]
        value = self._memo[key]
        if isinstance(value, _Failure):
            raise value.exc
        return value

    def costs(self) -> dict[str, float]:
        """Seconds spent on each shared item so far (exclusive of the items it used)."""
        return dict(self._cost)

    def value(self, proxy: Proxy) -> float:
        """The raw score of `proxy` here, computed once (an ensemble reuses its members')."""
        return self.shared(f"proxy:{proxy.name}", lambda: float(proxy.compute(self)))

    def run(self, proxy: Proxy) -> ProxyResult:
        """Scores `proxy` here; never raises for a bad architecture."""
        self._used, self._nested = set(), 0.0
        start = time.perf_counter()
        error = None
        try:
            value = self.value(proxy)
            if not math.isfinite(value):
                error = f"non-finite score {value}"
        except Exception as exc:  # any failure of a bad architecture becomes a failed result, here and only here
            error = describe_failure(exc)
            if is_out_of_memory(exc) and self.device.type == "cuda":
                torch.cuda.empty_cache()
        own = time.perf_counter() - start - self._nested
        seconds = own + sum(self._cost.get(k, 0.0) for k in self._used)
        if error is not None:
            return ProxyResult.failure(error, seconds)
        return ProxyResult(value, seconds, "ok")


class Proxy:
    """A training-free score of an architecture.

    Subclasses set `name`, `version` (enters cache keys: bump it when the maths changes),
    `higher_is_better`, and implement `compute(ctx)`. `deterministic` is False only for
    measured quantities (latency).
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    higher_is_better: ClassVar[bool] = True
    deterministic: ClassVar[bool] = True
    requires: ClassVar[frozenset[str]] = frozenset()  # other proxies this one combines
    needs: ClassVar[frozenset[str]] = frozenset()  # what it reads from the shared passes
    population: ClassVar[bool] = False  # True: a population is ranked by rank-aggregating `requires`

    def compute(self, ctx: ScoringContext) -> float:
        """The raw score, using `ctx` for the model, the batch and shared passes."""
        raise NotImplementedError

    def score(self, space: SearchSpace, spec: Any, batch: tuple[torch.Tensor, torch.Tensor], seed: int, device: str = "cpu") -> ProxyResult:
        """Scores one architecture; a failure becomes ``ProxyResult(nan, s, "failed", reason)``.

        Args:
            space: the search space that builds `spec`.
            spec: the architecture.
            batch: (images float32 NCHW, labels int64).
            seed: seeds the weight initialisation (and random inputs where the proxy uses any).
            device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        """
        try:
            ctx = ScoringContext(space, spec, batch, seed, device, wanted={self.name} | set(self.requires))
        except Exception as exc:  # e.g. an unknown device string
            return ProxyResult.failure(exc)
        return ctx.run(self)

    def cache_key(self) -> str:
        """``name@version``: what a cache of scores must key on besides the architecture."""
        return f"{self.name}@{self.version}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, version={self.version!r})"


def register_proxy(cls: type[Proxy]) -> type[Proxy]:
    """Class decorator: registers a Proxy subclass under its `name`."""
    PROXIES.add(cls.name, cls)
    return cls
