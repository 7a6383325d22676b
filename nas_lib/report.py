"""Summary of a run folder: markdown text and two plots, read only from the step Parquet files.

The same text is the Prefect UI's summary artifact and the output of ``ehnas report <run>``, so
what the UI showed can always be rebuilt from the files alone.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from nas_lib.artifacts import DamagedFileError, read_table
from nas_lib.steps import LAYER_STEPS, Step


def _table(run_dir: Path, step: Step) -> pd.DataFrame | None:
    path = run_dir / f"{step}.parquet"
    return read_table(path) if path.exists() else None


def _fmt(value: object, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _rows(headers: list[str], rows: list[list[object]]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return out + ["| " + " | ".join(_fmt(v) for v in r) + " |" for r in rows]


def _guard_note(record: dict) -> str:
    """What the guard changed in the layer's proposed cut, and why (its retention)."""
    steps = json.loads(record["guard_steps"]) if isinstance(record.get("guard_steps"), str) else []
    if not steps:
        return ""
    proposed = record.get("proposed_top1pct_retention", float("nan"))
    return f"proposed cut kept {_fmt(proposed)} of the top 1%; guard: {', '.join(steps)}"


def _data_section(run_dir: Path) -> list[str]:
    path = run_dir / "data.json"
    if not path.exists():
        return []
    d = json.loads(path.read_text(encoding="utf-8"))
    lines = [
        f"Data: `{d['name']}`, {d['train_size']} train / {d['val_size']} validation images, {d['num_classes']} classes, "
        f"input {'x'.join(str(v) for v in d['input_shape'])}, fingerprint `{d['fingerprint'][:12]}`.",
        "",
    ]
    if d.get("skipped_count"):
        shown = ", ".join(f"`{s['file']}`" for s in d["skipped"][:5])
        lines += [f"**{d['skipped_count']} corrupt image files skipped** (all listed in `data.json`): {shown}", ""]
    return lines


def _space_section(run_dir: Path) -> list[str]:
    rows = []
    for layer, step in LAYER_STEPS.items():
        t = _table(run_dir, step)
        if t is None or t.empty:
            continue
        r = t.iloc[0].to_dict()
        retention = r.get("top1pct_retention", float("nan"))
        reason = r.get("fallback_reason")
        note = "; ".join(filter(None, [reason if isinstance(reason, str) else "", _guard_note(r)]))
        rows.append([layer, r.get("provider"), r.get("log10_size_before"), r.get("log10_size_after"), retention, note])
    if not rows:
        return []
    return (
        ["## Search space per layer", ""]
        + _rows(["layer", "provider", "log10 size before", "log10 size after", "top-1% retention", "note"], rows)
        + [""]
    )


def _evaluation_section(run_dir: Path) -> list[str]:
    t = _table(run_dir, Step.EVALUATIONS)
    pop = _table(run_dir, Step.POPULATION)
    if t is None:
        return []
    ok = int((t["state"] == "ok").sum())
    lines = [
        "## Population and evaluation",
        "",
        f"- population: {0 if pop is None else len(pop)} architectures",
        f"- scores: {len(t)} ({ok} ok, {len(t) - ok} failed; {int(t['cached'].sum())} reused from the store)",
        f"- proxies: {', '.join(sorted(t['proxy'].unique()))}",
        "",
    ]
    return lines


def search_progress(run_dir: str | Path) -> pd.DataFrame:
    """Best-so-far, best and mean fitness per generation (generation 0 = initial population)."""
    t = _table(Path(run_dir), Step.SEARCH)
    if t is None or t.empty:
        return pd.DataFrame(columns=["generation", "best", "mean", "best_so_far", "n"])
    ok = t[t["state"] == "ok"]
    g = ok.groupby("generation")["fitness"].agg(best="max", mean="mean", n="count").reset_index()
    g["best_so_far"] = g["best"].cummax()
    return g


