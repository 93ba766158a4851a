"""Array types and the few numeric helpers every statistics module shares.

The kernels of this package take and return float arrays, so the same code answers one
experiment or a simulation of thousands at once; the typed API calls them with scalars.

scipy.special is imported inside the functions that use it: the server imports this
package through its routers and store, and scipy.special alone adds ~18 MB to a process
that may never analyse an experiment.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from tuneloop.errors import ConfigError

Floats = npt.NDArray[np.float64]
# Every result says whether it could be computed; never NaN or inf in its place.
Status = Literal["ok", "not_enough_data"]


def floats(values: npt.ArrayLike) -> Floats:
    """The values as a float64 array (no copy when they already are one)."""
    return np.asarray(values, dtype=np.float64)


def dot(a: Floats, b: Floats) -> float:
    """Sum of products of two 1-D float arrays.

    ``einsum`` rather than ``a @ b``: BLAS dot products start worker threads, and on a
    busy machine waking them costs more than the whole single-threaded pass.
    """
    return float(np.einsum("i,i->", a, b))


def finite_or_none(value: float | np.floating | None) -> float | None:
    """A plain float, or None when the value is missing, NaN or infinite (JSON has neither)."""
    if value is None:
        return None
    out = float(value)
    return out if math.isfinite(out) else None


def two_sided_p(z: npt.ArrayLike, df: npt.ArrayLike) -> Floats:
    """Two-sided p-value of a z or t statistic; ``df = inf`` is the normal distribution."""
    from scipy import special

    return floats(2.0 * special.stdtr(floats(df), -np.abs(floats(z))))


def lower_tail(z: npt.ArrayLike, df: npt.ArrayLike) -> Floats:
    """P(T <= z) for Student's t with ``df`` degrees of freedom (normal when infinite)."""
    from scipy import special

    return floats(special.stdtr(floats(df), floats(z)))


def critical(level: npt.ArrayLike, df: npt.ArrayLike) -> Floats:
    """The ``level`` quantile of Student's t (normal when ``df`` is infinite), e.g. 0.975."""
    from scipy import special

    return floats(special.stdtrit(floats(df), floats(level)))


def normal_quantile(level: float) -> float:
    """The ``level`` quantile of the standard normal distribution."""
    from scipy import special

    return float(special.ndtri(level))


def check_alpha(alpha: float, *, name: str = "alpha") -> None:
    """Reject a significance level outside (0, 0.5).

    Raises:
        ConfigError: ``alpha`` is not a probability below one half.
    """
    if not (isinstance(alpha, int | float) and 0.0 < alpha < 0.5):
        raise ConfigError(f"{name} must be between 0 and 0.5 (e.g. 0.05), got {alpha!r}")


def to_jsonable(value: Any) -> Any:
    """Dataclasses, mappings and sequences as JSON-safe values: non-finite floats become None."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(item) for item in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return finite_or_none(value)
    return value
