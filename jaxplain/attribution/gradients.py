r"""Gradient attributions on the word embeddings: gradient, saliency, gradient x input, IG.

Each kernel is ``method(forward, params, batch, target=None, *, key=None, **hyper) -> [B, T]``:
pure, unjitted (callers jit), 0 on padding. The plain gradient methods take one backward pass
for the whole batch; Integrated Gradients vmaps that backward pass over its ``S`` quadrature
steps (or maps over chunks of ``chunk_size`` steps to bound memory), so XLA folds the steps into
the batch. Every kernel takes ``embeddings=`` to be evaluated at other word embeddings than the
batch's own, which is how :mod:`jaxplain.attribution.smoothing` adds noise.

Token ids for the named IG baselines (``pad_id``, ``mask_id``, ``unk_id``, ``special_ids``) are
static hyperparameters with BERT-uncased defaults; :func:`jaxplain.attribute` fills them from the
model's tokenizer, so a kernel never needs a tokenizer.
"""

from typing import Any, Callable

import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from jaxplain.attribution._common import (embed, embedding_table, grad_wrt_embeddings,
                                          logits_and_grad, masked, resolve_target,
                                          target_and_grad, target_logit)
from jaxplain.attribution._quadrature import (check_chunk_size, map_steps, quadrature_table,
                                              sum_steps)
from jaxplain.contracts import Batch, Forward, Params, Target, Taps
from jaxplain.errors import InputError

BASELINES = ("pad", "mask", "unk", "zero")
"""Named IG baselines; an array ``[B, T, E]`` or ``[T, E]`` works too."""

BERT_UNCASED_IDS = dict(pad_id=0, mask_id=103, unk_id=100, special_ids=(101, 102))
"""Default token ids ([PAD], [MASK], [UNK]; [CLS], [SEP]) of BERT uncased vocabularies."""


def gradient(forward: Forward, params: Params, batch: Batch, target: Target = None, *,
             key: PRNGKeyArray | None = None, embeddings: Float[Array, "B T E"] | None = None,
             rules: str = "gradient") -> Float[Array, "B T"]:
  r"""Signed gradient summed over the embedding axis: :math:`\sum_e \partial f / \partial x_{te}`.

  Args:
    forward: the model, ``forward(params, batch, taps) -> Outputs``.
    params: its parameters.
    batch: ``[B, T]`` token ids and masks.
    target: class per example, ``None`` for the predicted class, or ``Outputs -> [B]``.
    key: unused (deterministic).
    embeddings: ``[B, T, E]`` word embeddings to evaluate at (default: the batch's own).
    rules: backward rule set (``"gradient"``; LRP sets give relevance).
  Returns:
    ``[B, T]`` float32, signed, 0 on padding.
  """
  return gradient_dims(forward, params, batch, target, key=key, embeddings=embeddings,
                       rules=rules).sum(-1)


def gradient_dims(forward: Forward, params: Params, batch: Batch, target: Target = None, *,
                  key: PRNGKeyArray | None = None,
                  embeddings: Float[Array, "B T E"] | None = None,
                  rules: str = "gradient") -> Float[Array, "B T E"]:
  """:func:`gradient` per embedding dimension: ``d f / d x`` ``[B, T, E]``, 0 on padding."""
  del key
  _, _, g = target_and_grad(forward, params, batch, target, embeddings, rules)
  return masked(g, batch.attention_mask[..., None])


def saliency(forward: Forward, params: Params, batch: Batch, target: Target = None, *,
             key: PRNGKeyArray | None = None, embeddings: Float[Array, "B T E"] | None = None,
             norm: str = "l2") -> Float[Array, "B T"]:
  r"""Gradient magnitude per token: :math:`\lVert \partial f / \partial x_t \rVert_2` (or L1).

  Notes:
    Captum's ``Saliency`` returns ``|grad|`` per embedding dimension; summing it over ``E``
    gives ``norm="l1"``. The L2 norm (default) is the usual per-token saliency in NLP
    (Li et al. 2016).
  Returns:
    ``[B, T]`` float32, non-negative, 0 on padding.
  """
  del key
  _, x, g = target_and_grad(forward, params, batch, target, embeddings)
  return masked(scores_from_gradient("saliency", g, x, norm=norm), batch.attention_mask)


