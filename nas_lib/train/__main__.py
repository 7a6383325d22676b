"""Trains one architecture briefly and prints its scores as JSON (the numbers in the docs).

Example:
    python -m nas_lib.train --dataset digits --epochs 5 \\
        --arch "sequential:cnn(planes=16,stride=2,cardinality=1,base_width=32) > ..."
"""

from __future__ import annotations

import argparse
import json

import torch

from nas_lib.data.datasets import DATASETS, load_dataset
from nas_lib.space import get_space
from nas_lib.space.stats import count_parameters
from nas_lib.train import TrainConfig, train_and_evaluate

SMALL_HYBRID = (
    "sequential:cnn(planes=16,stride=2,cardinality=1,base_width=32) > residual:cnn(planes=16,stride=1,cardinality=1,base_width=32)"
    " > residual:vit(num_heads=4,mlp_ratio=4,qkv_dim=192,window_size=7) > sequential:mamba(d_state=8,expand=1,d_conv=2)"
)


def main(argv: list[str] | None = None) -> dict:
    """Parses arguments, trains, prints and returns the summary."""
    parser = argparse.ArgumentParser(prog="python -m nas_lib.train", description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits", choices=DATASETS.names())
    parser.add_argument("--path", default=None, help="dataset file or folder (not needed for digits)")
    parser.add_argument("--space", default="hybrid")
    parser.add_argument("--arch", default=SMALL_HYBRID, help="architecture string of the space")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--patience", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--max-items", type=int, default=None)
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_dataset(args.dataset, args.path, image_size=args.image_size, max_items=args.max_items, seed=args.seed)
    space = get_space(args.space)
    torch.manual_seed(args.seed)
    model = space.build_model(space.from_string(args.arch), input_shape=data.input_shape, num_classes=data.num_classes)
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, patience=args.patience, seed=args.seed)
    result = train_and_evaluate(model, data, cfg, device=args.device)
    summary = {
        "dataset": data.summary(),
        "params": count_parameters(model),
        "state": result.state,
        "error": result.error,
        "epochs_run": result.epochs_run,
        "seconds": round(result.seconds, 2),
        "val_accuracy": result.metrics.get("val_accuracy"),
        "macro_f1": result.metrics.get("macro_f1"),
        "history": result.history,
    }
    print(json.dumps(summary, indent=1))
    return summary


if __name__ == "__main__":
    main()
