"""The fixed-length integer code of a hybrid architecture, independent of any pruning.

`MAX_DEPTH` slots of `SLOT` digits each: the block type (0 = no block, else the digit each family
declares when it registers: cnn 1, vit 2, mamba 3), the connection's index in `CONNECTIONS`, then each field's index in the
family's FULL choice list, zero-padded to `MAX_FIELDS`. Empty slots are all zeros and come last.
Because digits index the full lists, a code means the same architecture in every pruned space.
The functions here translate between digits and (type, connection, params) triples; the space
turns triples into specs and checks them against its constraints.
"""

from __future__ import annotations

from collections.abc import Sequence

from nas_lib.blocks import BLOCKS
from nas_lib.space.base import InvalidArchitectureError
from nas_lib.space.constraints import CONNECTIONS, MAX_DEPTH, block_types

MAX_FIELDS = max(len(BLOCKS.get(t).fields) for t in block_types())
SLOT = 2 + MAX_FIELDS

Block = tuple[str, str, dict[str, int]]  # (type, connection, params)


def cardinalities() -> tuple[int, ...]:
    """Number of values of each digit (the type digit runs up to the largest declared one)."""
    types = block_types()
    field_card = [max([len(BLOCKS.get(t).fields[j][1]) for t in types if j < len(BLOCKS.get(t).fields)] or [1]) for j in range(MAX_FIELDS)]
    return tuple([BLOCKS.max_digit() + 1, len(CONNECTIONS), *field_card] * MAX_DEPTH)


def encode_blocks(blocks: Sequence[tuple[str, str, Sequence[tuple[str, int]]]]) -> tuple[int, ...]:
    """The code of `blocks`, each given as (type, connection, ((field, value), ...))."""
    code: list[int] = []
    for t, connection, params in blocks:
        family = BLOCKS.get(t)
        digits = [family.choices(name).index(value) for name, value in params]
        code += [family.digit, CONNECTIONS.index(connection), *digits, *[0] * (MAX_FIELDS - len(digits))]
    return tuple(code + [0] * (SLOT * MAX_DEPTH - len(code)))


def decode_blocks(code: Sequence[int]) -> list[Block]:
    """The blocks a code spells.

    Raises:
        InvalidArchitectureError: wrong length, a digit out of range, non-zero padding, or a
            block after an empty slot.
    """
    if len(code) != SLOT * MAX_DEPTH:
        raise InvalidArchitectureError("code", f"expected {SLOT * MAX_DEPTH} digits, got {len(code)}")
    blocks: list[Block] = []
    ended = False
    for i, slot in enumerate(slots(code)):
        if slot[0] == 0:
            if any(slot):
                raise InvalidArchitectureError(f"block {i}", "an empty slot must be all zeros")
            ended = True
            continue
        if ended:
            raise InvalidArchitectureError(f"block {i}", "a block follows an empty slot (blocks must be contiguous)")
        blocks.append(_decode_slot(i, slot))
    return blocks


def lenient_blocks(code: Sequence[int]) -> list[Block]:
    """Every non-empty slot read with each digit taken modulo its range (for projection of
    arbitrary integer vectors, e.g. from a continuous optimiser); a type digit no family
    declares reads as an empty slot."""
    out: list[Block] = []
    for slot in slots(code):
        digit = slot[0] % (BLOCKS.max_digit() + 1)
        if digit not in BLOCKS.digits():
            continue
        family = BLOCKS.by_digit(digit)
        params = {name: choices[slot[2 + j] % len(choices)] for j, (name, choices) in enumerate(family.fields)}
        out.append((family.name, CONNECTIONS[slot[1] % len(CONNECTIONS)], params))
    return out


def slots(code: Sequence[int]) -> list[list[int]]:
    return [[int(d) for d in code[i * SLOT : (i + 1) * SLOT]] for i in range(MAX_DEPTH)]


def _decode_slot(i: int, slot: list[int]) -> Block:
    if not 1 <= slot[0] <= BLOCKS.max_digit():
        raise InvalidArchitectureError(f"block {i} type", f"digit {slot[0]} is outside 0..{BLOCKS.max_digit()}")
    if slot[0] not in BLOCKS.digits():
        raise InvalidArchitectureError(f"block {i} type", f"digit {slot[0]} names no block family (in use: {', '.join(map(str, BLOCKS.digits()))})")
    family = BLOCKS.by_digit(slot[0])
    if not 0 <= slot[1] < len(CONNECTIONS):
        raise InvalidArchitectureError(f"block {i} connection", f"digit {slot[1]} is outside 0..{len(CONNECTIONS) - 1}")
    params = {}
    for j, digit in enumerate(slot[2:]):
        if j >= len(family.fields):
            if digit:
                raise InvalidArchitectureError(f"block {i} {family.name}", f"padding digit {j} must be 0, got {digit}")
            continue
        name, choices = family.fields[j]
        if not 0 <= digit < len(choices):
            raise InvalidArchitectureError(f"block {i} {family.name}.{name}", f"digit {digit} is outside 0..{len(choices) - 1}")
        params[name] = choices[digit]
    return family.name, CONNECTIONS[slot[1]], params