def scores_from_gradient(name: str, g: Float[Array, "B T E"], x: Float[Array, "B T E"], *,
                         norm: str = "l2") -> Float[Array, "B T"]:
  r"""Token scores of a plain gradient method read off the embedding gradient, unmasked.

  ``gradient``: :math:`\sum_e g_{te}`; ``saliency``: :math:`\lVert g_t \rVert_2` (``norm="l2"``)
  or :math:`\sum_e |g_{te}|` (``"l1"``); ``gradient_x_input``: :math:`\sum_e x_{te} g_{te}`.
  These are the sums the kernels compute; the corpus sweep uses it to read all three off one
  backward pass.

  Args:
    name: ``"gradient"``, ``"saliency"`` or ``"gradient_x_input"``.
    g: ``[B, T, E]`` gradient of the target logit with respect to the word embeddings ``x``.
    x: ``[B, T, E]`` the word embeddings it was taken at.
    norm: saliency's norm.
  Returns:
    ``[B, T]``; the caller masks padding.
  Raises:
    InputError: another method name, or an unknown ``norm``.
  """
  if name == "gradient":
    return g.sum(-1)
  if name == "gradient_x_input":
    return jnp.sum(g * x, -1)
  if name == "saliency":
    if norm not in ("l1", "l2"):
      raise InputError(f"saliency norm {norm!r} is unknown; use 'l2' or 'l1'.")
    return jnp.abs(g).sum(-1) if norm == "l1" else jnp.sqrt(jnp.sum(g * g, -1))
  raise InputError(f"{name!r} is not read off the embedding gradient alone; use 'gradient', "
                   "'saliency' or 'gradient_x_input'.")


GRADIENT_READS = ("gradient", "saliency", "gradient_x_input")
"""The methods :func:`scores_from_gradient` reads off one embedding gradient."""


def scores_and_logits(name: str, forward: Forward, params: Params, batch: Batch,
                      classes: Int[Array, "..."] | int | None = None, *, norm: str = "l2",
                      rules: str = "gradient"
                      ) -> tuple[Float[Array, "B T"], Float[Array, "..."], Int[Array, "..."]]:
  """A :data:`GRADIENT_READS` method's scores with the logits of its own forward pass.

  ``jaxplain.attribute`` reports each example's predicted probabilities and explained class; read
  here from the primal output of the method's ``jax.vjp``
  (:func:`~jaxplain.attribution._common.logits_and_grad`), they cost no forward pass of their
  own (a third of these methods' work).

  Args:
    name: ``"gradient"``, ``"saliency"`` or ``"gradient_x_input"``.
    forward, params, batch: the model and a ``[B, T]`` batch (packed or not).
    classes: class per example (``[B, S]`` per slot when packed), an int, or ``None`` (the
      predicted class).
    norm: saliency's norm; rules: the backward rule set, as the kernels take them.
  Returns:
    ``(scores [B, T] as the kernel gives them, logits [B, K] or [B, S, K], classes)``.
  """
  logits, classes, x, g = logits_and_grad(forward, params, batch, classes, rules)
  return (masked(scores_from_gradient(name, g, x, norm=norm), batch.attention_mask), logits,
          classes)


def saliency_dims(forward: Forward, params: Params, batch: Batch, target: Target = None, *,
                  key: PRNGKeyArray | None = None,
                  embeddings: Float[Array, "B T E"] | None = None,
                  norm: str = "l1") -> Float[Array, "B T E"]:
  """:func:`saliency` per embedding dimension: ``|d f / d x|`` ``[B, T, E]`` (Captum's
  ``Saliency``), 0 on padding. Only the L1 norm is a sum over ``E``, so only it has this form.

  Raises:
    InputError: ``norm`` is not ``"l1"``.
  """
  if norm != "l1":
    raise InputError(f"saliency with norm={norm!r} has no per-dimension form (only the L1 norm "
                     "is a sum over the embedding axis); pass norm='l1', which is Captum's "
                     "Saliency summed over E.")
  return jnp.abs(gradient_dims(forward, params, batch, target, key=key, embeddings=embeddings))


