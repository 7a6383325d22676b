"""`ehnas bench ...`: benchmarks against reference tables (proxies, search, pruning)."""

from __future__ import annotations

import typer

from ehnas.commands import bench_proxies, bench_pruning, bench_search, bench_train

app = typer.Typer(
    help="Measure proxies, search strategies and pruning layers against real benchmark tables; train ground-truth tables.", no_args_is_help=True
)
bench_proxies.register(app)
bench_search.register(app)
bench_pruning.register(app)
bench_train.register(app)
