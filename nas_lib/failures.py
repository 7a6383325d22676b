"""What a failed computation was: one test for out-of-memory errors and one text for any failure.

Proxies, the evaluation store, training and the retry policy all ask the same two questions of an
exception: did the device run out of memory (so the cache is released, nothing is retried and the
failure belongs to that architecture), and what one line describes it in a row. Both answers live
here, without importing torch, so the library's lighter parts can ask them too.
"""

from __future__ import annotations

# Allocator messages: PyTorch's CUDA/MPS/XPU "out of memory", its CPU allocator's "can't allocate
# memory", and "failed to allocate" (cuDNN/cuBLAS workspaces, some XLA and ROCm builds).
OOM_MESSAGES = ("out of memory", "can't allocate memory", "failed to allocate")


def is_out_of_memory(err: BaseException) -> bool:
    """True for an allocation failure on any device.

    That is Python's `MemoryError`, torch's `OutOfMemoryError` (``torch.cuda.OutOfMemoryError`` is
    the same class) or any subclass of it, or an exception whose message is an allocator's
    (`OOM_MESSAGES`, any case), as torch raises a plain `RuntimeError` for some devices.
    """
    if isinstance(err, MemoryError) or any(cls.__name__ == "OutOfMemoryError" for cls in type(err).__mro__):
        return True
    text = str(err).lower()
    return any(message in text for message in OOM_MESSAGES)


def describe_failure(err: BaseException) -> str:
    """``"<kind>: <first line of the message>"`` (at most 300 characters of it): the kind is ``out of
    memory`` for an allocation failure, else the exception's type (``ValueError: ...``)."""
    kind = "out of memory" if is_out_of_memory(err) else type(err).__name__
    text = str(err)
    return f"{kind}: {text.splitlines()[0][:300] if text else ''}"
