"""Decoded layer saliency: Grad-CAM pieces, decoding, coherence, layer choice, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxplain
from jaxplain.attribution import decoded as D
from jaxplain.contracts import Outputs
from jaxplain.models import EncoderConfig, init_encoder

TINY = EncoderConfig(family="bert", hidden_size=32, num_layers=2, num_heads=4,
                     intermediate_size=64, vocab_size=40, max_positions=32, num_labels=2)
TINY_MLM = TINY.replace(head="masked_lm")


def _batch(rows, t=8):
  ids = np.zeros((len(rows), t), np.int32)
  mask = np.zeros_like(ids)
  wid = np.full_like(ids, -1)
  for i, r in enumerate(rows):
    ids[i, :len(r)] = r
    mask[i, :len(r)] = 1
    wid[i, 1:len(r) - 1] = np.arange(len(r) - 2)
  return jaxplain.Batch(ids, mask, np.zeros_like(ids), word_ids=wid)


BATCH = _batch([[2, 10, 11, 12, 3], [2, 20, 21, 3]])


def _identity_model(vocab=12, hidden=12):
  """A 'model' whose hidden states are one-hot token ids: decoding is the identity."""
  def forward(params, batch, taps=jaxplain.Taps()):
    words = (jax.nn.one_hot(batch.input_ids, vocab) * params["scale"]
             if taps.word_embeddings is None else taps.word_embeddings)
    h = words if taps.hidden is None else taps.hidden
    hidden = jnp.stack([h, h])
    if taps.hidden_delta is not None:
      hidden = hidden + taps.hidden_delta
    logits = (hidden[-1] * batch.attention_mask[..., None]).sum(1)[:, :2] * params["w"]
    return Outputs(logits=logits, hidden=hidden,
                   attention=jnp.zeros((1,) + batch.input_ids.shape[:1] + (1,) * 2),
                   word_embeddings=words)
  del hidden
  return forward, {"scale": jnp.ones((vocab,)) * 10.0, "w": jnp.asarray([1.0, 2.0])}


def test_identity_decoding_is_fully_coherent_and_hands_saliency_to_own_token():
  forward, params = _identity_model()
  batch = _batch([[2, 5, 6, 3]])
  sal, coh = D.decoded_layer_saliency_all(forward, params, batch, target=1, tau=1,
                                          vocab_size=12)
  np.testing.assert_allclose(np.asarray(coh), 1.0)
  s, _ = D.layer_gradcam(forward, params, batch, target=1)
  # tau=1 and an identity decoder: each position keeps its own saliency x P_i(own token).
  probs = jax.nn.softmax(10.0 * jax.nn.one_hot(batch.input_ids, 12), -1)
  own_p = np.take_along_axis(np.asarray(probs), np.asarray(batch.input_ids)[..., None], -1)[..., 0]
  real = np.asarray(batch.word_ids) >= 0
  np.testing.assert_allclose(np.asarray(sal[1]), np.asarray(s[1]) * own_p * real, rtol=1e-5)


def test_gradcam_matches_definition():
  forward, params = init_encoder(TINY, seed=0)
  s, hidden = jax.jit(lambda p: D.layer_gradcam(forward, p, BATCH, target=1))(params)
  l = 1

  def f(p, h):
    return forward(p, BATCH, jaxplain.Taps(hidden=h, hidden_layer=l)).logits[:, 1].sum()

  g = jax.jit(jax.grad(f, argnums=1))(params, hidden[l])
  m = np.asarray(BATCH.attention_mask, np.float32)[..., None]
  w = (np.asarray(g) * m).sum(1, keepdims=True) / m.sum(1, keepdims=True)
  expected = np.maximum((w * np.asarray(hidden[l])).sum(-1), 0) * m[..., 0]
  np.testing.assert_allclose(np.asarray(s[l]), expected, rtol=1e-4, atol=1e-6)


def test_own_mlm_head_and_automatic_layer():
  forward, params = init_encoder(TINY_MLM, seed=0)
  target = lambda out: out.logits[:, 1, 7]
  sal, coh = D.decoded_layer_saliency_all(forward, params, BATCH, target, tau=3,
                                          decoder="own_head", num_layers=2)
  assert sal.shape == (3, 2, 8) and coh.shape == (3, 2)
  assert np.all(np.asarray(sal) >= 0)
  assert np.all(np.asarray(sal)[:, np.asarray(BATCH.word_ids) < 0] == 0)
  auto = D.decoded_layer_saliency(forward, params, BATCH, target, tau=3, decoder="own_head",
                                  min_coherence=2.0)  # unreachable: most coherent layer
  best = np.asarray(coh).argmax(0)
  for b in range(2):
    np.testing.assert_allclose(np.asarray(auto[b]), np.asarray(sal[best[b], b]), rtol=1e-6)


def test_choose_layer():
  coh = jnp.asarray([[0.9, 0.2], [0.6, 0.3], [0.1, 0.25]])
  np.testing.assert_array_equal(np.asarray(D.choose_layer(coh, 0.5)), [1, 1])


def test_bad_input():
  forward, params = init_encoder(TINY, seed=0)
  with pytest.raises(jaxplain.InputError, match="tau must be >= 1"):
    D.decoded_layer_saliency(forward, params, BATCH, tau=0)
  with pytest.raises(jaxplain.InputError, match="layer 5 is out of range"):
    D.decoded_layer_saliency(forward, params, BATCH, layer=5)
  with pytest.raises(jaxplain.InputError, match="unknown decoder"):
    D.decoded_layer_saliency(forward, params, BATCH, decoder="lm")
