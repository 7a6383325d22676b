"""Checks run by `ehnas run` / `ehnas resume` before Prefect starts (issue 13, "validate at the edge").

Each check is a plain function that raises `CliError` with the exit code of its failure class:
names against their registries (usage, 2), the dataset (data, 3) and the MLflow tracking URI
(registry, 4). Without them a bad strategy name surfaced at step 07, after pruning and
evaluation had run, and an unreachable MLflow after the whole pipeline.
"""

from __future__ import annotations

import base64
import os
import sqlite3
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable
from contextlib import closing
from pathlib import Path
from urllib.parse import ParseResult, unquote, urlparse, urlunparse

from ehnas.exit_codes import CliError, ExitCode
from tasks.config import PipelineConfig

PROBE_TIMEOUT_S = 5.0  # one bounded try: a healthy local or LAN server answers in milliseconds


def preflight(config: PipelineConfig) -> None:
    """Every check below, cheapest first."""
    check_names(config)
    check_runner_installed(config)
    check_export_installed(config)
    check_space(config)
    check_data(config)
    check_tracking(config)


def check_runner_installed(config: PipelineConfig) -> None:
    """`execution.runner` dask/ray needs its extra; said before Prefect starts (exit 2) and
    before it is imported (importing Prefect creates its home folder)."""
    from nas_lib.extras import missing_extra

    runner = config.execution.runner
    if runner != "thread" and (problem := missing_extra(runner, f"execution.runner={runner}")):
        raise CliError(problem, ExitCode.USAGE)


def check_export_installed(config: PipelineConfig) -> None:
    """`export.formats` with onnx needs the [onnx] extra; said before Prefect starts (exit 2)."""
    from nas_lib.extras import missing_extra

    if "onnx" not in config.export.formats:
        return
    dynamo = ("onnxscript",) if config.export.onnx_exporter != "torchscript" else ()
    if problem := missing_extra("onnx", "export.formats with onnx", dynamo):
        raise CliError(problem, ExitCode.USAGE)


def _unknown(field: str, values: Iterable[str], known: Iterable[str]) -> None:
    known = sorted(known)
    bad = [v for v in values if v not in known]
    if bad:
        shown = ", ".join(repr(v) for v in bad)
        raise CliError(f"{field}: unknown name(s) {shown}; allowed: {', '.join(known)}", ExitCode.USAGE)


def check_names(config: PipelineConfig) -> None:
    """Search strategy, proxies and pruning layers are registered names."""
    from nas_lib.proxies import PROXIES
    from nas_lib.pruning import LAYER_REGISTRY
    from nas_lib.search import strategy_names

    _unknown("search.strategy", [config.search.strategy], strategy_names())
    _unknown("evaluation.proxies", config.evaluation.proxies, PROXIES.names())
    if not config.evaluation.proxies:
        raise CliError(
            f"evaluation.proxies: empty; name one proxy at least (the first is the search fitness); allowed: {', '.join(PROXIES.names())}",
            ExitCode.USAGE,
        )
    _unknown("pruning.layers", [str(layer) for layer in config.pruning.layers], LAYER_REGISTRY.names())


