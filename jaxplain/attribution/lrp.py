r"""Layer-wise relevance propagation for transformers: AttnLRP, CP-LRP, Chefer's GAE, Mask-LRP.

Two families live here.

*Gradient x input under LRP rules* (AttnLRP, Achtibat et al. 2024; CP-LRP, the AH + LN rules
of Ali et al. 2022). When a rule can be written :math:`R_x = x \odot \tilde J^\top (R_y \oslash
y)`, plain autodiff with a modified backward pass implements it, and gradient x input at the
embeddings *is* the relevance. Importing this module registers two rule sets that the encoder
picks up through the static ``Taps.rules`` name:

=================  =============================  ========================================
operation          ``"attnlrp"``                  ``"cp-lrp"``
=================  =============================  ========================================
linear layers      gradient (LRP-0, bias absorbs)  gradient
softmax            gradient (Prop. 3.1)           ``stop_gradient`` (AH-rule: A constant)
``Q K^T``          gradient x 1/2 (Prop. 3.3)     no gradient (A constant)
``A V``            gradient x 1/2 (Prop. 3.3)     gradient (linear in V once A is constant)
LayerNorm          std treated as constant        std treated as constant (LN-rule)
GELU, tanh, ReLU   identity rule, grad = f(x)/x   identity rule
=================  =============================  ========================================

With biases zeroed both conserve relevance exactly except AttnLRP's softmax, whose DTD rule
gives part of the relevance to the (implicit) bias; the tests state the tolerance.

*Explicit relprop* (Chefer et al. 2021a "transformer attribution", called GAE in Mask-LRP, and
Mask-LRP, Song et al. 2024): rules gradients cannot express, run over recomputed intermediates
in :mod:`jaxplain.attribution._relprop`, then rolled out over layers:

.. math:: \bar A_l = \mathbb{E}_h[(\nabla A_l \odot R_{A_l})^+],\quad
          C = \prod_l \mathrm{rownorm}(\bar A_l + I),\quad \text{scores} = C_{[CLS], :}
"""

import functools

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float, Int, PRNGKeyArray

from jaxplain.attribution import _relprop
from jaxplain.attribution._common import (first_tokens, logits_and_grad, masked, packed_target,
                                          resolve_target, slot_classes, target_logit)
from jaxplain.contracts import Batch, Forward, Params, Taps, Target
from jaxplain.errors import InputError
from jaxplain.models.rules import (ACTIVATION_FNS, RULE_SETS, RuleSet, register_rule_set,
                                   scale_gradient)

sg = jax.lax.stop_gradient
SEP_TOKEN_ID = 102  # BERT/MiniLM uncased [SEP]; RoBERTa's </s> is 2


# ----------------------------------------------------------------------------- rule pieces

def identity_rule(fn):
  """``fn`` in the forward pass; backward multiplies the cotangent by ``fn(x) / x``.

  Then ``x * grad_x = fn(x) * grad_y``: the relevance passes the activation unchanged (AttnLRP
  Sec. 3.3; lxt ``identity_rule_implicit``). Where ``x == 0`` the factor is 0 (``fn(0) = 0``).
  """

  @jax.custom_vjp
  def rule(x):
    return fn(x)

  def fwd(x):
    y = fn(x)
    nonzero = x != 0
    return y, jnp.where(nonzero, y / jnp.where(nonzero, x, 1.0), 0.0).astype(x.dtype)

  def bwd(ratio, g):
    return ((g * ratio).astype(g.dtype),)

  rule.defvjp(fwd, bwd)
  return rule


_IDENTITY_RULES = {name: identity_rule(fn) for name, fn in ACTIVATION_FNS.items()}


def activation_identity(name: str, x):
  """The activation ``name`` under the identity rule."""
  return _IDENTITY_RULES[name](x)


def layer_norm_std_constant(x, eps):
  r"""``(x - mean) / sg(sqrt(var + eps))``: LN-rule (Ali et al.), AttnLRP Prop. 3.4.

  With the standard deviation constant the map is linear, :math:`y = C x / \sigma`, so
  gradient x input conserves relevance.
  """
  x = x.astype(jnp.float32)
  centered = x - x.mean(-1, keepdims=True)
  var = jnp.mean(centered * centered, -1, keepdims=True)
  return centered * sg(jax.lax.rsqrt(var + eps))


def halve_gradient(fn):
  """``fn(a, b)`` with its cotangent halved: the uniform rule for a bilinear product."""
  return lambda a, b: scale_gradient(fn(a, b), jnp.float32(0.5))


_PLAIN = RULE_SETS["gradient"]

