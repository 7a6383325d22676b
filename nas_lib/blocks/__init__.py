"""Block families of the hybrid space: one module each, registered in `BLOCKS` by name.

A family declares its hyperparameter choices (the full space), an optional rule over a chosen
combination, and a factory that builds the block for a given input. Adding a family is one new
module here plus its import below.
"""

from nas_lib.blocks.base import BLOCKS, BlockFamily, TokenBlock

# Registration order fixes each family's digit in the architecture code: append, never reorder.
from nas_lib.blocks import cnn as _cnn  # noqa: F401,E402
from nas_lib.blocks import vit as _vit  # noqa: F401,E402
from nas_lib.blocks import mamba as _mamba  # noqa: F401,E402

__all__ = ["BLOCKS", "BlockFamily", "TokenBlock"]
