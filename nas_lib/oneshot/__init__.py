"""One-shot (weight-sharing) NAS: on the NAS-Bench-201 cell space a supernet and its trainers
(DARTS first and second order, DrNAS, SPOS, ENAS); on the hybrid space a supernet of the widest
blocks with subnets by path and width, trained by SPOS with the sandwich rule (``hybrid_spos``),
by ENAS (``hybrid_enas``) or by GDAS' sampled differentiable relaxation (``hybrid_gdas``);
inherited-weight scoring with BN recalibration; and the ask/tell strategies through which
`ehnas bench search` and the pipeline run them.

`train_supernet(space, data, OneShotConfig(method="darts"), cache_dir)` trains (resumes, or
loads) a supernet; `METHODS` holds the methods by name. Pure library: torch and numpy only.
"""

from __future__ import annotations

from nas_lib.oneshot import darts, drnas, enas, hybrid, spos  # noqa: F401  (modules register themselves)
from nas_lib.oneshot.scoring import RankCorrelation, inherited_accuracy, rank_correlation, recalibrate_bn
from nas_lib.oneshot.supernet import Supernet
from nas_lib.oneshot.trainer import METHODS, OneShotConfig, OneShotMethod, TrainOutcome, checkpoint_folder, train_supernet

__all__ = [
    "METHODS",
    "OneShotConfig",
    "OneShotMethod",
    "RankCorrelation",
    "Supernet",
    "TrainOutcome",
    "checkpoint_folder",
    "inherited_accuracy",
    "rank_correlation",
    "recalibrate_bn",
    "train_supernet",
]