ATTNLRP = RuleSet(
    "attnlrp", softmax=_PLAIN.softmax, layer_norm=layer_norm_std_constant,
    activation=activation_identity, attention_scores=halve_gradient(_PLAIN.attention_scores),
    attention_context=halve_gradient(_PLAIN.attention_context))
"""AttnLRP (Achtibat et al. 2024) as gradient rules; lxt's efficient BERT patches."""

CP_LRP = RuleSet(
    "cp-lrp", softmax=lambda x: sg(_PLAIN.softmax(x)), layer_norm=layer_norm_std_constant,
    activation=activation_identity, attention_scores=_PLAIN.attention_scores,
    attention_context=_PLAIN.attention_context)
"""CP-LRP: AH-rule + LN-rule (Ali et al. 2022), identity rule on activations (lxt ``cp_lrp``)."""

register_rule_set(ATTNLRP)
register_rule_set(CP_LRP)


# ----------------------------------------------------------------- gradient x input kernels

def lrp_embedding_relevance(forward: Forward, params: Params, batch: Batch,
                            target: Target = None, *, rules: str = "attnlrp"
                            ) -> Float[Array, "3 B T"]:
  r"""LRP relevance of the word, position and token-type embeddings, separately.

  .. math:: R^{p}_t = \sum_e x^{p}_{te}\, \partial f / \partial u_{te},\quad
            u = x^{word} + x^{pos} + x^{type}

  The three embeddings are summed before the embedding LayerNorm, so one gradient at the sum
  serves all three. Their relevance sums to that of the first hidden state (conservation);
  reading only the word share (lxt's default) leaves out what position and segment take.

  Args:
    forward, params, batch, target: as for every kernel.
    rules: rule set name (``"attnlrp"``, ``"cp-lrp"``, or ``"gradient"`` for plain GxI).
  Returns:
    ``[3, B, T]`` float32: word, position, token-type relevance; 0 on padding.
  """
  target = resolve_target(forward, params, batch, target)
  parts = forward(params, batch, Taps()).embedding_parts
  if parts is None:
    raise InputError("this model's forward does not report embedding_parts; the position and "
                     "token-type shares of relevance need a jaxplain encoder.")

  def f(words):
    return target_logit(forward(params, batch, Taps(word_embeddings=words, rules=rules)),
                        target).sum()

  g = jax.grad(f)(parts[0].astype(jnp.float32))
  return masked(jnp.einsum("pbte,bte->pbt", parts.astype(jnp.float32), g),
                batch.attention_mask)


def lrp_layer_relevance(forward: Forward, params: Params, batch: Batch, target: Target = None,
                        *, rules: str = "attnlrp") -> Float[Array, "L1 B T"]:
  r"""Relevance of every hidden state, :math:`R_{l,t} = \sum_h h_{l,th}\,\partial f/\partial h_{l,th}`.

  One backward pass through zero ``hidden_delta``. Under a conservative rule set
  ``R.sum(-1)`` is the same for every layer (and equals the logit when biases are zero): the
  block-by-block conservation check.

  Returns:
    ``[L+1, B, T]`` float32; 0 on padding.
  """
  target = resolve_target(forward, params, batch, target)
  hidden = forward(params, batch, Taps()).hidden

  def f(delta):
    out = forward(params, batch, Taps(hidden_delta=delta, rules=rules))
    return target_logit(out, target).sum()

  g = jax.grad(f)(jnp.zeros_like(hidden))
  return masked(jnp.sum(g * hidden, -1), batch.attention_mask)


def _check_include(include: str) -> None:
  if include not in ("word", "all"):
    raise InputError(f"include {include!r} is unknown; use 'word' (word embeddings only, as "
                     "lxt) or 'all' (word + position + token type).")


def _lrp_kernel(rules: str, forward, params, batch, target, key, include):
  del key
  _check_include(include)
  if not callable(target):  # classes: one pass finds and explains them
    return lrp_scores_and_logits(rules, forward, params, batch, target, include=include)[0]
  parts = lrp_embedding_relevance(forward, params, batch, target, rules=rules)
  return parts[0] if include == "word" else parts.sum(0)


