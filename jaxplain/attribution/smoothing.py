r"""SmoothGrad, SmoothGrad-squared and VarGrad: Method -> Method combinators (Captum NoiseTunnel).

A noise tunnel runs a base method ``K`` times on word embeddings with Gaussian noise added,
:math:`\tilde x^{(k)} = x + \epsilon^{(k)}`, :math:`\epsilon^{(k)} \sim \mathcal N(0, \sigma^2 I)`,
and reduces the ``K`` score maps: their mean (SmoothGrad), mean of squares (SmoothGrad-squared)
or variance (VarGrad). :func:`noise_tunnel` wraps any kernel that takes ``embeddings=``
(``optax.chain`` style); :func:`smoothgrad`, :func:`smoothgrad_sq` and :func:`vargrad` are the
registered kernels, with the base method chosen by name through the static ``base``. With
``per_dimension=True`` the reduction runs per embedding dimension before the sum over ``E``,
exactly as Captum's ``NoiseTunnel`` (it matters for the squared kinds only).

Noise is a pure function of the key: example ``b`` uses ``fold_in(key, b)`` (or ``key[b]`` when a
key per example ``[B]`` is given, the sweep's and ``jaxplain.attribute``'s convention), sample
``k`` folds in ``k`` and token ``t`` folds in ``t``, its position in its own example. An
example's noise therefore depends neither on the batch it is in nor on how far it is padded, nor
on the packed row it shares (keys ``[B, S]`` per slot), so batch invariance, masked == dropped
and packed == unpacked hold for these methods too.
"""

import functools
import inspect
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from jaxplain.attribution._common import embed, example_axes, masked, resolve_target
from jaxplain.attribution._names import ALIASES
from jaxplain.attribution._quadrature import check_chunk_size, map_steps
from jaxplain.attribution.gradients import (PER_DIMENSION, gradient, gradient_x_input,
                                            integrated_gradients, saliency)
from jaxplain.contracts import Batch, Forward, Method, Params, Target
from jaxplain.errors import InputError

KINDS = ("smoothgrad", "smoothgrad_sq", "vargrad")
"""Reductions over samples (Captum: ``nt_type``)."""

BASES: dict[str, Method] = {
    "saliency": saliency,
    "gradient": gradient,
    "gradient_x_input": gradient_x_input,
    "integrated_gradients": integrated_gradients,
}
"""Base methods the registered kernels accept by name (``base=``)."""

_TOKEN_IDS = ("pad_id", "mask_id", "unk_id", "special_ids")


def folded_keys(key: PRNGKeyArray, index: Any) -> PRNGKeyArray:
  """``fold_in(key, i)`` for every integer ``i`` of ``index`` (any shape), in its shape."""
  index = jnp.asarray(index, jnp.int32)
  return jax.vmap(lambda i: jax.random.fold_in(key, i))(index.reshape(-1)).reshape(index.shape)


def example_keys(key: PRNGKeyArray | None, batch: Batch) -> PRNGKeyArray:
  """One key per example: ``[B]``, or ``[B, S]`` per slot of a packed batch.

  A single key gives example ``i`` the key ``fold_in(key, i)``, counting a packed batch's slots
  row by row (``i = b S + s``). Keys of that shape are used as they are (the sweep's, and
  ``jaxplain.attribute``'s: ``fold_in(key, text index)``, so a text's noise does not depend on
  the call, row or slot it lands in).
  """
  if key is None:
    raise InputError("a noise tunnel needs a PRNG key: pass key=jax.random.key(seed) (or seed= "
                     "to jaxplain.attribute).")
  dtype = getattr(key, "dtype", None)
  if dtype is None or not (jnp.issubdtype(dtype, jax.dtypes.prng_key) or dtype == jnp.uint32):
    raise InputError(f"key must be a jax.random.key (or a raw uint32 PRNGKey), got "
                     f"{type(key).__name__}; pass key=jax.random.key(seed).")
  if not jnp.issubdtype(dtype, jax.dtypes.prng_key):
    key = jax.random.wrap_key_data(key)  # raw uint32 keys [2], [B, 2] or [B, S, 2]
  shape = example_axes(batch)
  if key.ndim == 0:
    return folded_keys(key, jnp.arange(int(np.prod(shape))).reshape(shape))
  if key.shape == shape:
    return key
  raise InputError(f"key has shape {key.shape}; pass one key, or one per example {shape}.")


