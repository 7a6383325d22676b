"""Guards of the MLflow registry against concurrent and killed writers (used by
`tasks.mlflow_registry`): table creation on a fresh SQLite store serialised across processes,
duplicate model versions of the same weights resolved to the oldest, and runs left RUNNING by
a killed process marked KILLED."""

from __future__ import annotations

import contextlib
import fcntl
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from mlflow import MlflowClient

log = logging.getLogger("tasks.mlflow_registry")


def quote(value: str) -> str:
    """`value` as the inside of a quoted string in an MLflow search filter."""
    return str(value).replace("'", "\\'")


@contextlib.contextmanager
def sqlite_schema_lock(tracking_uri: str) -> Iterator[None]:
    """Serialises MLflow's table creation on a SQLite file across processes (two processes that
    create a fresh database at once otherwise fail with ``table ... already exists``)."""
    if not tracking_uri.startswith("sqlite:///"):
        yield
        return
    database = Path(tracking_uri[len("sqlite:///") :])
    database.parent.mkdir(parents=True, exist_ok=True)
    with open(database.with_name(database.name + ".lock"), "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        yield


def versions_of(client: MlflowClient, model_name: str, tags: Mapping[str, str]) -> list[Any]:
    """The versions of `model_name` carrying all `tags`, oldest first."""
    query = " and ".join([f"name = '{quote(model_name)}'", *(f"tags.{k} = '{quote(v)}'" for k, v in tags.items())])
    return sorted(client.search_model_versions(query), key=lambda v: int(v.version))


def keep_oldest(client: MlflowClient, model_name: str, identity: Mapping[str, str], version: str) -> str:
    """After registering `version`: when an older version has the same identity (another process
    registered the same weights between our check and our registration), deletes `version` and
    returns the older one; else returns `version`."""
    oldest = versions_of(client, model_name, identity)[0]
    if str(oldest.version) != str(version):
        log.warning("%s v%s duplicates v%s (same weights, registered concurrently): deleting v%s", model_name, version, oldest.version, version)
        client.delete_model_version(model_name, str(version))
    return str(oldest.version)


def end_stale_runs(client: MlflowClient, experiment_id: str, tags: Mapping[str, str]) -> list[str]:
    """Marks KILLED the RUNNING runs with these tags (left by a process killed while logging;
    the run lock guarantees no live writer of the same pipeline run); returns their ids."""
    clauses = " and ".join([*(f"tags.`{k}` = '{quote(v)}'" for k, v in tags.items()), "attributes.status = 'RUNNING'"])
    stale = [run.info.run_id for run in client.search_runs([experiment_id], filter_string=clauses)]
    for run_id in stale:
        log.warning("MLflow run %s was left RUNNING by a killed registration: marking it KILLED", run_id)
        client.set_terminated(run_id, status="KILLED")
    return stale
