"""One out-of-memory test and one failure text, shared by proxies, scoring, training and retries."""

from __future__ import annotations

import pytest
import torch

from nas_lib.failures import describe_failure, is_out_of_memory
from nas_lib.proxies.base import ProxyResult


class _DeviceOOM(torch.OutOfMemoryError):
    """A backend's own subclass of torch's error, with a message that does not say so."""


@pytest.mark.parametrize(
    "err, oom",
    [
        (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), True),
        (torch.cuda.OutOfMemoryError("CUDA error"), True),  # the same class under its CUDA name
        (_DeviceOOM("allocation refused"), True),  # a subclass: the type counts, not only the message
        (MemoryError(), True),  # Python's own, with no message at all
        (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8589934592 bytes"), True),  # torch on CPU
        (RuntimeError("MPS backend out of memory (MPS allocated: 1.2 GB)"), True),
        (RuntimeError("CUDNN_STATUS_INTERNAL_ERROR: failed to allocate workspace"), True),
        (ValueError("qkv_dim 250 is not divisible by num_heads 4"), False),
        (OSError(28, "No space left on device"), False),
        (RuntimeError("mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)"), False),
    ],
)
def test_out_of_memory_is_recognised_by_type_and_by_allocator_message(err: BaseException, oom: bool) -> None:
    assert is_out_of_memory(err) is oom


def test_a_failure_is_described_by_its_kind_and_the_first_line_of_its_message() -> None:
    assert describe_failure(ValueError("bad spec\ntraceback noise")) == "ValueError: bad spec"
    assert describe_failure(MemoryError()) == "out of memory: "
    assert describe_failure(RuntimeError("CUDA out of memory. " + "x" * 400)) == "out of memory: " + ("CUDA out of memory. " + "x" * 400)[:300]


def test_a_failed_proxy_result_carries_that_description() -> None:
    result = ProxyResult.failure(RuntimeError("DefaultCPUAllocator: can't allocate memory"), seconds=0.5)
    assert not result.ok and result.state == "failed" and result.seconds == 0.5 and result.value != result.value
    assert result.error == "out of memory: DefaultCPUAllocator: can't allocate memory"
    assert ProxyResult.failure("non-finite score nan").error == "non-finite score nan"