def gradient_x_input(forward: Forward, params: Params, batch: Batch, target: Target = None, *,
                     key: PRNGKeyArray | None = None,
                     embeddings: Float[Array, "B T E"] | None = None,
                     rules: str = "gradient") -> Float[Array, "B T"]:
  r"""Gradient x input on the word embeddings: :math:`\sum_e x_{te}\,\partial f/\partial x_{te}`.

  Defaults match Captum's ``InputXGradient`` (or ``LayerGradientXActivation`` on the word
  embeddings) summed over the embedding axis. Under an LRP rule set (``rules="attnlrp"``) it is
  the LRP relevance of the word embeddings.

  Returns:
    ``[B, T]`` float32, signed, 0 on padding.
  """
  return gradient_x_input_dims(forward, params, batch, target, key=key, embeddings=embeddings,
                               rules=rules).sum(-1)


def gradient_x_input_dims(forward: Forward, params: Params, batch: Batch, target: Target = None,
                          *, key: PRNGKeyArray | None = None,
                          embeddings: Float[Array, "B T E"] | None = None,
                          rules: str = "gradient") -> Float[Array, "B T E"]:
  """:func:`gradient_x_input` per embedding dimension: ``x * d f / d x`` ``[B, T, E]`` (Captum's
  ``InputXGradient``), 0 on padding."""
  del key
  _, x, g = target_and_grad(forward, params, batch, target, embeddings, rules)
  return masked(g * x, batch.attention_mask[..., None])


def special_positions(batch: Batch, special_ids: tuple[int, ...] = ()) -> Bool[Array, "B T"]:
  """Real positions an IG baseline keeps: ``[CLS]``/``[SEP]``-like tokens.

  The union of: position 0 and the last real position of each example (of each packed example
  in a packed batch); positions whose id is in ``special_ids`` (the middle ``[SEP]`` of a
  pair); and positions with ``word_ids == -1`` when the batch carries word ids. Padding is never
  special.
  """
  mask = batch.attention_mask > 0
  if batch.packing is not None:  # each packed example's first and last token
    seg = batch.packing.segment_ids
    following = jnp.pad(seg[:, 1:], ((0, 0), (0, 1)))
    special = (batch.packing.position_ids == 0) | (following != seg)
  else:
    t = batch.input_ids.shape[1]
    pos = jnp.arange(t)[None, :]
    last = jnp.sum(mask, axis=1, keepdims=True) - 1
    special = (pos == 0) | (pos == last)
  for i in special_ids:
    special = special | (batch.input_ids == int(i))
  if batch.word_ids is not None:
    special = special | (batch.word_ids < 0)
  return special & mask


