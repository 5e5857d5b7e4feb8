"""A loaded program's inputs and outputs, and what differs from the manifest's entries for them."""

from __future__ import annotations

from collections.abc import Sequence

from ..manifest_reader import TensorEntry

TensorSig = tuple[str | None, tuple[int, ...], str]  # (name, or None where the program keeps none; shape, -1 symbolic; dtype)
Signature = tuple[list[TensorSig], list[TensorSig]]


def signature_mismatch(got: Signature, inputs: Sequence[TensorEntry], outputs: Sequence[TensorEntry],
                       float_dtype: str = "float32") -> str | None:
    """What differs between a loaded program's (inputs, outputs) and the manifest's entries, or
    None; `float_dtype` replaces float32 for programs with float16 I/O."""
    for side, have, want in (("input", got[0], inputs), ("output", got[1], outputs)):
        if len(have) != len(want):
            return f"{len(have)} {side}s, the manifest lists {len(want)}"
        for (name, shape, dtype), spec in zip(have, want, strict=True):
            expected = float_dtype if spec.dtype == "float32" else spec.dtype
            if name is not None and name != spec.name:
                return f"{side} {name!r} where the manifest lists {spec.name!r}"
            if len(shape) != len(spec.shape) or any(d not in (-1, s) for d, s in zip(shape, spec.shape)):
                return f"{side} {spec.name!r} of shape {list(shape)}, the manifest lists {list(spec.shape)}"
            if dtype != expected:
                return f"{side} {spec.name!r} of dtype {dtype}, the manifest lists {expected}"
    return None
