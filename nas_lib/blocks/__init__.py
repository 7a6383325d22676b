"""Block families of the hybrid space: one module each, registered in `BLOCKS` by name.

A family declares its code digit (its value in the type position of architecture codes), its
hyperparameter choices (the full space), an optional rule over a chosen combination, and a
factory that builds the block for a given input. Adding a family is one new module here (ending
in ``BLOCKS.add(name, BlockFamily(name=..., digit=<next free digit>, ...))``) plus its import
below. The import order does not matter: the digits are declared, and a taken digit is refused.
"""

from nas_lib.blocks import cnn as _cnn  # noqa: F401
from nas_lib.blocks import mamba as _mamba  # noqa: F401
from nas_lib.blocks import vit as _vit  # noqa: F401
from nas_lib.blocks.base import BLOCKS, BlockFamily, TokenBlock

__all__ = ["BLOCKS", "BlockFamily", "TokenBlock"]