def baseline_embeddings(forward: Forward, params: Params, batch: Batch,
                        x: Float[Array, "B T E"], baseline: Any = "pad", *,
                        pad_id: int = 0, mask_id: int = 103, unk_id: int = 100,
                        special_ids: tuple[int, ...] = (101, 102)) -> Float[Array, "B T E"]:
  """The IG baseline ``x'`` in word-embedding space.

  ``"pad"`` / ``"mask"`` / ``"unk"``: every real token that is not special (see
  :func:`special_positions`) becomes that token's embedding and special tokens keep their own,
  i.e. ``[CLS] [PAD] ... [PAD] [SEP]`` as in Captum's BERT tutorial. ``"zero"``: zero vectors at
  every real position (Captum's ``baselines=None``). An array ``[B, T, E]`` or ``[T, E]`` is used
  as given. Special tokens and padding keep ``x``, the batch's own (clean) embeddings.

  Raises:
    InputError: an unknown name, or an array of the wrong shape.
  """
  real = (batch.attention_mask > 0)[..., None]
  if isinstance(baseline, str):
    if baseline not in BASELINES:
      raise InputError(f"unknown baseline {baseline!r}; use one of {', '.join(BASELINES)} or an "
                       "array of word embeddings [B, T, E].")
    if baseline == "zero":
      return jnp.where(real, 0.0, x).astype(x.dtype)
    token = {"pad": pad_id, "mask": mask_id, "unk": unk_id}[baseline]
    row = embedding_table(forward, params, batch, int(token)).astype(x.dtype)
    keep = special_positions(batch, tuple(special_ids))[..., None] | ~real
    return jnp.where(keep, x, row[None, None, :])
  if not hasattr(baseline, "shape") or baseline is None:
    raise InputError(f"baseline must be one of {', '.join(BASELINES)} or an array, got "
                     f"{baseline!r}.")
  shape = tuple(baseline.shape)
  if shape not in (tuple(x.shape), tuple(x.shape[1:])):
    raise InputError(f"baseline has shape {shape}; it must match the word embeddings "
                     f"{tuple(x.shape)} ([B, T, E]) or one example {tuple(x.shape[1:])} "
                     "([T, E]). T is the padded batch's width: through jaxplain.attribute, "
                     "model.encode(texts).input_ids.shape[1].")
  return jnp.broadcast_to(jnp.asarray(baseline, x.dtype), x.shape)


def path_endpoints(forward: Forward, params: Params, batch: Batch, target: Target,
                   embeddings: Float[Array, "B T E"] | None, baseline: Any, *, pad_id: int,
                   mask_id: int, unk_id: int, special_ids: tuple[int, ...]
                   ) -> tuple[Any, Float[Array, "B T E"], Float[Array, "B T E"]]:
  """The resolved target and the ends ``x`` (input) and ``x'`` (baseline) of an IG path.

  ``x`` is ``embeddings`` when given, else the batch's word embeddings; the baseline is always
  built from the batch's own embeddings (see :func:`integrated_gradients`). Shared by the
  input and layer variants.
  """
  target = resolve_target(forward, params, batch, target)
  clean = embed(forward, params, batch).astype(jnp.float32)
  x = clean if embeddings is None else embeddings.astype(jnp.float32)
  x0 = baseline_embeddings(forward, params, batch, clean, baseline, pad_id=pad_id,
                           mask_id=mask_id, unk_id=unk_id, special_ids=special_ids)
  return target, x, x0


