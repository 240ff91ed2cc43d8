"""Taps change what a method reads or differentiates, never the model's answer.

On one tiny random BERT sequence classifier: every tap at its neutral value (the embeddings the
model would look up, the state it computed, zero deltas, a ones relevance mask) leaves the
outputs unchanged, and the gradients they expose have the shapes and zeros the contracts promise.
Also the model's own properties: padding is masked (masked == dropped) and examples do not see
each other (batch invariance).
"""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxplain
from jaxplain import Batch, Taps

DIRECTORY = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "tiny",
                         "bert_seq_cls")

SAME = 1e-5  # the same arithmetic in another jit program: XLA may fuse and reorder float32 sums.


@pytest.fixture(scope="module")
def model():
  return jaxplain.load_model(DIRECTORY)


@pytest.fixture(scope="module")
def batch():
  """Four examples of 3 to 12 tokens, one a pair, padded to 16 (the parity fixture's inputs)."""
  ref = np.load(os.path.join(DIRECTORY, "reference.npz"))
  return Batch(ref["input_ids"], ref["attention_mask"], ref["token_type_ids"])


@pytest.fixture(scope="module")
def base(model, batch):
  return jax.device_get(model.outputs(batch))


@pytest.fixture(scope="module")
def target(base):
  return jnp.asarray(np.argmax(base.logits, -1))


def _assert_same(out, base, what):
  for field in ("logits", "hidden", "attention"):
    np.testing.assert_allclose(np.asarray(getattr(out, field)), getattr(base, field), atol=SAME,
                               rtol=0, err_msg=f"{what}: {field}")


@functools.cache
def _grad_fn(forward, tap: str):
  """``grad(sum_b logit[b, target[b]])`` with respect to the array tap named ``tap``."""

  def objective(value, params, batch, target, **other_taps):
    taps = Taps(**{tap: value}, **other_taps)
    logits = forward(params, batch, taps).logits
    return logits[jnp.arange(logits.shape[0]), target].sum()

  return jax.jit(jax.grad(objective))


def test_default_rules_are_gradient(model, batch, base):
  assert Taps().rules == "gradient"
  _assert_same(model.outputs(batch, Taps(rules="gradient")), base, "rules='gradient'")


def test_unknown_rules_raise(model, batch):
  with pytest.raises(jaxplain.InputError, match="unknown rule set 'no-such-rules'"):
    model.outputs(batch, Taps(rules="no-such-rules"))


def test_word_embeddings_tap_equal_to_the_lookup(model, batch, base):
  table = np.asarray(model.params["embeddings"]["word"]["embedding"][...])
  np.testing.assert_array_equal(base.word_embeddings, table[np.asarray(batch.input_ids)])
  out = model.outputs(batch, Taps(word_embeddings=jnp.asarray(base.word_embeddings)))
  _assert_same(out, base, "word_embeddings tap")
  np.testing.assert_array_equal(np.asarray(out.word_embeddings), base.word_embeddings)


def test_hidden_replacement_at_every_layer(model, batch, base):
  for layer in range(model.config.num_layers + 1):
    taps = Taps(hidden=jnp.asarray(base.hidden[layer]), hidden_layer=layer)
    out = model.outputs(batch, taps)
    np.testing.assert_allclose(np.asarray(out.logits), base.logits, atol=SAME, rtol=0,
                               err_msg=f"logits after replacing hidden[{layer}]")
    np.testing.assert_allclose(np.asarray(out.hidden[layer:]), base.hidden[layer:], atol=SAME,
                               rtol=0, err_msg=f"hidden states after replacing hidden[{layer}]")


def test_hidden_delta_of_zeros(model, batch, base, target):
  zeros = jnp.zeros_like(jnp.asarray(base.hidden))
  _assert_same(model.outputs(batch, Taps(hidden_delta=zeros)), base, "zero hidden_delta")
  grad = np.asarray(_grad_fn(model.forward, "hidden_delta")(zeros, model.params,
                                                            batch.device_part(), target))
  assert grad.shape == base.hidden.shape
  norms = np.linalg.norm(grad, axis=-1)  # [L+1, B, T]
  real = np.asarray(batch.attention_mask).astype(bool)
  last = model.config.num_layers
  # Below the head every real token reaches [CLS] through attention.
  assert (norms[:last][:, real] > 0).all()
  # The sequence-classification head reads [CLS] of the last state only.
  assert (norms[last][:, 0] > 0).all() and (norms[last][:, 1:] == 0).all()
  # Padded keys get probability exactly 0, so no gradient reaches a padded state.
  assert (norms[:, ~real] == 0).all()


def test_padded_states_do_not_reach_the_logits(model, batch, base):
  """The zero gradient above, checked by perturbing every padded state of every layer."""
  real = np.asarray(batch.attention_mask).astype(bool)
  noise = np.random.default_rng(0).normal(size=base.hidden.shape).astype(np.float32)
  noise = np.where(real[None, :, :, None], 0.0, 10.0 * noise)
  out = model.outputs(batch, Taps(hidden_delta=jnp.asarray(noise)))
  np.testing.assert_allclose(np.asarray(out.logits), base.logits, atol=SAME, rtol=0)