def check_space(config: PipelineConfig) -> None:
    """The base space builds: block families and every other constraint are valid."""
    from nas_lib.blocks import BLOCKS
    from nas_lib.space import HybridConstraints, get_space

    if config.space.name != "hybrid":
        return
    base = {**config.space.constraints, "min_depth": config.space.min_depth, "max_depth": config.space.max_depth}
    try:
        get_space("hybrid", constraints=HybridConstraints.from_dict(base))
    except (ValueError, TypeError, KeyError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        if "block type" in message:
            message += f" (block families: {', '.join(BLOCKS.names())})"
        raise CliError(f"space.constraints: {message}", ExitCode.USAGE) from None


def check_data(config: PipelineConfig) -> None:
    """The dataset exists, is readable and can train a classifier (see `nas_lib.data.checks`)."""
    from nas_lib.data.checks import check_decodable, check_source
    from nas_lib.data.datasets import DatasetError

    data = config.data
    try:
        check_source(data.kind, data.path)
        skipped = check_decodable(data.kind, data.path, data.max_corrupt_fraction)
    except (OSError, DatasetError) as err:
        raise CliError(f"data ({data.kind}, {data.path}): {err}", ExitCode.DATA) from None
    if skipped:  # tolerated, but said before the run rather than in its log only
        shown = "; ".join(f"{file} ({why})" for file, why in skipped[:3])
        print(
            f"data ({data.kind}, {data.path}): {len(skipped)} image file(s) cannot be decoded and will be skipped "
            f"(within data.max_corrupt_fraction={data.max_corrupt_fraction}): {shown}",
            file=sys.stderr,
        )


def check_tracking(config: PipelineConfig, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """When registration is on, the MLflow tracking URI answers (one bounded probe, no retry)."""
    if not config.registry.enabled:
        return
    uri = config.tracking_uri()
    problem = probe_tracking_uri(uri, timeout_s)
    if problem:
        raise CliError(
            f"MLflow tracking URI {redact(uri)} is unreachable: {problem}. Start the server, set "
            "registry.tracking_uri, or run without registration: --set registry.enabled=false",
            ExitCode.REGISTRY,
        )


def probe_tracking_uri(uri: str, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """None when ``uri`` looks usable, else why not. HTTP(S): any HTTP answer of the server's
    ``/health`` counts (authentication is MLflow's business later); sqlite and file stores: the
    folder exists or can be created and is writable. Other schemes are not probed."""
    parsed = urlparse(uri)
    if parsed.scheme in ("http", "https"):
        return _probe_http(parsed, timeout_s)
    if parsed.scheme == "sqlite":
        return _probe_sqlite(uri)
    if parsed.scheme in ("", "file"):
        return _probe_folder(Path(unquote(parsed.path) if parsed.scheme else uri))
    return None


def _probe_http(parsed: ParseResult, timeout_s: float) -> str | None:
    """GETs ``/health`` of host:port; credentials in the URI (``user:secret@``) go as basic auth,
    as MLflow sends them, never as part of the host name (nor into any message)."""
    host = parsed.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parsed.port is not None:
        netloc += f":{parsed.port}"
    url = urlunparse(parsed._replace(netloc=netloc)).rstrip("/") + "/health"
    headers = {}
    if parsed.username is not None:
        token = f"{unquote(parsed.username)}:{unquote(parsed.password or '')}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(token).decode("ascii")
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers, method="GET"), timeout=timeout_s):
            return None
    except urllib.error.HTTPError:  # the server answered (404 from an old MLflow, 401 behind auth)
        return None
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        return f"no answer within {timeout_s:g} s ({reason})"


def _probe_sqlite(uri: str) -> str | None:
    path = uri.removeprefix("sqlite:///")
    if path in ("", ":memory:"):
        return None
    db = Path(path.split("?", 1)[0])  # sqlite:///rel.db -> rel.db, sqlite:////abs.db -> /abs.db
    if db.exists():
        try:
            with closing(sqlite3.connect(f"file:{db}?mode=rw", uri=True, timeout=1.0)) as conn:
                conn.execute("PRAGMA schema_version")  # reads the header: a foreign file fails here
        except sqlite3.Error as err:
            return f"cannot open {db} for writing ({err})"
        return None
    return _probe_folder(db.parent)


def _probe_folder(folder: Path) -> str | None:
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is None or not existing.is_dir():
        return f"{folder} cannot be created ({existing} is not a folder)"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable by this user"
    return None


def redact(uri: str) -> str:
    """The URI without a password (``user:secret@host`` -> ``user:***@host``)."""
    parsed = urlparse(uri)
    if parsed.password:
        return uri.replace(f":{parsed.password}@", ":***@", 1)
    return uri