def integrated_gradients(forward: Forward, params: Params, batch: Batch,
                         target: Target = None, *, key: PRNGKeyArray | None = None,
                         steps: int = 50, quadrature: str = "gausslegendre",
                         baseline: Any = "pad", chunk_size: int | str | None = "auto",
                         embeddings: Float[Array, "B T E"] | None = None,
                         pad_id: int = 0, mask_id: int = 103, unk_id: int = 100,
                         special_ids: tuple[int, ...] = (101, 102)) -> Float[Array, "B T"]:
  r"""Integrated Gradients on the word embeddings (Sundararajan et al., 2017).

  .. math:: \mathrm{IG}_t = \sum_e (x_{te} - x'_{te}) \sum_{s=1}^{S} w_s\,
     \frac{\partial f}{\partial x_{te}}\big(x' + \alpha_s (x - x')\big)

  All ``S`` steps are one vmapped forward/backward (``[S, B, T, E]`` folded into the batch);
  ``chunk_size`` maps over chunks of that many steps instead (any size; the remainder is one
  more chunk), so memory is ``chunk_size`` times one gradient.

  Args:
    forward: the model, ``forward(params, batch, taps) -> Outputs``.
    params: its parameters.
    batch: ``[B, T]`` token ids and masks.
    target: class per example, ``None`` for the class predicted at ``x`` (held fixed along the
      path), or ``Outputs -> [B]``.
    key: unused (deterministic).
    steps: quadrature nodes ``S`` (Captum: ``n_steps``; default 50 as Captum).
    quadrature: ``"gausslegendre"`` (default, as Captum) or ``"riemann_left"``,
      ``"riemann_right"``, ``"riemann_middle"``, ``"riemann_trapezoid"`` (Captum: ``method``).
    baseline: ``"pad"`` (default), ``"mask"``, ``"unk"``, ``"zero"`` or an array ``[B, T, E]``
      / ``[T, E]``; see :func:`baseline_embeddings`.
    chunk_size: steps per chunk; ``None``: all at once; ``"auto"`` (default): as many as keep
      ``chunk * B * T`` within a token-row budget, 8192 on accelerators (memory) and 2048 on the
      CPU (speed: cache), see ``_quadrature.auto_token_rows``. Captum: ``internal_batch_size``
      (which counts examples x steps).
    embeddings: ``[B, T, E]`` the input ``x`` (default: the batch's own word embeddings). The
      baseline is built from the batch's own embeddings either way (its special tokens keep
      their clean embeddings), so with noisy ``embeddings`` it stays fixed, as in Captum's
      ``NoiseTunnel(IntegratedGradients)``.
    pad_id, mask_id, unk_id: ids of the baseline tokens (static; BERT-uncased defaults,
      filled from the tokenizer by :func:`jaxplain.attribute`).
    special_ids: ids the named baselines keep (``[CLS]``, ``[SEP]``).
  Returns:
    ``[B, T]`` float32, signed, summed over ``E``; 0 on padding. Their sum per example is
    ``f(x) - f(x')`` up to :func:`ig_convergence_delta`.
  Examples:
    >>> scores = integrated_gradients(forward, params, batch, steps=8)     # doctest: +SKIP
  References:
    Sundararajan et al., `Axiomatic Attribution for Deep Networks
    <https://arxiv.org/abs/1703.01365>`_, 2017; Captum ``IntegratedGradients`` and
    ``LayerIntegratedGradients(model, model.bert.embeddings.word_embeddings)``.
  Notes:
    Defaults match Captum (``n_steps=50``, ``method="gausslegendre"``) with the BERT-tutorial
    baseline ``[CLS] [PAD] ... [SEP]``; Captum's own default baseline is ``"zero"``. Riemann rules
    need ``steps >= 2``, as in Captum. Captum sums the weighted gradients over steps and then
    multiplies by ``x - x'``; we contract ``E`` per step first (the same sum, reordered).
  """
  del key
  nodes, target, x0, diff = _ig_path(forward, params, batch, target, steps, quadrature,
                                     baseline, chunk_size, embeddings, pad_id=pad_id,
                                     mask_id=mask_id, unk_id=unk_id, special_ids=special_ids)

  def step_fn(aw):  # one quadrature node -> its weighted share [B, T]
    alpha, weight = aw
    g = grad_wrt_embeddings(forward, params, batch, target, x0 + alpha * diff)
    return weight * jnp.sum(g * diff, axis=-1)

  shares = map_steps(step_fn, nodes, chunk_size, rows=batch.input_ids.size)  # [S, B, T]
  return masked(jnp.sum(shares, axis=0), batch.attention_mask)