def test_attention_delta_of_zeros(model, batch, base, target):
  zeros = jnp.zeros_like(jnp.asarray(base.attention))
  _assert_same(model.outputs(batch, Taps(attention_delta=zeros)), base, "zero attention_delta")
  grad = np.asarray(_grad_fn(model.forward, "attention_delta")(zeros, model.params,
                                                               batch.device_part(), target))
  cfg = model.config
  b, t = batch.shape
  assert grad.shape == (cfg.num_layers, b, cfg.num_heads, t, t)
  assert np.isfinite(grad).all()
  # In the last layer only the [CLS] query row reaches the head.
  assert np.abs(grad[-1, :, :, 0]).sum() > 0 and (grad[-1, :, :, 1:] == 0).all()


def test_head_relevance_mask(model, batch, base, target):
  cfg = model.config
  ones = jnp.ones((cfg.num_layers, cfg.num_heads))
  zeros = jnp.zeros_like(ones)
  for mask, name in ((ones, "ones"), (zeros, "zeros")):
    _assert_same(model.outputs(batch, Taps(head_relevance_mask=mask)), base, f"{name} mask")
  words = jnp.asarray(base.word_embeddings)
  grad = _grad_fn(model.forward, "word_embeddings")
  args = (words, model.params, batch.device_part(), target)
  plain = np.asarray(grad(*args))
  with_ones = np.asarray(grad(*args, head_relevance_mask=ones))
  with_zeros = np.asarray(grad(*args, head_relevance_mask=zeros))
  np.testing.assert_allclose(with_ones, plain, atol=SAME, rtol=0)
  assert np.abs(with_zeros - plain).max() > 1e-3  # relevance through the heads is removed
  assert np.abs(plain).max() > 1e-3


def test_masked_equals_dropped(model, batch, base):
  """Padding changes nothing: the batch padded further to 32, or an example unpadded."""
  ids, mask, types = (np.asarray(x) for x in (batch.input_ids, batch.attention_mask,
                                              batch.token_type_ids))
  pad = model.tokenizer.pad_token_id
  longer = Batch(np.pad(ids, ((0, 0), (0, 16)), constant_values=pad),
                 np.pad(mask, ((0, 0), (0, 16))), np.pad(types, ((0, 0), (0, 16))))
  np.testing.assert_allclose(np.asarray(model(longer)), base.logits, atol=SAME, rtol=0,
                             err_msg="padded to 32")
  for i in (2, 3):  # the pair and the shortest example (each new length is a compile)
    n = mask[i].sum()
    alone = Batch(ids[i:i + 1, :n], mask[i:i + 1, :n], types[i:i + 1, :n])
    np.testing.assert_allclose(np.asarray(model(alone))[0], base.logits[i], atol=SAME, rtol=0,
                               err_msg=f"example {i} without padding ({n} tokens)")


def test_batch_invariance(model, batch, base):
  """An example's logits do not depend on the others in its batch, nor on its row."""
  order = np.array([2, 0, 3, 1])
  shuffled = batch.device_part().take(order)
  np.testing.assert_allclose(np.asarray(model(shuffled)), base.logits[order], atol=SAME, rtol=0)
  one = np.asarray(model(batch.device_part().take(slice(1, 2))))
  np.testing.assert_allclose(one[0], base.logits[1], atol=SAME, rtol=0)


def test_logits_only_skip_the_last_layers_other_rows(model, batch):
  """A program that reads only the logits compiles without the last layer's non-[CLS] rows.

  The head reads ``hidden[L][:, 0]``, so the encoder computes the logits from a one-query pass
  through the last layer; the full last layer exists only for ``hidden`` / ``attention``. Pinned
  through XLA's FLOP count: removing the full last layer must cut its dense work.
  """
  cfg, (b, t) = model.config, batch.shape
  part = batch.device_part()
  flops = lambda fn: jax.jit(fn).lower(model.params, part).compile().cost_analysis()["flops"]
  logits_only = flops(lambda p, x: model.forward(p, x).logits)
  def logits_and_last(p, x):
    out = model.forward(p, x)
    return out.logits, out.hidden[-1]

  with_last = flops(logits_and_last)
  h, i = cfg.hidden_size, cfg.intermediate_size
  rows_skipped = b * (t - 1) * 2 * (2 * h * h + 2 * h * i)  # Q, attention output, FFN in/out
  assert with_last - logits_only >= 0.9 * rows_skipped


def test_exact_gelu_custom_jvp_matches_autodiff_through_erf():
  """The model's exact GELU (custom JVP under jax.checkpoint) keeps jax.nn's values and derivatives.

  Reverse mode to second order, and forward mode, which ``jax.checkpoint`` keeps (a custom VJP
  would not).
  """
  from jaxplain.models.rules import gelu_exact  # pylint: disable=g-import-not-at-top
  x = jnp.linspace(-8.0, 8.0, 2001)
  ref = lambda v: jax.nn.gelu(v, approximate=False)
  np.testing.assert_allclose(gelu_exact(x), ref(x), atol=2e-6)
  for f, g in ((gelu_exact, ref), (jax.grad(gelu_exact), jax.grad(ref))):
    np.testing.assert_allclose(jax.vmap(jax.grad(f))(x), jax.vmap(jax.grad(g))(x), atol=2e-6)
  tangent = jnp.cos(x)
  np.testing.assert_allclose(jax.jvp(gelu_exact, (x,), (tangent,))[1],
                             jax.jvp(ref, (x,), (tangent,))[1], atol=2e-6)
  assert gelu_exact(x.astype(jnp.bfloat16)).dtype == jnp.bfloat16
