"""Interpretation models: relaxed top-k, frozen stages, weighting, a planted shortcut, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxplain
from jaxplain.attribution import selectors as S
from jaxplain.attribution.selectors import models as M
from jaxplain.models import EncoderConfig, init_encoder

MASK = jnp.asarray([[1, 1, 1, 1, 1, 0], [1, 1, 1, 0, 0, 0]])


def test_relaxed_top_k_is_a_soft_k_hot_mask_with_gradients():
  scores = jnp.asarray([[3.0, 1.0, 0.0, -1.0, 2.0, 9.0], [0.0, 5.0, 1.0, 9.0, 9.0, 9.0]])
  m = S.relaxed_top_k(scores, MASK, 2, key=jax.random.key(0), temperature=0.1)
  assert np.all((np.asarray(m) >= 0) & (np.asarray(m) <= 1))
  assert np.all(np.asarray(m)[np.asarray(MASK) == 0] == 0)
  assert np.all(np.asarray(m).sum(-1) <= 2 + 1e-5)
  g = jax.grad(lambda s: S.relaxed_top_k(s, MASK, 2, key=jax.random.key(0)).sum())(scores)
  assert np.abs(np.asarray(g)[np.asarray(MASK) > 0]).sum() > 0
  hard = np.asarray(S.hard_top_k(scores, MASK, 2))
  np.testing.assert_array_equal(hard, [[1, 0, 0, 0, 1, 0], [0, 1, 1, 0, 0, 0]])


def test_low_temperature_samples_concentrate_on_top_tokens():
  scores = jnp.asarray([[5.0, 4.0, -5.0, -5.0, -5.0, 0.0]])
  mask = jnp.asarray([[1, 1, 1, 1, 1, 0]])
  hits = np.mean([np.asarray(S.relaxed_top_k(scores, mask, 2, key=jax.random.key(i),
                                             temperature=0.05))[0, :2].max()
                  for i in range(20)])
  assert hits > 0.9


def _planted(n=400, t=6, h=8, seed=0):
  """Contexts know the label; token features do not, except which inserted token they are."""
  rng = np.random.default_rng(seed)
  y = rng.integers(0, 2, n)
  tokens = rng.normal(size=(n, t, h)).astype(np.float32) * 0.1
  tokens[:, 0, :] = np.eye(h)[1]  # inserted token A, identical in every example
  tokens[:, 1, :] = np.eye(h)[2]  # inserted token B
  context = 3.0 * tokens  # a contextual state knows its own token...
  context[:, :, 0] = (2 * y - 1)[:, None] * 3.0  # ...and, everywhere, the label
  mask = np.ones((n, t), np.int32)
  return jnp.asarray(context), jnp.asarray(tokens), jnp.asarray(mask), jnp.asarray(y)


def test_frozen_part_does_not_change():
  c, t, m, y = _planted(n=64)
  cfg = S.TrainConfig(kind="l2x", k=1, steps=20)
  p0 = M.init("l2x", 8, 2, key=jax.random.key(1))
  p1 = S.train(c, t, m, y, cfg, key=jax.random.key(2), params=p0, trainable="selector")
  for a, b in zip(jax.tree.leaves(p0["predictor"]), jax.tree.leaves(p1["predictor"])):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert any(not np.array_equal(np.asarray(a), np.asarray(b))
             for a, b in zip(jax.tree.leaves(p0["selector"]), jax.tree.leaves(p1["selector"])))


def test_instance_weights_make_the_pattern_label_independent():
  rng = np.random.default_rng(0)
  y = rng.integers(0, 2, 2000)
  independent = rng.normal(size=(2000, 3)).astype(np.float32)
  w = S.instance_weights(independent, y)
  assert abs(w.mean() - 1) < 1e-5 and w.std() < 0.1
  # A pattern that agrees with the label 80% of the time: P(y=1 | pattern=1) = 0.8.
  flip = rng.random(2000) < 0.2
  pattern = np.where(flip, 1 - y, y)
  revealing = np.stack([pattern, 1 - pattern], 1).astype(np.float32)
  w2 = S.instance_weights(revealing, y, clip=(0.1, 10.0))
  assert abs(w2.mean() - 1) < 1e-5
  on = pattern == 1
  weighted = (w2 * (y == 1))[on].sum() / w2[on].sum()
  assert abs((y[on] == 1).mean() - 0.8) < 0.05  # unweighted: the pattern reveals the label
  assert abs(weighted - (y == 1).mean()) < 0.05  # weighted: it no longer does
  with pytest.raises(jaxplain.InputError, match="clip bounds"):
    S.instance_weights(revealing, y, clip=(0.0, 5.0))


def test_planted_shortcut_detected_and_random_pretraining_removes_it():
  c, t, m, y = _planted()
  cfg = S.TrainConfig(kind="l2x", k=1, steps=400, learning_rate=1e-2)
  joint = S.train(c, t, m, y, cfg, key=jax.random.key(0))
  pred, sel = S.predict(joint, c, t, m, cfg)
  assert (pred == np.asarray(y)).mean() > 0.9  # the approximator "works"...
  assert sel[:, :2].sum(1).mean() > 0.9  # ...by selecting inserted tokens...
  half = len(y) // 2
  probe = S.shortcut_probe(sel[:half, :2], y[:half], sel[half:, :2], y[half:])
  assert probe > 0.9  # ...whose pattern encodes the label: the shortcut
  fixed = S.train_random_pretrained(c, t, m, y, cfg, key=jax.random.key(0))
  _, sel2 = S.predict(fixed, c, t, m, cfg)
  probe2 = S.shortcut_probe(sel2[:half, :2], y[:half], sel2[half:, :2], y[half:])
  assert probe2 < 0.75


def test_checkpoint_roundtrip_kernel_and_bad_input(tmp_path):
  cfg = EncoderConfig(family="bert", hidden_size=32, num_layers=1, num_heads=4,
                      intermediate_size=64, vocab_size=50, max_positions=16, num_labels=2)
  forward, params = init_encoder(cfg)
  sel = S.Selector(params=M.init("attention", 32, 2, key=jax.random.key(0)), kind="attention",
                   k=2, hidden=32)
  S.save_selector(tmp_path / "sel", sel)
  loaded = S.load_selector(tmp_path / "sel", hidden=32)
  ids = jnp.asarray([[2, 5, 6, 3, 0]])
  batch = jaxplain.Batch(ids, (ids > 0).astype(jnp.int32), jnp.zeros_like(ids))
  a = np.asarray(S.attention_pooling(forward, params, batch, selector=loaded))
  np.testing.assert_allclose(a.sum(), 1.0, rtol=1e-5)
  assert a[0, -1] == 0
  with pytest.raises(jaxplain.InputError, match="hidden size 32, but this model's is 384"):
    S.load_selector(tmp_path / "sel", hidden=384)
  with pytest.raises(jaxplain.InputError, match="no trained selector"):
    S.load_selector(tmp_path / "nothing")
  with pytest.raises(jaxplain.InputError, match="trained as 'attention'"):
    S.l2x(forward, params, batch, selector=loaded)
  with pytest.raises(jaxplain.InputError, match="k=9 tokens cannot be selected"):
    S.train(jnp.zeros((2, 5, 32)), jnp.zeros((2, 5, 32)), jnp.ones((2, 5), jnp.int32),
            jnp.zeros((2,), jnp.int32), S.TrainConfig(k=9, steps=1), key=jax.random.key(0))