def integrated_gradients_dims(forward: Forward, params: Params, batch: Batch,
                              target: Target = None, *, key: PRNGKeyArray | None = None,
                              steps: int = 50, quadrature: str = "gausslegendre",
                              baseline: Any = "pad", chunk_size: int | str | None = "auto",
                              embeddings: Float[Array, "B T E"] | None = None,
                              pad_id: int = 0, mask_id: int = 103, unk_id: int = 100,
                              special_ids: tuple[int, ...] = (101, 102)
                              ) -> Float[Array, "B T E"]:
  r""":func:`integrated_gradients` per embedding dimension ``[B, T, E]``, 0 on padding.

  .. math:: \mathrm{IG}_{te} = (x_{te} - x'_{te}) \sum_s w_s\,
     \frac{\partial f}{\partial x_{te}}\big(x' + \alpha_s (x - x')\big)

  What Captum's ``IntegratedGradients`` returns. The weighted gradients are summed over steps
  in a running total (:func:`~jaxplain.attribution._quadrature.sum_steps`), so memory holds one
  chunk of ``[B, T, E]`` gradients, not ``S``. Arguments as for :func:`integrated_gradients`.
  """
  del key
  nodes, target, x0, diff = _ig_path(forward, params, batch, target, steps, quadrature,
                                     baseline, chunk_size, embeddings, pad_id=pad_id,
                                     mask_id=mask_id, unk_id=unk_id, special_ids=special_ids)

  def step_fn(aw):  # one quadrature node -> its weighted gradient [B, T, E]
    alpha, weight = aw
    return weight * grad_wrt_embeddings(forward, params, batch, target, x0 + alpha * diff)

  total = sum_steps(step_fn, nodes, chunk_size, rows=batch.input_ids.size)
  return masked(total * diff, batch.attention_mask[..., None])


def _ig_path(forward: Forward, params: Params, batch: Batch, target: Target, steps: int,
             quadrature: str, baseline: Any, chunk_size: Any,
             embeddings: Float[Array, "B T E"] | None, **ids: Any
             ) -> tuple[tuple[Array, Array], Any, Float[Array, "B T E"], Float[Array, "B T E"]]:
  """Checked IG set-up: the quadrature ``(alphas, weights)`` ``[S]``, the resolved target, the
  baseline ``x'`` and ``x - x'``."""
  alphas, weights = quadrature_table(quadrature, steps)
  check_chunk_size(chunk_size)
  target, x, x0 = path_endpoints(forward, params, batch, target, embeddings, baseline, **ids)
  nodes = (jnp.asarray(alphas, jnp.float32), jnp.asarray(weights, jnp.float32))
  return nodes, target, x0, x - x0


def ig_convergence_delta(forward: Forward, params: Params, batch: Batch, target: Target,
                         scores: Float[Array, "B T"], *, baseline: Any = "pad",
                         embeddings: Float[Array, "B T E"] | None = None,
                         pad_id: int = 0, mask_id: int = 103, unk_id: int = 100,
                         special_ids: tuple[int, ...] = (101, 102),
                         **unused: Any) -> Float[Array, " B"]:
  r"""IG's completeness gap per example: :math:`\sum_t \mathrm{IG}_t - (f(x) - f(x'))`.

  Args:
    forward, params, batch, target: as given to :func:`integrated_gradients`.
    scores: its ``[B, T]`` output.
    baseline, embeddings, pad_id, mask_id, unk_id, special_ids: as given to it; other
      hyperparameters (``steps``...) are accepted and ignored.
  Returns:
    ``[B]`` float32; Captum's ``compute_convergence_delta`` (same sign).
  """
  del unused
  target, x, x0 = path_endpoints(forward, params, batch, target, embeddings, baseline,
                                 pad_id=pad_id, mask_id=mask_id, unk_id=unk_id,
                                 special_ids=special_ids)
  fx = target_logit(forward(params, batch, Taps(word_embeddings=x)), target)
  f0 = target_logit(forward(params, batch, Taps(word_embeddings=x0)), target)
  return jnp.sum(masked(scores, batch.attention_mask), axis=-1) - (fx - f0)


PER_DIMENSION: dict[Callable[..., Any], Callable[..., Any]] = {
    gradient: gradient_dims,
    saliency: saliency_dims,
    gradient_x_input: gradient_x_input_dims,
    integrated_gradients: integrated_gradients_dims,
}
"""Each kernel's per-embedding-dimension form ``[B, T, E]``, the shape Captum returns; summed over
``E`` it gives the kernel (for ``saliency``: with ``norm="l1"``). Noise tunnels with
``per_dimension=True`` reduce their samples on it, as Captum's ``NoiseTunnel`` does."""
