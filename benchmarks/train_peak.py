"""How far training runs from what this machine can do, and what the speed-ups of issue #24 give,
all measured in one process.

Part 1 (peak): the FLOP/s of a dense fp32 matrix product and of a 3x3 convolution (forward and
backward) on this process's threads, the best of a few shapes: the practical peak the networks
are set against. bf16 matrix products are timed too (a CPU without native bf16 emulates them).

Part 2 (block families and whole networks): one training step (forward, backward, AdamW) at the
v2 table's protocol (16x16 px, batch 64): per block family (4 residual blocks of one family, as
in `train_speed.py`) and for architectures sampled from the default pipeline space. FLOPs per
step are forward + backward as `count_training_flops` counts them (attention included). Printed:
images/s, GFLOP/s and the fraction of the part-1 peak. Each network runs its variants in turn,
``--repeats`` times, so machine load hits them alike; ratios are per pair, against ``before``:

- ``before``: the ViT window attention as it was before issue #24 (kept below);
- ``after``: the library as it is (the default, bit-identical numerics);
- ``channels_last``: ``after`` with NHWC images and conv weights (opt-in: `TrainConfig.channels_last`);
- ``inductor``: ``after`` under ``torch.compile`` (opt-in: `TrainConfig.compile`); its compile
  time is printed apart and left out of the step time.

Part 0 (``--identical N``): the first N sampled architectures trained by `train_and_evaluate`
(one epoch of 256 CIFAR-10 images at 16 px, batch 64) with the attention before and after:
the validation histories must be equal, bit for bit.

Part 4 (``--profile``): `torch.profiler` over one training step of each network (``after``),
self CPU time by kind of op: matrix products, convolutions, attention, copies and fills, the
rest (element-wise, norms, the optimiser).

Part 3 (threads or processes): the same network trained by one process on all threads against
one single-threaded process per thread, each on its own copy: total images/s of each.

    PYTHONPATH=. .venv/bin/python benchmarks/train_peak.py [--archs 4] [--repeats 3] [--steps 2] [--threads 1] [--parallel 2] \
        [--variants before,after,channels_last,inductor] [--compile-archs 2] [--families cnn,vit,mamba] [--out peak.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from scipy import stats
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_speed import BLOCK_ALONE, default_space, sample_archs  # noqa: E402

from nas_lib.blocks.vit import WindowAttentionBlock, balanced_window  # noqa: E402
from nas_lib.space.stats import count_training_flops  # noqa: E402

SIDE, BATCH, CLASSES = 16, 64, 10  # the v2 table's protocol
SHAPE = (3, SIDE, SIDE)


def attend_before(self: WindowAttentionBlock, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """`WindowAttentionBlock.attend` before issue #24: q, k, v split after a permute."""
    b, _, c = x.shape
    ws = balanced_window(self.window_size, h, w)
    pad_h, pad_w = (-h) % ws, (-w) % ws
    grid = x.view(b, h, w, c)
    if pad_h or pad_w:
        grid = F.pad(grid, (0, 0, 0, pad_w, 0, pad_h))
    hp, wp = h + pad_h, w + pad_w
    windows = grid.view(b, hp // ws, ws, wp // ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws, c)
    head_dim = self.qkv_dim // self.num_heads
    qkv = self.qkv(windows).view(windows.shape[0], ws * ws, 3, self.num_heads, head_dim).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    out = F.scaled_dot_product_attention(q, k, v)
    out = self.proj(out.transpose(1, 2).reshape(windows.shape[0], ws * ws, self.qkv_dim))
    out = out.view(b, hp // ws, wp // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, c)
    return out[:, :h, :w].reshape(b, h * w, c)


ATTEND_AFTER = WindowAttentionBlock.attend


@contextlib.contextmanager
def attention(variant: str) -> Iterator[None]:
    WindowAttentionBlock.attend = attend_before if variant == "before" else ATTEND_AFTER  # type: ignore[method-assign]
    try:
        yield
    finally:
        WindowAttentionBlock.attend = ATTEND_AFTER  # type: ignore[method-assign]


def best_seconds(fn: Callable[[], object], repeats: int = 3) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def peak(repeats: int) -> dict:
    """Part 1: the best matmul and convolution FLOP/s of a few shapes (fp32), and bf16 matmul."""
    out: dict = {"matmul": {}, "conv": {}, "matmul_bf16": {}}
    for m, k, n in [(1024, 1024, 1024), (16384, 64, 256), (16384, 256, 64)]:
        a, b = torch.randn(m, k), torch.randn(k, n)
        out["matmul"][f"{m}x{k}x{n}"] = 2 * m * k * n / best_seconds(lambda a=a, b=b: a @ b, repeats)
        a16, b16 = a.bfloat16(), b.bfloat16()
        out["matmul_bf16"][f"{m}x{k}x{n}"] = 2 * m * k * n / best_seconds(lambda a=a16, b=b16: a @ b, repeats)
    for channels, side in [(64, 16), (128, 8)]:
        conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        x = torch.randn(BATCH, channels, side, side, requires_grad=True)
        flops = 3 * 2 * BATCH * channels * channels * 9 * side * side  # forward, input and weight gradients
        out["conv"][f"{channels}ch_{side}px_fwd+bwd"] = flops / best_seconds(lambda conv=conv, x=x: conv(x).sum().backward(), repeats)
    out["peak"] = max(max(out["matmul"].values()), max(out["conv"].values()))
    return out


def build(arch: str, space: object, channels_last: bool = False) -> nn.Module:
    torch.manual_seed(0)
    model = space.build_model(space.from_string(arch), SHAPE, CLASSES)
    return model.to(memory_format=torch.channels_last) if channels_last else model  # type: ignore[call-overload]


class Stepper:
    """One variant of one network: a training step on a fixed batch, ready to time."""

    def __init__(self, arch: str, space: object, variant: str, x: torch.Tensor, y: torch.Tensor) -> None:
        self.variant = variant
        self.model = build(arch, space, channels_last=variant == "channels_last")
        self.x = x.contiguous(memory_format=torch.channels_last) if variant == "channels_last" else x
        self.y = y
        self.forward = torch.compile(self.model, backend="inductor") if variant == "inductor" else self.model
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=3e-3, weight_decay=5e-4)
        self.setup_seconds = self.seconds()  # the first step: kernels, allocator and, for inductor, the compile

    def step(self) -> None:
        loss = F.cross_entropy(self.forward(self.x), self.y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def seconds(self, steps: int = 1) -> float:
        with attention(self.variant):
            start = time.perf_counter()
            for _ in range(steps):
                self.step()
            return (time.perf_counter() - start) / steps


def ratio_stats(ratios: list[float]) -> dict:
    """Mean ± standard error of the paired speed-ups, its 95% CI (t) and the minimum detectable
    difference (80% power, two-sided 5%: (t_0.975 + z_0.8) x SE)."""
    n = len(ratios)
    mean = statistics.fmean(ratios)
    if n < 2:
        return {"n": n, "mean": mean}
    se = statistics.stdev(ratios) / n**0.5
    t = float(stats.t.ppf(0.975, n - 1))
    return {"n": n, "mean": mean, "se": se, "ci95": [mean - t * se, mean + t * se], "mdd": (t + 0.8416) * se}


def measure(name: str, arch: str, space: object, variants: list[str], args: argparse.Namespace, peak_flops: float) -> dict:
    """Part 2 for one network: every variant timed in turn, ``args.repeats`` rounds."""
    x, y = torch.randn(BATCH, *SHAPE), torch.randint(0, CLASSES, (BATCH,))
    flops = count_training_flops(build(arch, space), SHAPE, BATCH)
    steppers = {v: Stepper(arch, space, v, x, y) for v in variants}
    times: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(args.repeats):
        for v, stepper in steppers.items():
            times[v].append(stepper.seconds(args.steps))
    row: dict = {"name": name, "arch": arch, "train_gflop_per_step": flops / 1e9, "variants": {}}
    base = variants[0]
    for v in variants:
        sec = statistics.median(times[v])
        ratios = [b / t for b, t in zip(times[base], times[v])]
        row["variants"][v] = {
            "images_per_s": BATCH / sec,
            "gflop_per_s": flops / sec / 1e9,
            "fraction_of_peak": flops / sec / peak_flops,
            "speedup_vs_" + base: statistics.median(ratios),
            "speedup_min_max": [min(ratios), max(ratios)],
            "speedup_pairs": ratio_stats(ratios),
            "first_step_s": steppers[v].setup_seconds,
        }
    cells = "  ".join(
        f"{v} {r['images_per_s']:6.1f} img/s {r['fraction_of_peak']:5.1%} x{r['speedup_vs_' + base]:.2f}" for v, r in row["variants"].items()
    )
    print(f"  {name:<8} {flops / 1e9:6.2f} GFLOP/step  {cells}", flush=True)
    return row


def identical(archs: list[str], space: object, images: str) -> list[dict]:
    """Part 0: the same trainings with the attention before and after; their histories."""
    from nas_lib.data.datasets import load_dataset
    from nas_lib.train import TrainConfig, train_and_evaluate

    data = load_dataset("cifar10_npz", images, image_size=SIDE, max_items=320, seed=0)
    rows = []
    for arch in archs:
        histories = {}
        for variant in ("before", "after"):
            with attention(variant):
                result = train_and_evaluate(build(arch, space), data, TrainConfig(epochs=1, batch_size=BATCH, patience=1))
            histories[variant] = result.history
        rows.append({"arch": arch, "equal": histories["before"] == histories["after"], "history": histories["after"]})
        print(f"  histories equal: {rows[-1]['equal']}  {histories['after']}  {arch[:90]}", flush=True)
    return rows


OP_KINDS = {  # aten op name -> kind; anything else is "other"
    "matmul": ("aten::mm", "aten::addmm", "aten::bmm"),
    "conv": ("aten::mkldnn_convolution", "aten::convolution_backward", "aten::_convolution", "aten::thnn_conv2d"),
    "attention": ("aten::_scaled_dot_product_flash_attention_for_cpu", "aten::_scaled_dot_product_flash_attention_for_cpu_backward"),
    "copies": ("aten::copy_", "aten::cat", "aten::fill_", "aten::zero_", "aten::clone", "aten::constant_pad_nd", "aten::stack"),
}


def profile_kinds(networks: list[tuple[str, str]], space: object) -> dict:
    """Part 4: share of self CPU time by kind of op, summed over one step of each network."""
    from torch.profiler import ProfilerActivity, profile

    x, y = torch.randn(BATCH, *SHAPE), torch.randint(0, CLASSES, (BATCH,))
    totals: dict[str, float] = {}
    for _, arch in networks:
        stepper = Stepper(arch, space, "after", x, y)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            stepper.step()
        for event in prof.key_averages():
            kind = next((k for k, names in OP_KINDS.items() if event.key in names), "other")
            totals[kind] = totals.get(kind, 0.0) + event.self_cpu_time_total
    whole = sum(totals.values())
    shares = {k: v / whole for k, v in sorted(totals.items(), key=lambda kv: -kv[1])}
    print("  " + "  ".join(f"{k} {v:.1%}" for k, v in shares.items()), flush=True)
    return shares


def _worker(arch: str, threads: int, steps: int, ready: object, queue: object) -> None:
    torch.set_num_threads(threads)
    stepper = Stepper(arch, default_space(), "after", torch.randn(BATCH, *SHAPE), torch.randint(0, CLASSES, (BATCH,)))
    ready.wait()  # type: ignore[attr-defined]
    queue.put(stepper.seconds(steps))  # type: ignore[attr-defined]


def threads_or_processes(arch: str, threads: int, steps: int) -> dict:
    """Part 3: images/s of one ``threads``-thread process against ``threads`` 1-thread processes."""
    out = {}
    for procs, per in [(1, threads), (threads, 1)]:
        ctx = mp.get_context("spawn")
        ready, queue = ctx.Barrier(procs + 1), ctx.Queue()
        workers = [ctx.Process(target=_worker, args=(arch, per, steps, ready, queue)) for _ in range(procs)]
        for w in workers:
            w.start()
        ready.wait()
        seconds = [queue.get() for _ in workers]
        for w in workers:
            w.join()
        out[f"{procs}x{per}"] = sum(BATCH / s for s in seconds)
        print(f"  {procs} process(es) x {per} thread(s): {out[f'{procs}x{per}']:.1f} img/s in all", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", type=int, default=4, help="architectures sampled from the default space")
    parser.add_argument("--families", default=",".join(BLOCK_ALONE), help="block families ('' skips them)")
    parser.add_argument("--variants", default="before,after,channels_last,inductor", help="the first is the baseline of the ratios")
    parser.add_argument("--compile-archs", type=int, default=2, help="networks (families first) that also run the inductor variant")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2, help="training steps per timing")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of parts 1 and 2 (the table trains with 1 per worker)")
    parser.add_argument(
        "--parallel", type=int, default=2, help="part 3: one process of this many threads against this many 1-thread processes (< 2 skips it)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true", help="part 4: time by kind of op")
    parser.add_argument("--identical", type=int, default=0, help="part 0: architectures trained before/after, histories compared")
    parser.add_argument("--images", default="../shared/data/cifar10/cifar10_5000.npz", help="part 0's CIFAR-10 .npz")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    report: dict = {"args": vars(args) | {"out": str(args.out)}, "torch": torch.__version__, "threads": torch.get_num_threads()}
    report["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    print(f"peak on {args.threads} thread(s), {report['cpu_capability']}:")
    report["peak"] = peak(args.repeats)
    for kind in ("matmul", "matmul_bf16", "conv"):
        print(f"  {kind:<12} " + "  ".join(f"{k} {v / 1e9:6.1f} GFLOP/s" for k, v in report["peak"][kind].items()))
    space, variants = default_space(), args.variants.split(",")
    networks = [(f, " > ".join([BLOCK_ALONE[f]] * 4)) for f in args.families.split(",") if f]
    networks += [(f"arch{i}", a) for i, a in enumerate(sample_archs(space, args.archs, args.seed))]
    if args.identical:
        print("same training before and after (part 0):")
        report["identical"] = identical(sample_archs(space, args.identical, args.seed), space, args.images)
    print(f"one training step at {SIDE}x{SIDE} px, batch {BATCH}; ratios against {variants[0]}:")
    report["networks"] = []
    for i, (name, arch) in enumerate(networks):
        chosen = [v for v in variants if v != "inductor" or i < args.compile_archs]
        report["networks"].append(measure(name, arch, space, chosen, args, report["peak"]["peak"]))
        save(report, args.out)  # after every network: a run cut short keeps what it measured
    if args.profile:
        print("self CPU time by kind of op (part 4):")
        report["profile"] = profile_kinds(networks, space)
    if args.parallel > 1:
        print(f"threads or processes ({networks[-1][0]}):")
        report["processes"] = threads_or_processes(networks[-1][1], args.parallel, args.steps * args.repeats)
    save(report, args.out)


def save(report: dict, out: Path | None) -> None:
    if out:
        out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
