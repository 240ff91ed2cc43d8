"""The BERT-family encoder (BERT, RoBERTa, DistilBERT, ELECTRA) and its heads, in Flax NNX.

One post-LayerNorm transformer serves all four families; they differ in their embeddings
(RoBERTa's padding-offset positions, DistilBERT's missing segments, ELECTRA's projection) and in
their heads. The module is called as ``model(batch, taps) -> Outputs``; the rest of the library
sees it only through the pure :func:`jaxplain.models.forward.make_forward`.

Parameters are float32; ``config.dtype == "bfloat16"`` runs the matmuls in bfloat16 with float32
accumulation, and keeps LayerNorm, softmax and every residual sum in float32.
"""

import math

import jax
import jax.numpy as jnp
from flax import nnx

from jaxplain.contracts import Batch, Outputs, Packing, Taps
from jaxplain.models.config import EncoderConfig
from jaxplain.models.rules import RuleSet, get_rule_set, scale_gradient

_INIT = jax.nn.initializers.normal(0.02)


class Dense(nnx.Module):
  """``y = x W + b`` with ``W`` stored ``[in, out]``."""

  def __init__(self, din: int, dout: int, *, rngs: nnx.Rngs, dtype: str = "float32"):
    self.kernel = nnx.Param(_INIT(rngs.params(), (din, dout), jnp.float32))
    self.bias = nnx.Param(jnp.zeros((dout,), jnp.float32))
    self.dtype = dtype

  def __call__(self, x):
    dt = jnp.dtype(self.dtype)
    y = jnp.dot(x.astype(dt), self.kernel[...].astype(dt), preferred_element_type=jnp.float32)
    return y + self.bias[...]


class LayerNorm(nnx.Module):
  """LayerNorm whose normalisation goes through the rule set (LRP treats it specially)."""

  def __init__(self, dim: int, eps: float):
    self.scale = nnx.Param(jnp.ones((dim,), jnp.float32))
    self.bias = nnx.Param(jnp.zeros((dim,), jnp.float32))
    self.eps = eps

  def __call__(self, x, rules: RuleSet):
    return rules.layer_norm(x, self.eps) * self.scale[...] + self.bias[...]


class Embed(nnx.Module):

  def __init__(self, num: int, dim: int, *, rngs: nnx.Rngs):
    self.embedding = nnx.Param(_INIT(rngs.params(), (num, dim), jnp.float32))

  def __call__(self, ids):
    return jnp.take(self.embedding[...], ids, axis=0)


class Embeddings(nnx.Module):
  """Word + position (+ segment) embeddings, LayerNorm, and ELECTRA's projection."""

  def __init__(self, cfg: EncoderConfig, *, rngs: nnx.Rngs):
    e = cfg.embedding_size
    self.word = Embed(cfg.vocab_size, e, rngs=rngs)
    self.position = Embed(cfg.max_positions, e, rngs=rngs)
    self.token_type = Embed(cfg.type_vocab_size, e, rngs=rngs) if cfg.type_vocab_size else None
    self.norm = LayerNorm(e, cfg.layer_norm_eps)
    self.project = (Dense(e, cfg.hidden_size, rngs=rngs, dtype=cfg.dtype)
                    if e != cfg.hidden_size else None)
    self.family = cfg.family
    self.pad_token_id = cfg.pad_token_id

  def positions(self, input_ids, packing: Packing | None = None):
    """Position ids ``[B, T]``; in a packed batch each example's restart at its first token."""
    if packing is not None:
      if self.family == "roberta":  # as below, counted from each example's first token
        real = (packing.segment_ids > 0).astype(jnp.int32)
        return (packing.position_ids + 1) * real + self.pad_token_id
      return packing.position_ids
    if self.family == "roberta":  # HF create_position_ids_from_input_ids
      real = (input_ids != self.pad_token_id).astype(jnp.int32)
      return jnp.cumsum(real, axis=1) * real + self.pad_token_id
    return jnp.broadcast_to(jnp.arange(input_ids.shape[1]), input_ids.shape)

  def parts(self, batch: Batch, words):
    """Word, position and token-type embeddings ``[B, T, E]``; type zeros without segments."""
    pos = self.position(self.positions(batch.input_ids, batch.packing))
    typ = (self.token_type(batch.token_type_ids) if self.token_type is not None
           else jnp.zeros_like(pos))
    return words, pos, typ

  def __call__(self, batch: Batch, words, rules: RuleSet):
    words, pos, typ = self.parts(batch, words)
    x = words + pos
    if self.token_type is not None:
      x = x + typ
    x = self.norm(x, rules)
    if self.project is not None:
      x = self.project(x)
    return x


