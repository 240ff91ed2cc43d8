r"""Quadrature tables for path integrals (Captum-equal) and the step axis they vmap over.

Integrated Gradients approximates :math:`\int_0^1 g(\alpha)\,d\alpha \approx \sum_s w_s\,g(\alpha_s)`.
The nodes :math:`\alpha_s` and weights :math:`w_s` are numpy constants computed exactly as
Captum's ``captum.attr._utils.approximation_methods`` does: Gauss-Legendre from
``numpy.polynomial.legendre.leggauss`` mapped from ``[-1, 1]`` to ``[0, 1]``, and the four
Riemann rules on an even grid.
"""

from typing import Any, Callable

import jax
import jax.numpy as jnp
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


AUTO_TOKEN_ROWS = 8192
"""``chunk_size="auto"`` on an accelerator keeps ``chunk * B * T`` at most this many token rows per
vmapped call: about 2-3 GB of activations and gradients for a MiniLM-sized model, 5-6 GB for
BERT-base (our choice, measured on MiniLM: unchunked IG-50 on 32 x 64 tokens asked XLA for
29 GB)."""

CPU_TOKEN_ROWS = 2048
"""``chunk_size="auto"`` on the CPU backend: a smaller budget, for speed rather than memory.
Measured on the 2-core development CPU (AMD EPYC; IG on 32 x 32 and 32 x 56 batches, run of
2026-11-23 23:32 UTC in ``experiments/benchmarks/results/bench_gradients.md``): 2-3.5k token rows
per pass were fastest per token-step, 1-1.8k rows 1.09-1.10x slower, 5-9k rows 1.27-1.35x
slower and 10-18k rows 1.87-1.88x slower (``experiments/benchmarks/profile_ig_pass.py``,
``[chunks]``). Our reading, not measured: at
2048 rows MiniLM's largest activation (``rows x 1536`` float32 in the FFN, 12.6 MB) stays in
the last-level cache, and beyond it the elementwise work around the matmuls runs from DRAM.
Rerun on 2026-12-06 on a host with twice the matmul peak: still fastest at 2048 rows on 32 x 32
and 3584 on 32 x 56. Our choice for the default; pass ``chunk_size`` to override."""


def auto_token_rows(backend: str | None = None) -> int:
  """The token-row budget of ``chunk_size="auto"``: :data:`CPU_TOKEN_ROWS` on the CPU backend,
  :data:`AUTO_TOKEN_ROWS` elsewhere (``backend`` defaults to ``jax.default_backend()``)."""
  backend = jax.default_backend() if backend is None else backend
  return CPU_TOKEN_ROWS if backend == "cpu" else AUTO_TOKEN_ROWS


def check_chunk_size(chunk_size: Any) -> None:
  """:class:`InputError` unless ``chunk_size`` is ``None``, ``"auto"`` or a positive int."""
  if chunk_size is None or (isinstance(chunk_size, str) and chunk_size == "auto"):
    return
  if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) \
      or chunk_size < 1:
    raise InputError(f"chunk_size must be a positive integer, 'auto' or None, got "
                     f"{chunk_size!r}.")


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


def resolve_chunk_size(chunk_size: int | str | None, steps: int, rows: int,
                       budget: int | None = None) -> int | None:
  """``"auto"`` -> a chunk keeping ``chunk * rows <= budget`` (at least 1), or ``None`` when all
  ``steps`` fit; other values unchanged. ``rows`` is ``B * T``; ``budget`` defaults to
  :func:`auto_token_rows` for the default backend.

  Of the chunks that fit, the largest that divides ``steps`` is taken when it is at least half the
  largest that fits: a remainder is one more compiled copy of the step (the ``[chunks]`` section
  of ``experiments/benchmarks/profile_ig_pass.py`` prints compile times with and without one),
  while halving a chunk that is already within the budget costs little speed.
  """
  check_chunk_size(chunk_size)
  if not isinstance(chunk_size, str):
    return chunk_size
  budget = auto_token_rows() if budget is None else budget
  chunk = max(1, budget // max(int(rows), 1))
  if chunk >= steps:
    return None
  divisor = max(d for d in range(1, chunk + 1) if steps % d == 0)
  return divisor if 2 * divisor >= chunk else chunk


def map_steps(fn: Callable[[Any], Any], xs: Any, chunk_size: int | str | None,
              rows: int = 1) -> Any:
  """``fn`` over the leading axis of ``xs``: one ``vmap`` (``None``) or chunks of ``chunk_size``.

  ``jax.lax.map(batch_size=)`` runs ``len // chunk_size`` full chunks in a loop and the remainder
  as one more vmapped call, so any chunk size is exact; a chunk larger than the axis is one vmap.
  ``"auto"`` picks the chunk from ``rows`` (``B * T`` of one step) by :func:`resolve_chunk_size`.
  """
  steps = jax.tree.leaves(xs)[0].shape[0]
  chunk_size = resolve_chunk_size(chunk_size, steps, rows)
  if chunk_size is None:
    return jax.vmap(fn)(xs)
  return jax.lax.map(fn, xs, batch_size=int(chunk_size))


def sum_steps(fn: Callable[[Any], Any], xs: Any, chunk_size: int | str | None,
              rows: int = 1) -> Any:
  """``sum_s fn(xs[s])`` over the leading axis of ``xs``, chunked as :func:`map_steps`.

  The same loop as :func:`map_steps`, but each chunk is added into a running total carried by
  ``jax.lax.scan`` instead of stacked, so memory holds one chunk of ``fn``'s outputs, not all
  ``S`` of them: for outputs as large as the word embeddings (``[B, T, E]`` per step) that is the
  difference between ``chunk`` and ``S`` copies.
  """
  steps = jax.tree.leaves(xs)[0].shape[0]
  chunk_size = resolve_chunk_size(chunk_size, steps, rows)

  def chunk_sum(part):
    return jax.tree.map(lambda y: y.sum(0), jax.vmap(fn)(part))

  if chunk_size is None or chunk_size >= steps:
    return chunk_sum(xs)
  chunk = int(chunk_size)
  full = steps // chunk
  head = jax.tree.map(lambda a: a[:full * chunk].reshape((full, chunk) + a.shape[1:]), xs)
  zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype),
                       jax.eval_shape(chunk_sum, jax.tree.map(lambda a: a[0], head)))
  total, _ = jax.lax.scan(lambda acc, part: (jax.tree.map(jnp.add, acc, chunk_sum(part)), None),
                          zeros, head)
  if steps % chunk:
    total = jax.tree.map(jnp.add, total, chunk_sum(jax.tree.map(lambda a: a[full * chunk:], xs)))
  return total