def lrp_scores_and_logits(rules: str, forward: Forward, params: Params, batch: Batch,
                          classes: Int[Array, "..."] | int | None = None, *,
                          include: str = "word"
                          ) -> tuple[Float[Array, "B T"], Float[Array, "..."], Int[Array, "..."]]:
  """:func:`attnlrp` / :func:`cp_lrp` (by ``rules``) with the logits of their own forward pass.

  The rule sets change the backward pass only, so the primal output of the ``jax.vjp`` that
  gives the relevance is the model's logits: the predicted class (``classes=None``) and the
  probabilities :func:`jaxplain.attribute` reports cost no forward pass of their own.

  Args:
    rules: ``"attnlrp"`` or ``"cp-lrp"``.
    forward, params, batch: the model and a ``[B, T]`` batch (packed or not).
    classes: class per example (``[B, S]`` per slot when packed), an int, or ``None`` (the
      predicted class).
    include: ``"word"`` or ``"all"``, as for :func:`attnlrp`.
  Returns:
    ``(scores [B, T], logits [B, K] or [B, S, K], classes)``.
  """
  _check_include(include)
  logits, classes, x, g = logits_and_grad(forward, params, batch, classes, rules)
  if include == "word":
    return masked(jnp.einsum("bte,bte->bt", x, g), batch.attention_mask), logits, classes
  # Position and token-type shares (lrp_embedding_relevance); XLA keeps only the embedding
  # layer of this second call.
  parts = forward(params, batch, Taps()).embedding_parts
  if parts is None:
    raise InputError("this model's forward does not report embedding_parts; include='all' "
                     "needs a jaxplain encoder.")
  return (masked(jnp.einsum("pbte,bte->bt", parts.astype(jnp.float32), g),
                 batch.attention_mask), logits, classes)


def attnlrp(forward: Forward, params: Params, batch: Batch, target: Target = None, *,
            key: PRNGKeyArray | None = None, include: str = "word") -> Float[Array, "B T"]:
  r"""AttnLRP (Achtibat et al. 2024): gradient x input under the ``"attnlrp"`` rules.

  .. math:: R_t = \sum_e x_{te}\, \tilde\partial f / \partial x_{te}

  where :math:`\tilde\partial` is the backward pass with the AttnLRP rules (module docstring).

  Args:
    forward, params, batch, target: as for every kernel (relevance seed = the target logit).
    key: unused (deterministic).
    include: ``"word"`` reads the word embeddings (lxt's BERT example; default) or ``"all"``
      adds the position and token-type shares (see :func:`lrp_embedding_relevance`).
  Returns:
    ``[B, T]`` float32, signed, 0 on padding.
  References:
    Achtibat et al., `AttnLRP <https://arxiv.org/abs/2402.05602>`_, ICML 2024; lxt
    ``lxt/efficient/models/bert.py``.
  """
  return _lrp_kernel("attnlrp", forward, params, batch, target, key, include)


def cp_lrp(forward: Forward, params: Params, batch: Batch, target: Target = None, *,
           key: PRNGKeyArray | None = None, include: str = "word") -> Float[Array, "B T"]:
  r"""CP-LRP / LRP (AH + LN) (Ali et al. 2022): gradient x input under the ``"cp-lrp"`` rules.

  Attention probabilities are constants (AH-rule), LayerNorm's std is constant (LN-rule),
  activations pass relevance unchanged; linear layers use LRP-0 (the SST-2 script default,
  ``gammas=[0, 0, 0]``).

  Returns:
    ``[B, T]`` float32, signed, 0 on padding.
  References:
    Ali et al., `XAI for Transformers: Better Explanations through Conservative Propagation
    <https://arxiv.org/abs/2202.07304>`_, ICML 2022.
  """
  return _lrp_kernel("cp-lrp", forward, params, batch, target, key, include)


# ------------------------------------------------------------------ Chefer relprop kernels

def sep_key_masked(batch: Batch, sep_token_id: int = SEP_TOKEN_ID) -> Batch:
  """``batch`` with ``[SEP]`` removed from the attention mask (Mask-LRP's explanation forward).

  A packed batch keeps its packing: the encoder attends to keys within each example where the
  attention mask allows.
  """
  keep = (batch.input_ids != sep_token_id).astype(batch.attention_mask.dtype)
  return Batch(batch.input_ids, batch.attention_mask * keep, batch.token_type_ids,
               packing=batch.packing)


def attended_keys(batch: Batch) -> Int[Array, "B T"] | Int[Array, "B T T"]:
  """The keys each query attends to, as the encoder computes them: the attention mask
  ``[B, T]`` (every query alike), or for a packed batch ``[B, T, T]``, keys of the query's own
  example that the attention mask allows."""
  if batch.packing is None:
    return batch.attention_mask
  return (batch.packing.same_example() & (batch.attention_mask[:, None, :] > 0)).astype(jnp.int32)