class Layer(nnx.Module):
  """One post-LN transformer block: self-attention, residual, LN, feed-forward, residual, LN."""

  def __init__(self, cfg: EncoderConfig, *, rngs: nnx.Rngs):
    h, dt = cfg.hidden_size, cfg.dtype
    self.query = Dense(h, h, rngs=rngs, dtype=dt)
    self.key = Dense(h, h, rngs=rngs, dtype=dt)
    self.value = Dense(h, h, rngs=rngs, dtype=dt)
    self.attn_out = Dense(h, h, rngs=rngs, dtype=dt)
    self.attn_norm = LayerNorm(h, cfg.layer_norm_eps)
    self.ffn_in = Dense(h, cfg.intermediate_size, rngs=rngs, dtype=dt)
    self.ffn_out = Dense(cfg.intermediate_size, h, rngs=rngs, dtype=dt)
    self.ffn_norm = LayerNorm(h, cfg.layer_norm_eps)
    self.num_heads = cfg.num_heads
    self.activation = cfg.activation

  def __call__(self, x, mask_bias, rules: RuleSet, attention_delta=None, head_scale=None,
               queries: int | jax.Array | None = None):
    """``x [B, T, H]``, ``mask_bias [B, 1, 1 or T, T]`` -> (``[B, Q, H]``, probs ``[B, N, Q, T]``).

    ``queries`` computes the outputs of some positions only (all ``T`` positions still serve as
    keys and values): an int ``Q`` (static), the first ``Q``; an ``int32 [B, Q]`` array, those
    positions of each row (a packed batch's first tokens); ``None`` computes all, ``Q = T``. Row
    for row the result is the full layer's: attention, residuals, LayerNorm and feed-forward are
    per position. ``attention_delta`` is ``[B, N, T, T]`` either way (only the query rows are
    read), and so is a per-query ``mask_bias`` ``[B, 1, T, T]`` (a packed batch's).
    """
    b, t, h = x.shape
    n = self.num_heads
    d = h // n
    if queries is None:
      rows, pick = x, None
    elif isinstance(queries, int):
      rows, pick = x[:, :queries], lambda a: a[:, :, :queries]
    else:
      rows = jnp.take_along_axis(x, queries[:, :, None], axis=1)
      pick = lambda a: jnp.take_along_axis(a, queries[:, None, :, None], axis=2)
    tq = rows.shape[1]
    if pick is not None and mask_bias.shape[2] > 1:
      mask_bias = pick(mask_bias)
    q = self.query(rows).reshape(b, tq, n, d)
    k, v = self.key(x).reshape(b, t, n, d), self.value(x).reshape(b, t, n, d)
    scores = rules.attention_scores(q, k) / math.sqrt(d) + mask_bias
    probs = rules.softmax(scores)
    if attention_delta is not None:
      probs = probs + (attention_delta if pick is None else pick(attention_delta))
    ctx = rules.attention_context(probs, v)  # [B, Q, N, D]
    if head_scale is not None:
      ctx = scale_gradient(ctx, head_scale[None, None, :, None].astype(ctx.dtype))
    attn = self.attn_norm(self.attn_out(ctx.reshape(b, tq, h)) + rows, rules)
    ffn = self.ffn_out(rules.activation(self.activation, self.ffn_in(attn)))
    return self.ffn_norm(ffn + attn, rules), probs


