"""Makes finalist training hang, for the signal tests: on a ``PYTHONPATH`` with this folder first,
`nas_lib.train.train_and_evaluate` writes the file named by ``EHNAS_TEST_HANG_MARK`` and then
waits forever in Python code (as a step that never ends would)."""

import os
import time
from pathlib import Path

if os.environ.get("EHNAS_TEST_HANG_MARK"):
    import nas_lib.train

    def _hang(*_args, **_kwargs):
        Path(os.environ["EHNAS_TEST_HANG_MARK"]).write_text(str(os.getpid()))
        while True:
            time.sleep(0.05)  # a Python line every 50 ms: where an interruption can land

    nas_lib.train.train_and_evaluate = _hang