def embedding_noise(keys: PRNGKeyArray, sample: Any, batch: Batch, embedding_size: int,
                    stdev: Any) -> Float[Array, "B T E"]:
  """Sample ``sample``'s noise ``stdev * N(0, I)`` ``[B, T, E]`` from the example keys.

  Token ``t`` of an example with key ``k`` draws from ``fold_in(fold_in(k, sample), t)``, ``t``
  counted from the example's first token: in a packed batch each token reads its slot's key and
  its position in its own example, so a packed example gets the noise it gets alone.
  """
  e = embedding_size

  def draw(k, position):  # [E]
    return jax.random.normal(jax.random.fold_in(jax.random.fold_in(k, sample), position), (e,))

  if batch.packing is None:
    t = batch.input_ids.shape[1]
    noise = jax.vmap(lambda k: jax.vmap(lambda i: draw(k, i))(jnp.arange(t)))(keys)
  else:
    slots = batch.packing.token_slots()  # padding reads slot 0's key
    token_keys = jax.vmap(lambda row, s: row[s])(keys, slots)  # [B, T]
    noise = jax.vmap(jax.vmap(draw))(token_keys, batch.packing.position_ids)
  return jnp.asarray(stdev, jnp.float32) * noise


def reduce_samples(scores: Float[Array, "K B T *E"], kind: str) -> Float[Array, "B T *E"]:
  """Mean (``smoothgrad``), mean of squares (``smoothgrad_sq``) or variance (``vargrad``)."""
  mean = jnp.mean(scores, axis=0)
  if kind == "smoothgrad":
    return mean
  mean_sq = jnp.mean(scores * scores, axis=0)
  return mean_sq if kind == "smoothgrad_sq" else mean_sq - mean * mean  # Captum's VarGrad


def _check(kind: str, samples: Any, stdev: Any, chunk_size: Any) -> None:
  if kind not in KINDS:
    raise InputError(f"unknown noise tunnel kind {kind!r}; use one of {', '.join(KINDS)}.")
  if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 1:
    raise InputError(f"samples must be a positive integer, got {samples!r}.")
  check_chunk_size(chunk_size)
  if not isinstance(stdev, jax.core.Tracer):
    value = np.asarray(stdev)
    if value.ndim != 0 or not np.isfinite(value) or value < 0:
      raise InputError(f"stdev must be a finite number >= 0 (the noise's standard deviation "
                       f"on the word embeddings), got {stdev!r}.")