class Head(nnx.Module):
  """Each family's head for each task; parameters that a head does not use are ``None``."""

  def __init__(self, cfg: EncoderConfig, *, rngs: nnx.Rngs):
    h, c, dt = cfg.hidden_size, cfg.num_labels, cfg.dtype
    self.kind, self.family = cfg.head, cfg.family
    self.activation = cfg.activation
    pooler = dense = out = transform = transform_norm = decoder_bias = None
    if cfg.head == "sequence_classification":
      if cfg.family == "bert":
        pooler = Dense(h, h, rngs=rngs, dtype=dt)
      else:  # RoBERTa/ELECTRA classification head, DistilBERT pre_classifier
        dense = Dense(h, h, rngs=rngs, dtype=dt)
      out = Dense(h, c, rngs=rngs, dtype=dt)
    elif cfg.head == "token_classification":
      out = Dense(h, c, rngs=rngs, dtype=dt)
    elif cfg.head == "question_answering":
      out = Dense(h, 2, rngs=rngs, dtype=dt)
    elif cfg.head == "masked_lm":
      e = cfg.embedding_size
      transform = Dense(h, e, rngs=rngs, dtype=dt)
      transform_norm = LayerNorm(e, cfg.layer_norm_eps)
      decoder_bias = nnx.Param(jnp.zeros((cfg.vocab_size,), jnp.float32))
    # Unused parts stay None (static); NNX needs each attribute assigned once.
    self.pooler, self.dense, self.out = pooler, dense, out
    self.transform, self.transform_norm, self.decoder_bias = transform, transform_norm, decoder_bias

  def __call__(self, x, attention_mask, word_table, rules: RuleSet,
               packing: Packing | None = None):
    """Logits from the last hidden state ``x [B, T, H]``.

    For a packed batch (``packing``), sequence classification takes ``x`` as the first-token
    rows already gathered, ``[B, S, H]``, and the embedding head pools each example's tokens:
    both give ``[B, S, ...]``. Other heads do not take packed batches.
    """
    act = lambda name, y: rules.activation(name, y)
    if packing is not None and self.kind not in ("sequence_classification", "embedding"):
      raise ValueError(f"a {self.kind} head does not take packed batches")
    if self.kind == "sequence_classification":
      cls = x if packing is not None else x[:, 0]
      if self.family == "bert":
        return self.out(act("tanh", self.pooler(cls)))
      inner = {"roberta": "tanh", "electra": "gelu", "distilbert": "relu"}[self.family]
      return self.out(act(inner, self.dense(cls)))
    if self.kind in ("token_classification", "question_answering"):
      return self.out(x)
    if self.kind == "masked_lm":
      name = "gelu" if self.family in ("roberta", "electra") else self.activation
      y = self.transform_norm(act(name, self.transform(x)), rules)
      logits = jnp.einsum("bte,ve->btv", y, word_table, preferred_element_type=jnp.float32)
      return logits + self.decoder_bias[...]
    # "embedding": sentence-transformers mean pooling over real tokens (of each packed example).
    if packing is not None:
      m = packing.slot_mask().astype(x.dtype)  # [B, T, S]
      total = jnp.einsum("bts,bth->bsh", m, x, preferred_element_type=jnp.float32)
      return total / jnp.maximum(m.sum(1), 1.0)[..., None]
    m = attention_mask[..., None].astype(x.dtype)
    return (x * m).sum(1) / jnp.maximum(m.sum(1), 1.0)