def _search_section(run_dir: Path) -> list[str]:
    g = search_progress(run_dir)
    if g.empty:
        return []
    rows = [[int(r.generation), r.best, r.mean, r.best_so_far, int(r.n)] for r in g.itertuples()]
    return ["## Search progress (fitness, higher is better)", ""] + _rows(["generation", "best", "mean", "best so far", "scored"], rows) + [""]


def _training_section(run_dir: Path) -> list[str]:
    t = _table(run_dir, Step.TRAINING)
    if t is None or t.empty:
        return []
    rows = [[int(r.rank), r.arch_id, r.fitness, r.val_accuracy, int(r.params), r.epochs_run, r.state] for r in t.itertuples()]
    return ["## Finalists (held-out split)", ""] + _rows(["rank", "arch_id", "fitness", "val accuracy", "params", "epochs", "state"], rows) + [""]


def _registry_section(run_dir: Path) -> list[str]:
    t = _table(run_dir, Step.REGISTRY)
    if t is None or t.empty:
        return []
    r = t.iloc[0].to_dict()
    lines = [
        "## Winner",
        "",
        f"- architecture: `{r.get('arch_id')}` {r.get('arch') or ''}",
        f"- validation accuracy: {_fmt(r.get('val_accuracy'))}, parameters: {_fmt(r.get('params'))}",
    ]
    if r.get("state") == "ok":
        lines.append(f"- registered: `{r.get('model_name')}` version {r.get('version')} alias `{r.get('alias')}` ({r.get('model_uri')})")
        if isinstance(r.get("note"), str) and r.get("note"):
            lines.append(f"- registration: {r['note']}")
        url = r.get("run_url")
        lines.append(f"- MLflow: {url if isinstance(url, str) and url else r.get('tracking_uri')} (run `{r.get('run_id')}`)")
    else:
        lines.append(f"- not registered: {r.get('note')}")
    return lines + [""]


def summary_markdown(run_dir: str | Path) -> str:
    """The run summary: space size per layer, retention, evaluation, search, finalists, winner."""
    run_dir = Path(run_dir)
    lines = [f"# EHNAS run `{run_dir.name}`", "", f"Folder: `{run_dir.resolve()}`", ""]
    for section in (_data_section, _space_section, _evaluation_section, _search_section, _training_section, _registry_section):
        try:
            lines += section(run_dir)
        except DamagedFileError as err:  # name the file and go on with the other sections
            lines += [f"**Damaged:** {err}. `ehnas resume {run_dir.name}` redoes that step.", ""]
    return "\n".join(lines)


def pareto_front(points: pd.DataFrame, x: str = "params", y: str = "val_accuracy") -> pd.DataFrame:
    """Rows not dominated by another row with fewer (or equal) `x` and higher (or equal) `y`."""
    ordered = points.dropna(subset=[x, y]).sort_values([x, y], ascending=[True, False])
    keep, best = [], -math.inf
    for idx, row in ordered.iterrows():
        if row[y] > best:
            keep.append(idx)
            best = row[y]
    return ordered.loc[keep]


def write_plots(run_dir: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """``search_progress.png`` and ``pareto.png`` (matplotlib, Agg); returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    out = Path(out_dir) if out_dir else run_dir / "plots"
    out.mkdir(parents=True, exist_ok=True)
    written = []
    g = search_progress(run_dir)
    if not g.empty:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(g["generation"], g["best_so_far"], marker="o", label="best so far")
        ax.plot(g["generation"], g["mean"], marker=".", label="generation mean")
        ax.set(xlabel="generation (0 = initial population)", ylabel="fitness (proxy)", title="Search progress")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "search_progress.png", dpi=100)
        plt.close(fig)
        written.append(out / "search_progress.png")
    t = _table(run_dir, Step.TRAINING)
    if t is not None and not t.empty:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.scatter(t["params"], t["val_accuracy"], label="finalists")
        front = pareto_front(t)
        ax.step(front["params"], front["val_accuracy"], where="post", color="C3", label="Pareto front")
        ax.set(xscale="log", xlabel="parameters", ylabel="validation accuracy", title="Accuracy vs parameters")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "pareto.png", dpi=100)
        plt.close(fig)
        written.append(out / "pareto.png")
    return written
