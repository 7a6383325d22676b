"""MLflow tracking and model registry for a pipeline run (plain functions; flows wrap them).

Layout in MLflow: one parent run per pipeline run (found again by its run name, so a resumed
pipeline keeps logging into the same run), one nested run per trained finalist, and one nested
run that holds the winner's model, registered as ``<model_name>`` with alias ``champion``.
Registration is idempotent on weights: a version tagged with the same ``arch_id`` and weights
digest is reused, whichever run or config registered it, and only the alias is (re)pointed at
it; retrained weights that differ (``ehnas resume --redo 08_training``) register a new version.
Two processes that register the same weights at once both end on the older version (the newer
duplicate is deleted). A champion run left RUNNING by a killed registration is marked KILLED.

Every function takes the tracking URI explicitly; the registry URI is the same. Params and
tags pass through `safe_params`, which drops anything that looks like a credential.
`tasks.mlflow_pipeline.register_pipeline_run` composes these for a finished pipeline run.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import torch
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException
from torch import nn

from tasks.config import default_tracking_uri  # noqa: F401 - re-exported for callers
from tasks.mlflow_guard import (
    end_stale_runs,
    keep_oldest,
    quote,
    sqlite_schema_lock,
    versions_of,
)

log = logging.getLogger(__name__)

EXPERIMENT = "ehnas"
RUN_NAME_TAG = "ehnas.run_name"
ARCH_TAG, CONFIG_TAG, WEIGHTS_TAG = "arch_id", "config_hash", "weights_sha256"
DATA_TAG, SCORE_TAG = "data_fingerprint", "val_accuracy"  # what `promotion` compares versions by
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own tag: the UI nests runs that carry it
_SECRET_NAME = re.compile(r"key|token|secret|passw|credential|auth", re.IGNORECASE)
_SECRET_VALUE = re.compile(r"(api[_-]?key|secret|token|bearer\s|\bsk-[A-Za-z0-9_-]{8,})", re.IGNORECASE)
_MAX_PARAM_CHARS = 6000  # MLflow rejects longer param values


def model_name_for(dataset: str) -> str:
    """The registered model name of a dataset: ``ehnas-<dataset>`` with unsafe characters as ``-``."""
    return "ehnas-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", dataset).strip("-")


def safe_params(params: Mapping[str, Any]) -> dict[str, str]:
    """Params as strings, without anything that may be a secret.

    Drops keys that name a credential (key, token, secret, password, auth) and values that
    look like one or contain the value of a secret-named environment variable; long values are
    truncated to MLflow's limit.
    """
    env_secrets = [v for k, v in os.environ.items() if _SECRET_NAME.search(k) and len(v) >= 8]
    clean = {}
    for key, value in params.items():
        if value is None:
            continue
        text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
        if _SECRET_NAME.search(str(key)) or _SECRET_VALUE.search(text) or any(s in text for s in env_secrets):
            continue
        clean[str(key)] = text[:_MAX_PARAM_CHARS]
    return clean


def client_for(tracking_uri: str) -> MlflowClient:
    """A client for ``tracking_uri`` (also made the fluent default, which ``log_model`` uses)."""
    user_env = {key: os.environ.get(key) for key in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    # MLflow also exports the URI to the environment; put the user's own setting back, or the
    # next run in this process (another runs root) would silently log to this database.
    for key, value in user_env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    with sqlite_schema_lock(tracking_uri):  # opening a store creates or migrates its tables
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        if tracking_uri.startswith("sqlite:///"):
            client.search_registered_models(max_results=1)  # the registry store opens lazily
    return client


def _experiment_id(client: MlflowClient, tracking_uri: str, name: str) -> str:
    """Gets or creates the experiment; a SQLite store keeps artifacts beside its database file
    (MLflow's default would be ``./mlruns`` in whatever folder the process started in)."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None
    if tracking_uri.startswith("sqlite:///"):
        location = (Path(tracking_uri[len("sqlite:///") :]).parent / "mlartifacts").resolve().as_uri()
    return client.create_experiment(name, artifact_location=location)


def _find_run(client: MlflowClient, experiment_id: str, tags: Mapping[str, str]) -> str | None:
    """The newest live run whose tags all match, or None."""
    clauses = " and ".join(f"tags.`{k}` = '{quote(v)}'" for k, v in tags.items())
    runs = client.search_runs([experiment_id], filter_string=clauses, max_results=1, order_by=["attributes.start_time DESC"])
    return runs[0].info.run_id if runs else None


def _log_new_params(client: MlflowClient, run_id: str, params: Mapping[str, Any]) -> None:
    """Logs the params the run lacks; MLflow params are immutable, so a changed value is kept as
    it was and reported in the log rather than failing a resumed run."""
    existing = client.get_run(run_id).data.params
    fresh = safe_params(params)
    changed = sorted(k for k, v in fresh.items() if k in existing and existing[k] != v)
    if changed:
        log.warning("run %s keeps its earlier values for params %s", run_id, changed)
    new = [Param(k, v) for k, v in fresh.items() if k not in existing]
    for start in range(0, len(new), 100):  # MLflow's log_batch limit is 100 params per call
        client.log_batch(run_id, params=new[start : start + 100])


def log_metrics(client: MlflowClient, run_id: str, metrics: Mapping[str, Any], step: int = 0) -> None:
    """Logs the finite scalar metrics (nested or NaN values are skipped)."""
    now = int(1000 * time.time())
    rows = [Metric(k, float(v), now, step) for k, v in metrics.items() if isinstance(v, (int, float)) and np.isfinite(v)]
    for start in range(0, len(rows), 1000):
        client.log_batch(run_id, metrics=rows[start : start + 1000])


def log_new_points(client: MlflowClient, run_id: str, points: Sequence[tuple[str, Any, int]]) -> None:
    """Logs the finite scalar ``(key, value, step)`` points the run does not hold yet, so a
    resumed or repeated registration adds no metric point twice (a changed value is a new point)."""
    rows = [(k, float(v), step) for k, v, step in points if isinstance(v, (int, float)) and np.isfinite(v)]
    logged = client.get_run(run_id).data.metrics
    held = {k: {(m.step, m.value) for m in client.get_metric_history(run_id, k)} for k in {k for k, _, _ in rows} if k in logged}
    now = int(1000 * time.time())
    fresh = [Metric(k, v, now, step) for k, v, step in rows if (step, v) not in held.get(k, set())]
    for start in range(0, len(fresh), 1000):
        client.log_batch(run_id, metrics=fresh[start : start + 1000])


def start_parent_run(tracking_uri: str, experiment: str, run_name: str, params: Mapping[str, Any], tags: Mapping[str, Any]) -> str:
    """Creates the parent run of a pipeline run, or returns the one already named ``run_name``.

    Args:
        tracking_uri: MLflow tracking (and registry) URI.
        experiment: experiment name (created when missing).
        run_name: the pipeline's run name; it identifies the parent run across resumes.
        params: the pipeline configuration, flattened; secrets are dropped (`safe_params`).
        tags: extra run tags (filtered the same way).

    Returns:
        The parent run id.
    """
    client = client_for(tracking_uri)
    experiment_id = _experiment_id(client, tracking_uri, experiment)
    run_id = _find_run(client, experiment_id, {RUN_NAME_TAG: run_name})
    if run_id is None:
        run_tags = {**safe_params(tags), RUN_NAME_TAG: run_name}
        run_id = client.create_run(experiment_id, run_name=run_name, tags=run_tags).info.run_id
    _log_new_params(client, run_id, params)
    return run_id


def log_parent_metrics(tracking_uri: str, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
    """Logs scalar metrics (e.g. one generation's best and mean fitness at ``step=generation``)."""
    log_metrics(client_for(tracking_uri), run_id, metrics, step)


def log_artifacts(tracking_uri: str, run_id: str, paths: Iterable[str | Path], artifact_path: str | None = None) -> list[str]:
    """Uploads files and folders (Parquet steps, plots) to a run; missing paths are skipped.

    Returns:
        The paths that were uploaded.
    """
    client, done = client_for(tracking_uri), []
    for path in map(Path, paths):
        if path.is_dir():
            client.log_artifacts(run_id, str(path), artifact_path=f"{artifact_path}/{path.name}" if artifact_path else path.name)
        elif path.is_file():
            client.log_artifact(run_id, str(path), artifact_path=artifact_path)
        else:
            continue
        done.append(str(path))
    return done


def finish_run(tracking_uri: str, run_id: str, status: str = "FINISHED") -> None:
    """Marks a run ``FINISHED`` (or ``FAILED``/``KILLED``)."""
    client_for(tracking_uri).set_terminated(run_id, status=status)


def log_finalist_run(
    tracking_uri: str, parent_run_id: str, arch_id: str, params: Mapping[str, Any], metrics: Mapping[str, Any], history: Sequence[Mapping[str, float]]
) -> str:
    """Logs one trained finalist as a nested run of the parent (reused when it already exists).

    Args:
        tracking_uri: MLflow tracking URI.
        parent_run_id: from `start_parent_run`.
        arch_id: the architecture's id (tag ``arch_id``; the run is named ``finalist-<arch_id>``).
        params: architecture and training settings (secrets dropped).
        metrics: `TrainResult.metrics`; scalars become metrics, the rest (per-class scores,
            confusion matrix) goes to the ``metrics.json`` artifact.
        history: `TrainResult.history`; each entry is logged at ``step=epoch``.

    Returns:
        The finalist run id.
    """
    client = client_for(tracking_uri)
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    run_id = _find_run(client, experiment_id, {PARENT_TAG: parent_run_id, ARCH_TAG: arch_id, "ehnas.kind": "finalist"})
    if run_id is None:
        tags = {PARENT_TAG: parent_run_id, ARCH_TAG: arch_id, "ehnas.kind": "finalist"}
        run_id = client.create_run(experiment_id, run_name=f"finalist-{arch_id}", tags=tags).info.run_id
    _log_new_params(client, run_id, params)
    points = [(f"epoch_{k}", v, int(entry.get("epoch", 0))) for entry in history for k, v in entry.items() if k != "epoch"]
    log_new_points(client, run_id, [*points, *((k, v, 0) for k, v in metrics.items())])
    client.log_dict(run_id, dict(metrics), "metrics.json")
    client.set_terminated(run_id)
    return run_id


def weights_digest(model: nn.Module) -> str:
    """First 16 hex digits of the sha256 of the model's state (names and tensor bytes)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _pip_requirements() -> list[str]:
    """Pinned runtime requirements, listed so MLflow skips its slow requirement inference.
    A model that fell back to pickling also needs the ``ehnas`` package (`nas_lib` classes)."""
    return [f"torch=={torch.__version__.split('+')[0]}", f"mlflow=={mlflow.__version__}", f"numpy=={np.__version__}"]


def promotion(client: MlflowClient, model_name: str, data_fingerprint: str, score: float, alias: str = "champion") -> tuple[bool, str]:
    """Whether a new version scoring `score` (validation accuracy) on the data `data_fingerprint`
    should take `alias` from its current holder, and why.

    It should when nothing holds the alias yet, when the holder was validated on other data
    (its `DATA_TAG` differs or is missing: the accuracies are not comparable), or when `score`
    is at least the holder's `SCORE_TAG`.
    """
    try:
        holder = client.get_model_version_by_alias(model_name, alias)
    except MlflowException:  # no such model or alias yet
        return True, f"first @{alias}"
    tags = holder.tags or {}
    if tags.get(DATA_TAG) != data_fingerprint or SCORE_TAG not in tags:
        return True, f"@{alias} v{holder.version} was validated on other data"
    best = float(tags[SCORE_TAG])
    if score >= best:
        return True, f"validation accuracy {score:.4f} >= {best:.4f} of @{alias} v{holder.version}"
    return False, f"@{alias} stays on v{holder.version}: its validation accuracy {best:.4f} > {score:.4f}"


def register_champion(
    *,
    tracking_uri: str,
    experiment: str,
    parent_run_id: str | None,
    model_name: str,
    model: nn.Module,
    input_example: np.ndarray,
    arch_id: str,
    config_hash: str,
    metrics: Mapping[str, float],
    params: Mapping[str, Any],
    artifacts: Sequence[Path] = (),
    alias: str = "champion",
    tags: Mapping[str, str] | None = None,
    serving: Any = None,
) -> dict[str, Any]:
    """Logs the winner, registers it and points ``alias`` at it.

    With ``serving`` (a `tasks.mlflow_model.ServingInfo`), the model is the self-contained
    pyfunc model of `tasks.mlflow_model.log_serving_model` (raw uint8 images in, class names
    out; exported files beside it when asked); without it, ``mlflow.pytorch.log_model``.

    Idempotent on weights: when a version of ``model_name`` tagged with this ``arch_id`` and
    weights digest (`weights_digest`) exists, from whichever run or config, nothing is logged
    again; the alias is (re)set to that version. A champion run of the same parent run left
    RUNNING by a killed registration is marked KILLED before a new one starts.

    Args:
        tracking_uri: MLflow tracking (and registry) URI.
        experiment: experiment name (used when ``parent_run_id`` is None).
        parent_run_id: the pipeline's parent run; the model run is nested under it.
        model_name: registered model name, e.g. ``ehnas-digits`` (see `model_name_for`).
        model: the trained network; a CPU copy in eval mode is logged.
        input_example: a float32 batch shaped like the training inputs (N x C x H x W); it
            fixes the model signature.
        arch_id: with the weights digest, identifies the version (model version tags).
        config_hash: the config that produced it (a model version tag, not part of the identity).
        metrics: scalar metrics of the winner (non-finite ones skipped).
        params: params of the model run (secrets dropped).
        artifacts: files or folders to attach to the model run.
        alias: the registered model alias to set.
        tags: further model version tags (not part of the identity), e.g. `DATA_TAG` and
            `SCORE_TAG` for `promotion`.
        serving: class names, normalisation, space and data options of a pipeline winner.

    Returns:
        ``{"model_uri": "models:/<name>@<alias>", "version": "<n>", "run_id": ..., "reused": bool}``;
        ``run_id`` is a champion run under ``parent_run_id`` even when the weights were reused
        from another run's version (`_reusing_run`).
    """
    client = client_for(tracking_uri)
    identity = {ARCH_TAG: arch_id, WEIGHTS_TAG: weights_digest(model)}
    found = versions_of(client, model_name, identity)
    if found:
        version = str(found[0].version)
        client.set_registered_model_alias(model_name, alias, version)
        run_id = _reusing_run(client, parent_run_id, f"{model_name}/{version}", found[0].run_id, arch_id, config_hash, params, metrics)
        return {"model_uri": f"models:/{model_name}@{alias}", "version": version, "run_id": run_id, "reused": True}
    run_id = _model_run(client, tracking_uri, experiment, parent_run_id, arch_id, config_hash)
    try:
        _log_new_params(client, run_id, params)
        log_metrics(client, run_id, metrics)
        log_artifacts(tracking_uri, run_id, artifacts)
        if serving is not None:
            from tasks.mlflow_model import log_serving_model

            model_uri = log_serving_model(run_id, model, serving, _pip_requirements())
        else:
            model_uri = _log_pytorch_model(run_id, model, input_example)
        registered = mlflow.register_model(model_uri, model_name, tags={**(tags or {}), CONFIG_TAG: config_hash, **identity})
        version = keep_oldest(client, model_name, identity, str(registered.version))
        client.set_registered_model_alias(model_name, alias, version)
    except BaseException:
        client.set_terminated(run_id, status="FAILED")  # a retry starts a fresh run; this one says why it stopped
        raise
    client.set_terminated(run_id)
    if version != str(registered.version):  # another process registered these weights first
        run_id = client.get_model_version(model_name, version).run_id or run_id
    return {"model_uri": f"models:/{model_name}@{alias}", "version": version, "run_id": run_id, "reused": version != str(registered.version)}


def _reusing_run(
    client: MlflowClient,
    parent_run_id: str | None,
    version: str,
    model_run_id: str | None,
    arch_id: str,
    config_hash: str,
    params: Mapping[str, Any],
    metrics: Mapping[str, Any],
) -> str | None:
    """This parent's champion run for weights registered before: the version's own run when it
    is nested under this parent (a rerun), else a run under this parent (created once) with the
    winner's params and metrics and tags naming the reused version and its run; no model is
    logged again. So a run's summary always points at a run of that run."""
    if not parent_run_id or (model_run_id and client.get_run(model_run_id).data.tags.get(PARENT_TAG) == parent_run_id):
        return model_run_id
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    tags = {PARENT_TAG: parent_run_id, ARCH_TAG: arch_id, "ehnas.kind": "champion"}
    run_id = _find_run(client, experiment_id, tags)
    if run_id is None:
        reuse = {CONFIG_TAG: config_hash, "ehnas.reused_version": version, "ehnas.model_run": model_run_id or ""}
        run_id = client.create_run(experiment_id, run_name=f"champion-{arch_id}", tags={**tags, **reuse}).info.run_id
    _log_new_params(client, run_id, params)
    log_new_points(client, run_id, [(k, v, 0) for k, v in metrics.items()])
    client.set_terminated(run_id)
    return run_id


def _model_run(client: MlflowClient, tracking_uri: str, experiment: str, parent_run_id: str | None, arch_id: str, config_hash: str) -> str:
    """A fresh run for the champion model, nested under the parent run when there is one."""
    if parent_run_id:
        experiment_id = client.get_run(parent_run_id).info.experiment_id
    else:
        experiment_id = _experiment_id(client, tracking_uri, experiment)
    tags = {ARCH_TAG: arch_id, CONFIG_TAG: config_hash, "ehnas.kind": "champion"}
    if parent_run_id:
        tags[PARENT_TAG] = parent_run_id
        end_stale_runs(client, experiment_id, {PARENT_TAG: parent_run_id, "ehnas.kind": "champion"})
    return client.create_run(experiment_id, run_name=f"champion-{arch_id}", tags=tags).info.run_id


def _log_pytorch_model(run_id: str, model: nn.Module, input_example: np.ndarray) -> str:
    """Logs a CPU eval copy of ``model`` under ``name="model"``; returns its model URI."""
    from mlflow.models import infer_signature

    cpu_model = copy.deepcopy(model).to("cpu").eval()
    example = np.ascontiguousarray(input_example, dtype=np.float32)
    if example.shape[0] < 2:  # torch.export fixes a batch dimension of size 1 as a constant
        example = np.concatenate([example, example])
    with torch.no_grad():
        output = cpu_model(torch.from_numpy(example)).numpy()
    signature = infer_signature(example, output)  # batch dimension -1: any batch size
    with mlflow.start_run(run_id=run_id):
        for serialization in ("pt2", "pickle"):  # torch.export cannot trace every block; pickling always works
            try:
                info = mlflow.pytorch.log_model(
                    pytorch_model=cpu_model,
                    name="model",
                    signature=signature,
                    input_example=example,
                    pip_requirements=_pip_requirements(),
                    serialization_format=serialization,
                )
                break
            except Exception as err:
                if serialization == "pickle":
                    raise
                log.warning("pt2 export of the model failed (%s: %s); logging it pickled instead", type(err).__name__, err)
    return info.model_uri


def load_champion(tracking_uri: str, model_name: str, alias: str = "champion", flavor: str = "pytorch") -> Any:
    """Loads ``models:/<model_name>@<alias>``.

    Args:
        tracking_uri: MLflow tracking (and registry) URI.
        model_name: registered model name.
        alias: registered model alias.
        flavor: ``"pytorch"`` returns the `nn.Module` (eval mode; a pipeline model is rebuilt
            from its architecture and weights and takes normalised float N x C x H x W);
            ``"pyfunc"`` returns an MLflow pyfunc model (a pipeline model's ``predict`` takes
            raw uint8 N x H x W x C images and returns class ids, names and probabilities).

    Returns:
        The loaded model.
    """
    client_for(tracking_uri)
    uri = f"models:/{model_name}@{alias}"
    if flavor == "pyfunc":
        return mlflow.pyfunc.load_model(uri)
    if flavor != "pytorch":
        raise ValueError(f"flavor must be 'pytorch' or 'pyfunc', got {flavor!r}")
    if "python_function" in _flavors(uri):
        from tasks.mlflow_model import rebuild_registered

        return rebuild_registered(uri)[0]
    # a "pt2" model loads as an exported graph (always in inference mode; it rejects .eval());
    # a pickled one was logged in eval mode and keeps it
    return mlflow.pytorch.load_model(uri, map_location="cpu")


def _flavors(model_uri: str) -> set[str]:
    """The flavors of a logged model, without loading it (only its MLmodel file is read)."""
    from mlflow.models import Model

    local = mlflow.artifacts.download_artifacts(artifact_uri=f"{model_uri}/MLmodel")
    flavors = set(Model.load(local).flavors)
    return flavors - {"python_function"} if "pytorch" in flavors else flavors