def noise_tunnel(method: Method, *, kind: str = "smoothgrad", samples: int = 10,
                 stdev: float = 0.15, chunk_size: int | str | None = "auto",
                 per_dimension: bool = False) -> Method:
  r"""Wraps ``method`` into its noise-tunnel version (Captum ``NoiseTunnel``).

  .. math:: \mathrm{SG}(x) = \frac1K \sum_k m(x + \epsilon^{(k)}), \quad
     \mathrm{VG}(x) = \frac1K \sum_k m(x + \epsilon^{(k)})^2 - \mathrm{SG}(x)^2

  Args:
    method: a kernel taking ``embeddings=`` (every kernel in :mod:`.gradients`).
    kind: ``"smoothgrad"``, ``"smoothgrad_sq"`` or ``"vargrad"`` (Captum: ``nt_type``).
    samples: ``K`` (Captum: ``nt_samples``).
    stdev: noise standard deviation on the word embeddings (Captum: ``stdevs``).
    chunk_size: samples per chunk (``None``: all ``K`` in one vmap; Captum:
      ``nt_samples_batch_size``).
    per_dimension: reduce the samples per embedding dimension, on the method's ``[B, T, E]``
      form from :data:`~jaxplain.attribution.gradients.PER_DIMENSION`, and then sum over ``E``:
      exactly Captum's ``NoiseTunnel`` output summed over ``E``. ``False`` (default) reduces
      the method's ``[B, T]`` token scores (see Notes). ``method`` must then be one of the
      gradient kernels, or a ``functools.partial`` of one.
  Returns:
    A kernel ``(forward, params, batch, target=None, *, key, noise=None, **hyper) -> [B, T]``;
    ``noise [K, B, T, E]`` replaces the drawn noise (as given, not scaled by ``stdev``), and
    ``hyper`` goes to ``method``.
  Examples:
    >>> sg = noise_tunnel(functools.partial(integrated_gradients, steps=16), samples=4)  # doctest: +SKIP
    >>> scores = sg(forward, params, batch, key=jax.random.key(0))                     # doctest: +SKIP
  References:
    Smilkov et al., `SmoothGrad <https://arxiv.org/abs/1706.03825>`_, 2017; Adebayo et al.,
    `Local Explanation Methods for Deep Neural Networks Lack Sensitivity to Parameter Values
    <https://arxiv.org/abs/1810.03307>`_ (VarGrad), 2018; Captum ``NoiseTunnel``.
  Notes:
    Captum reduces per embedding dimension and a user then sums over ``E``; by default we
    reduce the base method's ``[B, T]`` token scores. For ``smoothgrad`` the two agree exactly
    (sums commute); for ``smoothgrad_sq`` and ``vargrad`` ours squares the token score, Captum's
    the per-dimension attribution (``per_dimension=True``). Token-level squaring is our design
    choice (unverified against a paper for text): it measures how much a token's own score,
    the quantity a heatmap shows, moves under noise, and a per-dimension variance also counts
    movements along ``E`` that cancel in the token's score. Noise goes on the word embeddings,
    never on padding's relevance.
  """
  _check(kind, samples, stdev, chunk_size)
  if not isinstance(per_dimension, (bool, np.bool_)):
    raise InputError(f"per_dimension must be True or False, got {per_dimension!r}.")
  if per_dimension:
    method = _per_dimension_form(method)

  def smoothed(forward: Forward, params: Params, batch: Batch, target: Target = None, *,
               key: PRNGKeyArray | None = None,
               noise: Float[Array, "K B T E"] | None = None, **hyper: Any) -> Float[Array, "B T"]:
    target = resolve_target(forward, params, batch, target)
    x = embed(forward, params, batch).astype(jnp.float32)

    def run(noisy):
      return method(forward, params, batch, target, embeddings=noisy, **hyper)

    if noise is not None:
      if noise.ndim != 4 or tuple(noise.shape[1:]) != tuple(x.shape):
        raise InputError(f"noise has shape {tuple(noise.shape)}; it must be [K, B, T, E] with "
                         f"[B, T, E] = {tuple(x.shape)}.")
      scores = map_steps(lambda n: run(x + n.astype(jnp.float32)), noise, chunk_size,
                         rows=batch.input_ids.size)
    else:
      keys = example_keys(key, batch)
      scores = map_steps(lambda k: run(x + embedding_noise(keys, k, batch, x.shape[-1], stdev)),
                         jnp.arange(samples), chunk_size, rows=batch.input_ids.size)
    reduced = reduce_samples(scores, kind)  # [B, T] or, per dimension, [B, T, E]
    return masked(reduced.sum(-1) if per_dimension else reduced, batch.attention_mask)

  return smoothed


def _per_dimension_form(method: Any) -> Callable[..., Float[Array, "B T E"]]:
  """``method``'s ``[B, T, E]`` form from ``PER_DIMENSION``, through ``functools.partial``."""
  if isinstance(method, functools.partial):
    return functools.partial(_per_dimension_form(method.func), *method.args, **method.keywords)
  form = PER_DIMENSION.get(method)
  if form is None:
    names = ", ".join(f.__name__ for f in PER_DIMENSION)
    raise InputError(f"per_dimension=True needs a method with a per-embedding-dimension form "
                     f"({names}); {getattr(method, '__name__', method)!r} has none. Use "
                     "per_dimension=False to reduce its token scores.")
  return form