def chefer_relevance(forward: Forward, params: Params, batch: Batch, target: Target = None, *,
                     head_mask: Float[Array, "L N"] | None = None, halve_saved: bool = True):
  """Per-layer attention relevance, attention gradients and input relevance (Chefer relprop).

  Args:
    forward, params, batch, target: as for every kernel; ``target`` must be classes (the
      relevance seed is one-hot, value 1, at the class, as in the reference).
    head_mask: ``[L, N]`` relevance-pass head mask (default all ones).
    halve_saved: GAE's halved, masked ``R_A`` (True) or Mask-LRP's unmasked un-halved (False).
  Returns:
    ``(r_attention [L, B, N, T, T], grad_attention [L, B, N, T, T], r_input [B, T, H],
    outputs)``, where ``outputs`` is the forward pass the relevance explains.
  """
  config = _relprop.encoder_config(forward, params)
  _relprop.check_supported(config)
  if callable(target):
    raise InputError("Chefer relevance starts from a one-hot class seed; pass a class index "
                     "(or None for the predicted class), not a callable target.")
  packing = batch.packing
  if packing is None:
    target = classes = resolve_target(forward, params, batch, target)        # [B]
  else:  # a seed per slot, on each example's first token
    classes = slot_classes(forward, params, batch, target)                  # [B, S]
    target = packed_target(classes, packing.starts)
  shape = (config.num_layers, config.num_heads)
  if head_mask is None:
    head_mask = jnp.ones(shape, jnp.float32)
  if tuple(jnp.shape(head_mask)) != shape:
    raise InputError(f"head_mask has shape {tuple(jnp.shape(head_mask))} but this model has "
                     f"{shape[0]} layers x {shape[1]} heads; compute the mask for this model "
                     "(jaxplain heads / compute_head_masks).")
  outputs = forward(params, batch, Taps())
  b, t = batch.input_ids.shape

  def f(delta):
    return target_logit(forward(params, batch, Taps(attention_delta=delta)), target).sum()

  grad_a = jax.grad(f)(jnp.zeros_like(outputs.attention))
  seeds = jax.nn.one_hot(classes, outputs.logits.shape[-1], dtype=jnp.float32)
  p = nnx.to_pure_dict(params)
  one = functools.partial(_relprop.chefer_relprop, p, config,
                          head_mask=jnp.asarray(head_mask, jnp.float32), halve_saved=halve_saved)
  if packing is None:
    r_att, r_in = jax.vmap(one, in_axes=(1, 0, 0), out_axes=(1, 0))(
        outputs.hidden, batch.attention_mask, seeds)
  else:
    seeds = seeds * (packing.starts >= 0)[..., None]                         # empty slots: 0
    r_att, r_in = jax.vmap(lambda h, m, s, st, sl: one(h, m, s, starts=st, slots=sl),
                           in_axes=(1, 0, 0, 0, 0), out_axes=(1, 0))(
                               outputs.hidden, attended_keys(batch), seeds, packing.starts,
                               packing.slot_mask())
  del b, t
  return r_att, grad_a, r_in, outputs


def _rollout_scores(r_att, grad_a, batch: Batch, start_layer, cls_self):
  maps = jnp.maximum(grad_a * r_att, 0.0).mean(2)                     # [L, B, T, T]
  if not 0 <= start_layer < maps.shape[0]:
    raise InputError(f"start_layer {start_layer} is outside 0..{maps.shape[0] - 1}.")
  joint = _relprop.rollout(maps, start_layer)                         # [B, T, T]
  mask = batch.attention_mask
  return masked(_relprop.cls_row(joint, cls_self, mask, batch.packing), mask)


def gae(forward: Forward, params: Params, batch: Batch, target: Target = None, *,
        key: PRNGKeyArray | None = None, start_layer: int = 0, cls_self: str = "zero",
        mask_sep_key: bool = False, sep_token_id: int = SEP_TOKEN_ID) -> Float[Array, "B T"]:
  r"""Transformer attribution / GAE (Chefer et al. 2021a): relevance-weighted attention rollout.

  .. math:: \bar A_l = \mathbb{E}_h[(\nabla A_l \odot R_{A_l})^+],\quad
            \text{scores} = [\textstyle\prod_{l=L}^{s} \mathrm{rownorm}(\bar A_l + I)]_{0,:}

  ``R_A`` is the halved attention relevance of Chefer's relprop (see ``_relprop``), started
  from a one-hot (value 1) seed at the target class.

  Args:
    forward, params, batch, target: as for every kernel.
    key: unused.
    start_layer: first layer of the rollout (Chefer's pipeline: last layer; notebooks and
      Mask-LRP: 0, the default).
    cls_self: the [CLS] entry of the row: ``"zero"`` (Mask-LRP's code, default), ``"min"``
      (Chefer's code) or ``"keep"``.
    mask_sep_key: drop ``[SEP]`` (``sep_token_id``) from attention in the explained forward.
  Returns:
    ``[B, T]`` float32, non-negative, 0 on padding.
  References:
    Chefer, Gur, Wolf, `Transformer Interpretability Beyond Attention Visualization
    <https://arxiv.org/abs/2012.09838>`_, CVPR 2021.
  """
  del key
  expl = sep_key_masked(batch, sep_token_id) if mask_sep_key else batch
  r_att, grad_a, _, _ = chefer_relevance(forward, params, expl, target, halve_saved=True)
  return masked(_rollout_scores(r_att, grad_a, expl, start_layer, cls_self),
                batch.attention_mask)


