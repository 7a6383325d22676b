"""Reference distributions of member scores on unlabelled architectures (no accuracy used).

A single architecture has no rank; the fit-free aggregations (`ensemble_free`, `az_nas`, and
`ensemble` outside its fitted space) place each member's score among these quantiles instead.
Regenerate with ``benchmarks/fit_ensemble.py --reference-out``; do not edit by hand.
"""

from __future__ import annotations

NOTE = "not generated yet"
QUANTILES: dict[str, list[float]] = {}
