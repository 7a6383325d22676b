"""`ehnas export`: a run's winner or a registered model as ONNX, TorchScript and int8 files.

Each file takes raw uint8 images (N x H x W x C) with any batch size; the command checks every
file against PyTorch at batch 1 and 16 on validation images and scores it on the validation
split. The example scripts in ``examples/`` classify an image file with each format.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Adds the `export` command to `app`."""
    app.command("export")(export)


def export(
    source: str = typer.Argument(..., help="A run folder (its trained winner) or models:/<name>@<alias> (a registered version)."),
    format: str = typer.Option("all", "--format", help="onnx, torchscript, quantized, a comma-separated list, or all."),
    out: Path = typer.Option(Path("export"), "--out", file_okay=False, help="Folder for the files, labels.json and export.json."),
    tracking_uri: str = typer.Option(
        None, "--tracking-uri", help="MLflow URI for models:/ sources (default: MLFLOW_TRACKING_URI, else sqlite:///runs/mlflow.db)."
    ),
    onnx_exporter: str = typer.Option("torchscript", "--onnx-exporter", help="torchscript (legacy, fast), dynamo or auto."),
    threads: int = typer.Option(1, "--threads", min=1, help="torch CPU threads."),
) -> None:
    """Export a trained model and check each file against PyTorch."""
    from nas_lib.export_bundle import parse_formats

    try:
        formats = parse_formats(format)
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--format") from None
    check_extras(formats, format, onnx_exporter)
    import torch

    from nas_lib.export import ExportError
    from nas_lib.export_bundle import export_bundle

    torch.set_num_threads(threads)
    model, card, images, labels = _resolve(source, tracking_uri)
    try:
        report = export_bundle(model, card, out, formats=formats, images=images, labels=labels, onnx_exporter=onnx_exporter)
    except ExportError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None
    typer.echo(format_report(report, out))


def check_extras(formats: Sequence[str], asked: str, onnx_exporter: str) -> None:
    """ONNX needs the [onnx] extra: one usage line (exit 2) before anything is read or written."""
    from ehnas.exit_codes import CliError, ExitCode
    from nas_lib.extras import missing_extra

    if "onnx" not in formats:
        return
    dynamo = ("onnxscript",) if onnx_exporter != "torchscript" else ()
    if problem := missing_extra("onnx", f"ehnas export --format {asked}", dynamo):
        raise CliError(problem, ExitCode.USAGE)


def _resolve(source: str, tracking_uri: str | None):  # noqa: ANN202  (model, ModelCard, images, labels)
    if source.startswith(("models:/", "runs:/")):
        from tasks.config import default_tracking_uri
        from tasks.mlflow_model import registered_export_source

        try:
            return registered_export_source(source, tracking_uri or default_tracking_uri(Path("runs")))
        except (LookupError, FileNotFoundError, ValueError) as err:
            raise typer.BadParameter(str(err), param_hint="SOURCE") from None
    from tasks.training import winner_export_source

    if not (Path(source) / "config.json").is_file():
        raise typer.BadParameter(f"{source} is neither a run folder (no config.json) nor a models:/ URI", param_hint="SOURCE")
    try:
        return winner_export_source(source)
    except (FileNotFoundError, ValueError) as err:
        raise typer.BadParameter(str(err), param_hint="SOURCE") from None


def format_report(report: dict, out: Path) -> str:
    """One line per format: file, max abs difference from PyTorch at batch 1 and 16, accuracy."""
    lines = [f"{'format':<12} {'file':<28} {'max|diff| b1':>13} {'max|diff| b16':>14} {'accuracy':>9}"]
    for name, entry in report["formats"].items():
        acc = f"{entry['accuracy']:.4f}" if "accuracy" in entry else "-"
        lines.append(f"{name:<12} {entry['file']:<28} {entry['max_abs_diff_batch1']:>13.2e} {entry['max_abs_diff_batch16']:>14.2e} {acc:>9}")
    if "fp32_accuracy" in report:
        lines.append(f"PyTorch fp32 accuracy on the same {report.get('images_scored', 'validation')} images: {report['fp32_accuracy']:.4f}")
    lines.append(f"wrote {out}/ (labels.json, export.json); examples/classify_<format>.py classifies an image file")
    return "\n".join(lines)
