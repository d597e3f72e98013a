"""Argument checks shared by the public entry points.

Every check raises ``TypeError`` or ``ValueError`` whose message names the argument and
the offending value, so that a user never sees a traceback from deep inside torch.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any, Optional, Union

import numpy as np
import torch

ArrayLike = Union[torch.Tensor, np.ndarray, list, tuple]


class InvalidValue(ValueError):
    """A bad argument or setting; ``name`` is the argument or :class:`Config` field."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


class InvalidType(TypeError):
    """An argument or setting of the wrong type; ``name`` names it."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


def check_choice(name: str, value: Any, choices: tuple[Any, ...]) -> Any:
    """Return ``value`` if it is one of ``choices``, else raise naming ``name``."""
    if value not in choices:
        raise InvalidValue(name, f"{name} must be one of {choices}. Got {value!r}.")
    return value


def check_int(name: str, value: Any, low: int = 0, high: Optional[int] = None) -> int:
    """Return ``value`` as an int in ``[low, high]`` or raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        message = f"{name} must be an int in [{low}, {_hi(high)}. Got {value!r} instead."
        raise InvalidType(name, message)
    value = int(value)
    if value < low or (high is not None and value > high):
        message = f"{name} must be an int in [{low}, {_hi(high)}. Got {value} instead."
        raise InvalidValue(name, message)
    return value


def check_ks(ks: Any, high: Optional[int] = None, name: str = "ks") -> tuple[int, ...]:
    """Metric cutoffs as a sorted tuple of distinct ints in ``[1, high]``: one int or a
    sequence of ints (a str is refused, not read digit by digit)."""
    if isinstance(ks, np.ndarray) and ks.ndim == 0:
        ks = ks.item()
    if isinstance(ks, (numbers.Integral, np.integer)) and not isinstance(ks, bool):
        ks = (ks,)
    if isinstance(ks, (str, bytes, dict)) or not isinstance(ks, Iterable):
        message = f"{name} must be an int or a list of ints. Got {ks!r} instead."
        raise InvalidType(name, message)
    out = tuple(sorted({check_int(name, k, low=1, high=high) for k in ks}))
    if not out:
        raise InvalidValue(name, f"{name} must hold at least one cutoff.")
    return out


def check_float(
    name: str,
    value: Any,
    low: float = -math.inf,
    high: float = math.inf,
    low_open: bool = False,
) -> float:
    """Return ``value`` as a finite float in ``[low, high]`` (``(low, high]`` if low_open)."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise InvalidType(name, f"{name} must be a real number. Got {value!r} instead.")
    value = float(value)
    bad = not math.isfinite(value) or value > high or value < low or (low_open and value == low)
    if bad:
        bracket = "(" if low_open else "["
        raise InvalidValue(
            name, f"{name} must be a finite number in {bracket}{low}, {high}]. Got {value} instead."
        )
    return value


def _hi(high: Optional[int]) -> str:
    return "inf)" if high is None else f"{high}]"


def as_index_tensor(
    name: str,
    value: ArrayLike,
    size: Optional[int] = None,
    device: Optional[Union[str, torch.device]] = None,
) -> torch.Tensor:
    """Convert ids to a 1-D int64 tensor on ``device`` and check they lie in ``[0, size)``.

    Float, bool and complex inputs are rejected even when their values are whole numbers:
    a float id is almost always a bug upstream (a NaN-filled column, a mean).
    """
    if isinstance(value, torch.Tensor):
        t = value
    elif isinstance(value, (np.ndarray, list, tuple, range)) or np.isscalar(value):
        arr = np.asarray(value)
        if arr.dtype == object:
            raise TypeError(f"{name} must be integer ids. Got an array of dtype object instead.")
        if not (np.issubdtype(arr.dtype, np.integer) or arr.size == 0):
            raise TypeError(f"{name} must hold integer ids. Got dtype {arr.dtype} instead.")
        t = torch.from_numpy(np.ascontiguousarray(arr.astype(np.int64, copy=False)))
    else:
        raise TypeError(
            f"{name} must be a 1-D tensor or array of integer ids. Got {type(value).__name__}."
        )
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        if t.numel() > 0 or t.dtype == torch.bool:
            raise TypeError(f"{name} must hold integer ids. Got dtype {t.dtype} instead.")
    if t.dim() == 0:
        t = t.reshape(1)
    if t.dim() != 1:
        raise ValueError(f"{name} must be 1-D. Got shape {tuple(t.shape)} instead.")
    t = t.to(device=device, dtype=torch.int64)
    if t.numel() and size is not None:
        lo, hi = int(t.min()), int(t.max())
        if lo < 0 or hi >= size:
            bad = lo if lo < 0 else hi
            raise ValueError(f"{name} must lie in [0, {size}). Got id {bad} instead.")
    return t


def check_device(device: Union[str, torch.device, None]) -> torch.device:
    """Parse ``device`` and fail clearly when it names a CUDA device that is not there."""
    if device is None:
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        message = f"device must name a torch device. Got {device!r} instead."
        raise InvalidValue("device", message) from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        message = f"device is {device!r} but CUDA is not available on this machine."
        raise InvalidValue("device", message)
    return dev