class Encoder(nnx.Module):
  """A BERT-family encoder with its head, called as ``encoder(batch, taps) -> Outputs``."""

  def __init__(self, cfg: EncoderConfig, *, rngs: nnx.Rngs):
    self.config = cfg
    self.embeddings = Embeddings(cfg, rngs=rngs)
    self.layers = nnx.List([Layer(cfg, rngs=rngs) for _ in range(cfg.num_layers)])
    self.head = Head(cfg, rngs=rngs)

  def __call__(self, batch: Batch, taps: Taps = Taps()) -> Outputs:
    cfg = self.config
    rules = get_rule_set(taps.rules)
    mask = batch.attention_mask
    words = (self.embeddings.word(batch.input_ids) if taps.word_embeddings is None
             else taps.word_embeddings)
    packing = batch.packing
    if packing is None:
      allowed = mask[:, None, None, :] > 0  # [B, 1, 1, T]
    else:  # each token attends to its own example's tokens only: [B, 1, T, T]
      seg = packing.segment_ids  # keys also where attention_mask allows (Mask-LRP drops [SEP])
      allowed = ((seg[:, :, None] == seg[:, None, :]) & (seg[:, None, :] > 0)
                 & (mask[:, None, :] > 0))[:, None]
    mask_bias = jnp.where(allowed, 0.0, jnp.finfo(jnp.float32).min).astype(jnp.float32)
    b, t = batch.input_ids.shape
    start = 0
    if taps.hidden is not None:
      start = taps.hidden_layer
      if not 0 <= start <= cfg.num_layers:
        raise ValueError(f"hidden_layer {start} out of range 0..{cfg.num_layers}")
      x = taps.hidden.astype(jnp.float32)
    else:
      x = self.embeddings(batch, words, rules)
    zeros_h = jnp.zeros((b, t, cfg.hidden_size), jnp.float32)
    zeros_a = jnp.zeros((b, cfg.num_heads, t, t), jnp.float32)
    hidden = [zeros_h] * start
    attention = [zeros_a] * start
    last = cfg.num_layers
    head_input = None
    for i in range(start, last + 1):
      if taps.hidden_delta is not None:
        x = x + taps.hidden_delta[i]
      hidden.append(x)
      if i == last:
        break
      delta = None if taps.attention_delta is None else taps.attention_delta[i]
      scale = None if taps.head_relevance_mask is None else taps.head_relevance_mask[i]
      if i == last - 1 and cfg.head == "sequence_classification":
        # The head reads the [CLS] row of the last layer only, so the logits come from a pass
        # that computes that one query row (keys and values still from every token). The full
        # last layer below feeds ``hidden[L]`` and ``attention[L-1]``; when a caller reads only
        # the logits (every gradient method), XLA drops it as dead code: about 1/7 fewer FLOPs
        # for a 6-layer model, forward and backward. Gradients are unchanged: the logits never
        # depended on the other rows of the last layer.
        # A packed batch's head reads each example's first row: [B, S] query positions.
        rows = 1 if packing is None else jnp.maximum(packing.starts, 0)
        head_input, _ = self.layers[i](x, mask_bias, rules, delta, scale, queries=rows)
        if taps.hidden_delta is not None:
          head_input = head_input + (
              taps.hidden_delta[last][:, :1] if packing is None else jnp.take_along_axis(
                  taps.hidden_delta[last], rows[:, :, None], axis=1))
      x, probs = self.layers[i](x, mask_bias, rules, delta, scale)
      attention.append(probs)
    if head_input is None and packing is not None and cfg.head == "sequence_classification":
      head_input = jnp.take_along_axis(x, jnp.maximum(packing.starts, 0)[:, :, None], axis=1)
    logits = self.head(x if head_input is None else head_input, mask,
                       self.embeddings.word.embedding[...], rules, packing)
    return Outputs(logits=logits, hidden=jnp.stack(hidden), attention=jnp.stack(attention),
                   word_embeddings=words,
                   embedding_parts=jnp.stack(self.embeddings.parts(batch, words)))
