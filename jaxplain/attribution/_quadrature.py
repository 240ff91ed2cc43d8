r"""Quadrature tables for path integrals (Captum-equal) and the step axis they vmap over.

Integrated Gradients approximates :math:`\int_0^1 g(\alpha)\,d\alpha \approx \sum_s w_s\,g(\alpha_s)`.
The nodes :math:`\alpha_s` and weights :math:`w_s` are numpy constants computed exactly as
Captum's ``captum.attr._utils.approximation_methods`` does: Gauss-Legendre from
``numpy.polynomial.legendre.leggauss`` mapped from ``[-1, 1]`` to ``[0, 1]``, and the four
Riemann rules on an even grid.
"""

from typing import Any, Callable

import jax
import numpy as np

from jaxplain.errors import InputError

QUADRATURES = ("gausslegendre", "riemann_left", "riemann_right", "riemann_middle",
               "riemann_trapezoid")
"""Integration rules; Captum calls this argument ``method``. ``gausslegendre`` is the default."""


def check_steps(steps: Any, quadrature: str) -> None:
  """:class:`InputError` for an unknown rule or too few steps (Riemann needs 2, as in Captum)."""
  if quadrature not in QUADRATURES:
    raise InputError(f"unknown quadrature {quadrature!r}; use one of {', '.join(QUADRATURES)}.")
  if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)):
    raise InputError(f"steps must be an integer, got {steps!r}.")
  least = 1 if quadrature == "gausslegendre" else 2
  if steps < least:
    raise InputError(f"steps={steps} is too few for {quadrature}; use steps >= {least} "
                     "(50 is the default).")


def check_chunk_size(chunk_size: Any) -> None:
  """:class:`InputError` unless ``chunk_size`` is ``None`` or a positive int (any value works)."""
  if chunk_size is None:
    return
  if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) \
      or chunk_size < 1:
    raise InputError(f"chunk_size must be a positive integer or None, got {chunk_size!r}.")


def quadrature_table(quadrature: str, steps: int) -> tuple[np.ndarray, np.ndarray]:
  r"""Nodes and weights ``([S], [S])`` float64 on ``[0, 1]``, equal to Captum's.

  Gauss-Legendre: :math:`\alpha_s = (1 + x_s)/2`, :math:`w_s = v_s / 2` for the Legendre nodes
  :math:`x_s` and weights :math:`v_s`. Riemann: ``1/S`` weights (halved at both ends for the
  trapezoid) on ``linspace`` grids: left ``[0, 1-1/S]``, right ``[1/S, 1]``, middle
  ``[1/(2S), 1-1/(2S)]``, trapezoid ``[0, 1]``.

  Args:
    quadrature: one of :data:`QUADRATURES` (Captum: ``method``).
    steps: number of nodes (Captum: ``n_steps``).
  Returns:
    ``(alphas, weights)``, each ``[S]``.
  """
  check_steps(steps, quadrature)
  n = int(steps)
  if quadrature == "gausslegendre":
    x, v = np.polynomial.legendre.leggauss(n)
    return 0.5 * (1.0 + x), 0.5 * v
  weights = np.full(n, 1.0 / n)
  if quadrature == "riemann_trapezoid":
    weights[0] /= 2
    weights[-1] /= 2
    alphas = np.linspace(0.0, 1.0, n)
  elif quadrature == "riemann_left":
    alphas = np.linspace(0.0, 1.0 - 1.0 / n, n)
  elif quadrature == "riemann_middle":
    alphas = np.linspace(1.0 / (2 * n), 1.0 - 1.0 / (2 * n), n)
  else:
    alphas = np.linspace(1.0 / n, 1.0, n)
  return alphas, weights


def map_steps(fn: Callable[[Any], Any], xs: Any, chunk_size: int | None) -> Any:
  """``fn`` over the leading axis of ``xs``: one ``vmap`` (``None``) or chunks of ``chunk_size``.

  ``jax.lax.map(batch_size=)`` runs ``len // chunk_size`` full chunks in a loop and the remainder
  as one more vmapped call, so any chunk size is exact; a chunk larger than the axis is one vmap.
  """
  check_chunk_size(chunk_size)
  if chunk_size is None:
    return jax.vmap(fn)(xs)
  return jax.lax.map(fn, xs, batch_size=int(chunk_size))