def mask_lrp(forward: Forward, params: Params, batch: Batch, target: Target = None, *,
             key: PRNGKeyArray | None = None, head_mask: Float[Array, "L N"] | None = None,
             halve_saved_relevance: bool = False, start_layer: int = 0, cls_self: str = "zero",
             mask_sep_key: bool = True, sep_token_id: int = SEP_TOKEN_ID
             ) -> Float[Array, "B T"]:
  r"""Mask-LRP / MGAE (Song et al. 2024): GAE with important heads masked in the relevance pass.

  The forward pass is unchanged. In each layer the context relevance of heads with
  ``head_mask = 0`` is zeroed before it propagates through ``A V`` to lower layers; the map
  saved for the rollout is computed from the *unmasked* context relevance and is *not*
  halved (the reference's quirk, ``halve_saved_relevance=False``):

  .. math:: \bar A_l = \mathbb{E}_h[(\nabla A_l \odot \tilde R_{A_l})^+],\quad
            \tilde R_{A_l} = \mathrm{relprop}_{A}(A_l V_l;\, R_{ctx,l})

  With an all-ones mask it equals :func:`gae` when ``halve_saved_relevance=True``; with the
  default, the saved maps are twice GAE's, which changes the rollout (it adds ``I``).

  Args:
    forward, params, batch, target: as for every kernel (the reference explains the gold label).
    key: unused.
    head_mask: ``[L, N]``, 1 on important heads (syntactic or positional); an array, so it
      stays dynamic under :func:`jaxplain.attribute`. Default all ones.
    halve_saved_relevance: halve the saved map as GAE does (default False, as the reference).
    start_layer: first rollout layer (default 0, as the reference).
    cls_self: the [CLS] entry: ``"zero"`` (reference), ``"min"`` or ``"keep"``.
    mask_sep_key: drop ``[SEP]`` from attention in the explained forward (reference: True).
    sep_token_id: the ``[SEP]`` id (102 for BERT uncased vocabularies; :func:`jaxplain.attribute`
      and sweeps pass the tokenizer's, e.g. RoBERTa's ``</s>``, 2).
  Returns:
    ``[B, T]`` float32, non-negative, 0 on padding.
  References:
    Song et al., `Better Explain Transformers by Illuminating Important Information
    <https://arxiv.org/abs/2401.09972>`_, Findings of EACL 2024; code ``LinxinS97/Mask-LRP``
    (``Generator.MGAE``).
  """
  del key
  expl = sep_key_masked(batch, sep_token_id) if mask_sep_key else batch
  r_att, grad_a, _, _ = chefer_relevance(forward, params, expl, target, head_mask=head_mask,
                                         halve_saved=halve_saved_relevance)
  return masked(_rollout_scores(r_att, grad_a, expl, start_layer, cls_self),
                batch.attention_mask)


def full_lrp(forward: Forward, params: Params, batch: Batch, target: Target = None, *,
             key: PRNGKeyArray | None = None, mask_sep_key: bool = False,
             sep_token_id: int = SEP_TOKEN_ID) -> Float[Array, "B T"]:
  r"""Full LRP with Chefer's rules: relevance of the encoder input summed over hidden units.

  .. math:: R_t = \sum_h R^{(0)}_{th}

  The [CLS] score is set to 0 (as the reference ``generate_full_lrp``).

  Returns:
    ``[B, T]`` float32, signed, 0 on padding.
  References:
    Chefer et al. 2021a (baseline "Full LRP"); Mask-LRP's baseline list.
  """
  del key
  expl = sep_key_masked(batch, sep_token_id) if mask_sep_key else batch
  _, _, r_in, _ = chefer_relevance(forward, params, expl, target)
  return masked(jnp.where(first_tokens(batch), 0.0, r_in.sum(-1)), batch.attention_mask)
