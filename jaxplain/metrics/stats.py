"""A seeded percentile-bootstrap interval for a mean (host-side; deterministic given the seed)."""

import dataclasses

import jax
import numpy as np


@dataclasses.dataclass(frozen=True)
class Interval:
  """A mean with its bootstrap interval over ``n`` finite values (NaN when ``n == 0``)."""

  mean: float
  low: float
  high: float
  n: int


def bootstrap_ci(values, *, confidence: float = 0.95, resamples: int = 1000,
                 seed: int = 0) -> Interval:
  """Percentile bootstrap interval of the mean of ``values`` (NaNs dropped first).

  Resampling indices come from ``jax.random`` with ``key(seed)`` (the library never uses
  ``numpy.random``), so the interval is the same on every machine for the same inputs.

  Args:
    values: ``[N]`` per-example metric values.
    confidence: 0.95 for a 95% interval.
    resamples: bootstrap replicates.
    seed: PRNG seed.
  Returns:
    :class:`Interval` (``low``/``high`` are the ``(1 -+ confidence) / 2`` quantiles of the
    resampled means).
  """
  x = np.asarray(values, np.float64).ravel()
  x = x[np.isfinite(x)]
  n = int(x.size)
  if n == 0:
    return Interval(float("nan"), float("nan"), float("nan"), 0)
  idx = np.asarray(jax.random.randint(jax.random.key(seed), (resamples, n), 0, n))
  means = x[idx].mean(axis=1)
  a = (1.0 - confidence) / 2.0
  low, high = np.quantile(means, [a, 1.0 - a])
  return Interval(float(x.mean()), float(low), float(high), n)
