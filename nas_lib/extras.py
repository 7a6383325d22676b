"""Optional dependencies (pyproject extras): which are missing, said before any work starts.

A module counts as installed when it imports, not merely when it is found: a half-installed
package that fails on import would otherwise pass the check and fail later, inside a step.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable

# The extra that installs each optional feature's modules (pyproject.toml [project.optional-dependencies]).
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "onnx": ("onnx", "onnxruntime"),  # onnxscript only for the dynamo exporter, checked where it is chosen
    # the library first: its Prefect integration imports Prefect, which creates Prefect's home folder
    "dask": ("distributed", "prefect_dask"),
    "ray": ("ray", "prefect_ray"),
}


def missing_modules(modules: Iterable[str]) -> list[str]:
    """The first name in ``modules`` that cannot be imported here (later ones are not tried:
    they usually import it), as a list; [] when all import."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            return [name]
    return []


def missing_extra(extra: str, what: str, modules: Iterable[str] = ()) -> str | None:
    """None when ``extra``'s modules (and ``modules``) import, else one line naming the extra.

    Args:
        extra: a key of `EXTRA_MODULES`, the pyproject extra's name.
        what: the setting or command that needs it, the line's subject.
        modules: further modules this use needs beyond the extra's usual ones.
    """
    missing = missing_modules([*EXTRA_MODULES[extra], *modules])
    if not missing:
        return None
    return f"{what} needs the [{extra}] extra (missing: {', '.join(missing)}); install it with: pip install -e '.[{extra}]'"
