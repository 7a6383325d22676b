"""Summary of a run folder: markdown text and plots, read only from the step Parquet files.

The same text is the Prefect UI's summary artifact and the output of ``ehnas report <run>``, so
what the UI showed can always be rebuilt from the files alone.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

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


def _kept_cut(record: dict) -> str:
    """The cut a layer applied (after the guard), named from its decision: the options each
    group keeps and any other rule (depth, forbidden sequences); "" when it cut nothing."""
    if not isinstance(record.get("decision_json"), str) or not record.get("log10_size_after", 0) < record.get("log10_size_before", 0):
        return ""
    decision = json.loads(record["decision_json"])
    parts = [f"{group} keeps {', '.join(str(o) for o in options)}" for group, options in (decision.get("keep") or {}).items()]
    parts += [f"{k} {json.dumps(v)}" for k, v in decision.items() if k not in ("keep", "rationale") and v not in (None, [], {}, "")]
    return f"kept cut: {'; '.join(parts)}" if parts else ""


def _space_section(run_dir: Path) -> list[str]:
    rows = []
    for layer, step in LAYER_STEPS.items():
        t = _table(run_dir, step)
        if t is None or t.empty:
            continue
        r = t.iloc[0].to_dict()
        retention = r.get("top1pct_retention", float("nan"))
        reason = r.get("fallback_reason")
        note = "; ".join(filter(None, [reason if isinstance(reason, str) else "", _kept_cut(r), _guard_note(r)]))
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


# One Pareto front of a run: maximise `score`, minimise `cost` (the NSGA-II search front, the finalists' accuracy/params front).
PARETO_SCHEMA = pa.schema(
    [
        ("arch_id", pa.string()),
        ("score", pa.float64()),
        ("score_name", pa.string()),
        ("cost", pa.float64()),
        ("cost_name", pa.string()),
        ("arch", pa.string()),
    ]
)
PARETO_STEPS = (Step.SEARCH, Step.TRAINING)  # whose front each file holds: <step>_pareto.parquet


def pareto_path(run_dir: str | Path, step: Step) -> Path:
    """``<run>/<step>_pareto.parquet``: the Pareto front of the search (NSGA-II) or of the finalists."""
    return Path(run_dir) / f"{step}_pareto.parquet"


def search_front_rows(front: list[dict], fitness_name: str) -> list[dict]:
    """A multi-objective strategy's `front` (``Strategy.front``) as `PARETO_SCHEMA` rows."""
    return [
        {
            "arch_id": r["arch_id"],
            "score": r["fitness"],
            "score_name": fitness_name,
            "cost": r["cost"],
            "cost_name": r["cost_name"],
            "arch": r["arch"],
        }
        for r in front
    ]


def finalist_front_rows(training: pd.DataFrame) -> list[dict]:
    """The trained finalists not beaten on both validation accuracy and parameters, as `PARETO_SCHEMA` rows."""
    ok = training[training["state"] == "ok"] if "state" in training else training
    front = pareto_front(ok, "params", "val_accuracy")
    return [
        {
            "arch_id": r.arch_id,
            "score": float(r.val_accuracy),
            "score_name": "val_accuracy",
            "cost": float(r.params),
            "cost_name": "params",
            "arch": r.arch,
        }
        for r in front.itertuples()
    ]


def _pareto_section(run_dir: Path) -> list[str]:
    lines: list[str] = []
    for step, title in zip(PARETO_STEPS, ("Search Pareto front (NSGA-II)", "Finalists' Pareto front")):
        path = pareto_path(run_dir, step)
        if not path.exists():
            continue
        t = read_table(path)
        if t.empty:
            continue
        score, cost = t["score_name"].iloc[0], t["cost_name"].iloc[0]
        rows = [[r.score, r.cost, r.arch_id, r.arch] for r in t.itertuples()]
        lines += [f"## {title}: {score} up, {cost} down", ""] + _rows([f"{score} (up)", f"{cost} (down)", "arch_id", "architecture"], rows) + [""]
    return lines


def summary_markdown(run_dir: str | Path) -> str:
    """The run summary: space size per layer, retention, evaluation, search, finalists, winner."""
    run_dir = Path(run_dir)
    lines = [f"# EHNAS run `{run_dir.name}`", "", f"Folder: `{run_dir.resolve()}`", ""]
    sections = (_data_section, _space_section, _evaluation_section, _search_section, _training_section, _pareto_section, _registry_section)
    for section in sections:
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
    """``search_progress.png``, ``pareto.png`` (the finalists) and ``pareto_search.png`` (the
    NSGA-II front over every scored architecture, when the run saved one) with matplotlib (Agg);
    returns the files written."""
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
    front = pareto_path(run_dir, Step.SEARCH)
    if front.exists() and not (f := read_table(front)).empty:
        written.append(_search_front_plot(plt, f, _table(run_dir, Step.SEARCH), out / "pareto_search.png"))
    return written


def _search_front_plot(plt: Any, front: pd.DataFrame, search: pd.DataFrame | None, path: Path) -> Path:
    """The search's Pareto front (score against cost), over every scored architecture when the cost is params."""
    score, cost = front["score_name"].iloc[0], front["cost_name"].iloc[0]
    fig, ax = plt.subplots(figsize=(6, 4))
    if search is not None and cost == "params" and "params" in search:
        ok = search[search["state"] == "ok"]
        ax.scatter(ok["params"], ok["fitness"], s=12, color="0.7", label="scored architectures")
    ordered = front.sort_values("cost")
    ax.step(ordered["cost"], ordered["score"], where="post", color="C3", marker="o", label="Pareto front")
    ax.set(xscale="log", xlabel=cost, ylabel=f"fitness ({score})", title="Search Pareto front (NSGA-II)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