def _kernel(kind: str) -> Callable[..., Float[Array, "B T"]]:

  def kernel(forward: Forward, params: Params, batch: Batch, target: Target = None, *,
             key: PRNGKeyArray | None = None, base: str = "saliency", samples: int = 10,
             stdev: float = 0.15, chunk_size: int | str | None = "auto",
             noise: Float[Array, "K B T E"] | None = None, per_dimension: bool = False,
             pad_id: int = 0, mask_id: int = 103,
             unk_id: int = 100, special_ids: tuple[int, ...] = (101, 102),
             **base_hyper: Any) -> Float[Array, "B T"]:
    base = ALIASES.get(base, base)
    if base not in BASES:
      raise InputError(f"unknown base method {base!r} for {kind}; use one of "
                       f"{', '.join(BASES)}.")
    method = BASES[base]
    accepted = inspect.signature(method).parameters
    for name in base_hyper:
      if name not in accepted or name in ("key", "embeddings"):
        own = [p for p, v in inspect.signature(kernel).parameters.items()
               if v.kind == v.KEYWORD_ONLY and p not in ("key", *_TOKEN_IDS)]
        theirs = [p for p, v in accepted.items() if v.kind == v.KEYWORD_ONLY
                  and p not in ("key", "embeddings", *_TOKEN_IDS)]
        raise InputError(f"{kind} has no hyperparameter {name!r}; it takes {', '.join(own)}, "
                         f"and its base method {base!r} takes {', '.join(theirs) or 'none'}.")
    ids = dict(pad_id=pad_id, mask_id=mask_id, unk_id=unk_id, special_ids=special_ids)
    base_hyper.update({k: v for k, v in ids.items() if k in accepted})
    tunnel = noise_tunnel(method, kind=kind, samples=samples, stdev=stdev, chunk_size=chunk_size,
                          per_dimension=per_dimension)
    return tunnel(forward, params, batch, target, key=key, noise=noise, **base_hyper)

  kernel.__name__ = kernel.__qualname__ = kind
  return kernel


smoothgrad = _kernel("smoothgrad")
smoothgrad_sq = _kernel("smoothgrad_sq")
vargrad = _kernel("vargrad")
_DOC = r"""{title} of a gradient method on noisy word embeddings (Captum ``NoiseTunnel(nt_type="{kind}")``).

  .. math:: {math}

  Args:
    forward, params, batch, target: as for every kernel.
    key: a ``jax.random.key`` (or one per example ``[B]``); the result is deterministic given it.
    base: the wrapped method, a name in :data:`BASES`: ``"saliency"`` (default: the vanilla
      gradient maps of the SmoothGrad paper, L2 over ``E``), ``"gradient"``,
      ``"gradient_x_input"`` or ``"integrated_gradients"``.
    samples: noise samples ``K`` (Captum: ``nt_samples``, default 5 there).
    stdev: noise standard deviation on the word embeddings (Captum: ``stdevs``, default 1.0
      there, a scale meant for images; 0.15 is about 3x a BERT embedding's per-dimension spread).
    chunk_size: samples per chunk to bound memory (``None``: one vmap over ``K``).
    noise: ``[K, B, T, E]`` noise to use instead of drawing it (parity with external code).
    per_dimension: reduce per embedding dimension, then sum over ``E``: Captum's exact
      ``NoiseTunnel`` semantics; a saliency base is then Captum's ``|gradient|`` per dimension
      (the L1 norm; ``norm="l2"`` is an error). Default ``False``: reduce token scores; see
      :func:`noise_tunnel`.
    pad_id, mask_id, unk_id, special_ids: token ids for an IG base's baseline.
    **base_hyper: the base method's hyperparameters (``steps``, ``norm``, ``baseline``...).
  Returns:
    ``[B, T]`` float32, 0 on padding{sign}.
  References:
    Smilkov et al., `SmoothGrad <https://arxiv.org/abs/1706.03825>`_, 2017; Adebayo et al.,
    2018 (VarGrad); Captum ``NoiseTunnel``. See :func:`noise_tunnel` for how the reduction
    differs from Captum's for squared kinds.
  """
smoothgrad.__doc__ = _DOC.format(
    title="SmoothGrad: the mean", kind="smoothgrad", sign="; signed as the base",
    math=r"\frac1K \sum_k m(x + \epsilon^{(k)}),\ \epsilon^{(k)} \sim \mathcal N(0, \sigma^2 I)")
smoothgrad_sq.__doc__ = _DOC.format(
    title="SmoothGrad-squared: the mean of squares", kind="smoothgrad_sq", sign=", non-negative",
    math=r"\frac1K \sum_k m(x + \epsilon^{(k)})^2")
vargrad.__doc__ = _DOC.format(
    title="VarGrad: the variance", kind="vargrad", sign=", non-negative",
    math=r"\frac1K \sum_k m(x + \epsilon^{(k)})^2 - \Big(\frac1K \sum_k m(x + \epsilon^{(k)})\Big)^2")
