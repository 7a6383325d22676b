"""Training throughput of our loop against a plain PyTorch loop, and of each hybrid block family
against a plain residual CNN of equal FLOPs, all measured in one process.

Part 1 (loop overhead): architectures sampled from the default pipeline space (depth-stratified,
seeded) are trained at each image size twice per repeat, alternately: once by
`nas_lib.train.train_and_evaluate` and once by `plain_loop` below (the same network weights,
batches, AdamW, cosine schedule and one validation pass per epoch; nothing else). Printed:
images/s of each and the median of the per-pair ratios ours/plain (1.0 = no overhead).

Part 2 (block cost at 32x32): networks made of one block family only (4 residual blocks of the
default space's choices, stride 1, so every block works at full resolution), each against a
plain residual CNN (3x3 stem, 4 basic blocks, GAP, linear) whose width gives the closest forward
FLOPs (`count_flops`, attention included). Printed: milliseconds per image of one training step
(forward, backward, AdamW) and the ratio block network / plain CNN.

    PYTHONPATH=. .venv/bin/python benchmarks/train_speed.py --images ../shared/data/cifar10/cifar10_5000.npz \
        [--sizes 16,32] [--archs 3] [--train-images 256] [--epochs 1] [--batch-size 64] \
        [--repeats 3] [--threads 1] [--device cpu] [--option precision=fp32 ...] [--out result.json]

On a GPU, ``--option`` measures one piece of the fast path at a time (``precision=fp32``,
``channels_last=false``, ``check_every=1``, ``compile=inductor``); the plain loop stays fp32.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nas_lib.data.datasets import ImageDataset, load_dataset  # noqa: E402
from nas_lib.space import HybridConstraints, get_space  # noqa: E402
from nas_lib.space.stats import count_flops, count_parameters  # noqa: E402
from nas_lib.train import TrainConfig, resolve_device, train_and_evaluate  # noqa: E402
from tasks.config import PipelineConfig  # noqa: E402

LR, WEIGHT_DECAY = 3e-3, 5e-4
BLOCK_ALONE = {
    "cnn": "residual:cnn(planes=32,stride=1,cardinality=1,base_width=32)",
    "vit": "residual:vit(num_heads=4,mlp_ratio=4,qkv_dim=192,window_size=7)",
    "mamba": "residual:mamba(d_state=8,expand=1,d_conv=2)",
}


def default_space() -> object:
    """The hybrid space a default pipeline run searches (before pruning)."""
    s = PipelineConfig().space
    return get_space("hybrid", constraints=HybridConstraints.from_dict({**s.constraints, "min_depth": s.min_depth, "max_depth": s.max_depth}))


def sample_archs(space: object, n: int, seed: int) -> list[str]:
    """``n`` distinct architectures, depths taken in turn (uniform within a depth)."""
    rng = np.random.default_rng(seed)
    depths = [d for d, count in space.size_by_depth().items() if count]
    out: list[str] = []
    while len(out) < n:
        arch = space.to_string(space.sample(rng, depth=depths[len(out) % len(depths)]))
        out += [arch] if arch not in out else []
    return out


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: str) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def plain_loop(model: nn.Module, data: ImageDataset, epochs: int, batch_size: int, device: str, seed: int = 0) -> float:
    """The minimal loop: fp32, AdamW + cosine, the same shuffles, one validation pass an epoch."""
    model.to(device)
    x, y, vx, vy = (t.to(device) for t in (data.train_x, data.train_y, data.val_x, data.val_y))
    steps = math.ceil(len(y) / batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * steps)
    shuffler = torch.Generator().manual_seed(seed)
    correct = torch.zeros((), device=device)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(y), generator=shuffler).to(device)
        for step in range(steps):
            idx = order[step * batch_size : (step + 1) * batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        model.eval()
        with torch.no_grad():
            correct = sum((model(vx[i : i + batch_size]).argmax(1) == vy[i : i + batch_size]).sum() for i in range(0, len(vy), batch_size))
    return float(correct) / len(vy)


def paired(ours: Callable[[], object], plain: Callable[[], object], repeats: int, device: str) -> tuple[float, float, float]:
    """Median seconds of each and median per-pair ratio ours/plain, alternating the two."""
    a, b = [], []
    for _ in range(repeats):
        a.append(timed(ours, device))
        b.append(timed(plain, device))
    return statistics.median(a), statistics.median(b), statistics.median(x / y for x, y in zip(a, b))


def parse_options(pairs: list[str]) -> dict[str, object]:
    """``key=value`` strings to `TrainConfig` keyword arguments (none, true/false and ints typed)."""
    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or key not in TrainConfig.__dataclass_fields__:
            raise SystemExit(f"--option {pair!r}: expected key=value with a TrainConfig field as key")
        low = text.strip().lower()
        out[key] = None if low == "none" else (low == "true") if low in ("true", "false") else int(low) if low.isdigit() else text
    return out


def loop_overhead(archs: list[str], space: object, data: ImageDataset, args: argparse.Namespace, device: str) -> list[dict]:
    """Part 1 for one image size."""
    rows = []
    cfg = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=LR, weight_decay=WEIGHT_DECAY, patience=args.epochs, seed=0, **parse_options(args.option)
    )
    for arch in archs:
        torch.manual_seed(0)
        initial = space.build_model(space.from_string(arch), tuple(data.input_shape), data.num_classes)
        # default arguments bind this iteration's network (ruff B023)
        ours = lambda net=initial: train_and_evaluate(copy.deepcopy(net), data, cfg, device)  # noqa: E731
        plain = lambda net=initial: plain_loop(copy.deepcopy(net), data, args.epochs, args.batch_size, device)  # noqa: E731
        ours(), plain()  # warm-up: every batch shape's kernels and the allocator, for both sides
        t_ours, t_plain, ratio = paired(ours, plain, args.repeats, device)
        images = args.epochs * len(data.train_y)
        rows.append(
            {
                "arch": arch,
                "params": count_parameters(initial),
                "ours_images_per_s": images / t_ours,
                "plain_images_per_s": images / t_plain,
                "time_ratio_ours_over_plain": ratio,
            }
        )
        print(
            f"  {rows[-1]['params']:>8,} params  ours {images / t_ours:7.1f} img/s  plain {images / t_plain:7.1f} img/s"
            f"  time ours/plain {ratio:.3f}   {arch}",
            flush=True,
        )
    return rows


class PlainResNet(nn.Module):
    """3x3 stem, ``blocks`` basic residual blocks of ``width`` channels at full resolution, GAP, linear."""

    def __init__(self, width: int, blocks: int = 4, in_channels: int = 3, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(width, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(),
                nn.Conv2d(width, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
            )
            for _ in range(blocks)
        )
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = F.relu(x + block(x))
        return self.head(x.mean(dim=(2, 3)))


def matching_resnet(flops: int, input_shape: tuple[int, int, int]) -> PlainResNet:
    """The plain residual CNN whose forward FLOPs are closest to ``flops`` (log scale)."""
    best = min(range(4, 257), key=lambda w: abs(math.log(count_flops(PlainResNet(w, in_channels=input_shape[0]), input_shape) / flops)))
    return PlainResNet(best, in_channels=input_shape[0])


def step_seconds(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: str) -> Callable[[], None]:
    """One training step (forward, backward, AdamW) of ``model`` on a fixed batch."""
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)

    def step() -> None:
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()
    return step


def block_costs(space: object, data: ImageDataset, args: argparse.Namespace, device: str) -> list[dict]:
    """Part 2: each family alone against the plain CNN of equal FLOPs."""
    x, y = data.train_x[: args.batch_size].to(device), data.train_y[: args.batch_size].to(device)
    shape, rows = tuple(data.input_shape), []
    for family in args.families.split(","):
        torch.manual_seed(0)
        net = space.build_model(space.from_string(" > ".join([BLOCK_ALONE[family]] * 4)), shape, data.num_classes)
        flops = count_flops(net, shape)
        base = matching_resnet(flops, shape)
        t_net, t_base, ratio = paired(step_seconds(net, x, y, device), step_seconds(base, x, y, device), args.repeats, device)
        rows.append(
            {
                "family": family,
                "params": count_parameters(net),
                "mflops": flops / 1e6,
                "baseline_width": base.head.in_features,
                "baseline_mflops": count_flops(base, shape) / 1e6,
                "ms_per_image": 1e3 * t_net / len(y),
                "baseline_ms_per_image": 1e3 * t_base / len(y),
                "time_ratio": ratio,
            }
        )
        r = rows[-1]
        print(
            f"  {family:<6} {r['mflops']:7.1f} MFLOPs {r['ms_per_image']:7.2f} ms/img | plain CNN w={r['baseline_width']:<3} "
            f"{r['baseline_mflops']:7.1f} MFLOPs {r['baseline_ms_per_image']:7.2f} ms/img | ratio {ratio:.2f}",
            flush=True,
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", required=True, help="a CIFAR-style .npz (x uint8 NHWC, y labels)")
    parser.add_argument("--sizes", default="16,32", help="image sides for part 1 ('' skips it; part 2 always runs at 32)")
    parser.add_argument("--families", default=",".join(BLOCK_ALONE), help="block families for part 2 ('' skips it)")
    parser.add_argument("--archs", type=int, default=3, help="architectures sampled from the default space")
    parser.add_argument("--train-images", type=int, default=256, help="training images per epoch (20%% more are loaded for validation)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--option", action="append", default=[], help="TrainConfig field for our loop, key=value (repeatable)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device, space = resolve_device(args.device), default_space()
    archs = sample_archs(space, args.archs, args.seed)
    report: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "torch": torch.__version__, "threads": torch.get_num_threads(), "loop": {}}
    items = math.ceil(args.train_images / 0.8)
    for size in (int(s) for s in args.sizes.split(",") if s):
        data = load_dataset("cifar10_npz", args.images, image_size=size, max_items=items, seed=args.seed)
        print(f"loop overhead at {size}x{size}, {len(data.train_y)} train / {len(data.val_y)} val images, batch {args.batch_size}, {device}:")
        report["loop"][size] = loop_overhead(archs, space, data, args, device)
    if args.families:
        data = load_dataset("cifar10_npz", args.images, image_size=32, max_items=max(items, args.batch_size * 2), seed=args.seed)
        print(f"block cost at 32x32, one training step of batch {args.batch_size}, {device}:")
        report["blocks"] = block_costs(space, data, args, device)
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
