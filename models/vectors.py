"""Half-precision storage of interest vectors: half the bytes of float32, and the same on every path.

A stored vector is float16 times a power of two chosen from its largest component, so decayed sums
of any size keep 11 significant bits and scaling is exact. `apply_event` rounds every vector it
produces to what the codec stores; a state therefore does not depend on how events were batched
between reads and writes.
"""

from __future__ import annotations

import numpy as np


def to_half(v: np.ndarray) -> tuple[np.ndarray, int]:
    """(float16 mantissas, exponent) with v ≈ mantissas * 2**exponent, every |mantissa| < 1.

    Idempotent: to_half(from_half(*to_half(v))) == to_half(v), bit for bit. The largest mantissa
    lies in [0.5, 1), so a stored vector yields the same exponent again; a largest component
    that rounds up to 1.0 moves to the next exponent first. Defined for |v| < 2**127 (interest
    sums are sums of unit vectors times small weights: many orders of magnitude below).
    """
    v32 = np.asarray(v, dtype=np.float32)
    top = float(np.max(np.abs(v32))) if v32.size else 0.0
    exponent = int(np.frexp(top)[1]) if top > 0 and np.isfinite(top) else 0
    half = np.ldexp(v32, -exponent).astype(np.float16)
    if half.size and float(np.max(np.abs(half))) >= 1.0:
        exponent += 1
        half = np.ldexp(v32, -exponent).astype(np.float16)
    return half, exponent


def from_half(half: np.ndarray, exponent: int) -> np.ndarray:
    return np.ldexp(half.astype(np.float32), exponent).astype(np.float32)


def stored(v: np.ndarray) -> np.ndarray:
    """`v` as it reads back from storage."""
    return from_half(*to_half(v))
