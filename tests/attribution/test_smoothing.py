"""Noise tunnels: keys and noise, reductions, the combinator, chunking and bad input."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from _tiny_bert import IDS, ROWS, call, make_batch, model
from jaxplain.attribution import integrated_gradients, noise_tunnel
from jaxplain.attribution.smoothing import embedding_noise, example_keys, reduce_samples
from jaxplain.errors import InputError

SAME = 2e-5  # one float32 computation regrouped by XLA (chunks, batch size)
BATCH = make_batch(ROWS)


def _sg(name="smoothgrad", key=None, **hyper):
  return np.asarray(call(name, BATCH, None, key, hyper=tuple(sorted(hyper.items()))))


def _shape(b, t):
  """A batch of ``b`` rows padded to ``t`` (noise reads shapes and packing, never ids)."""
  return make_batch([[2, 5, 3]] * b, t=t)


def test_noise_is_a_function_of_example_sample_and_position():
  key = jax.random.key(3)
  keys = example_keys(key, _shape(3, 8))
  assert jax.random.key_data(keys[1]).tolist() == \
      jax.random.key_data(jax.random.fold_in(key, 1)).tolist()
  a = embedding_noise(keys, 2, _shape(3, 8), 16, 0.5)
  b = embedding_noise(keys[1:2], 2, _shape(1, 12), 16, 0.5)  # another batch, more padding
  np.testing.assert_array_equal(a[1], b[0, :8])
  assert not np.allclose(a[1], embedding_noise(keys, 3, _shape(3, 8), 16, 0.5)[1])
  big = embedding_noise(example_keys(key, _shape(64, 64)), 0, _shape(64, 64), 64, 0.5)
  np.testing.assert_allclose(float(jnp.std(big)), 0.5, rtol=0.02)
  np.testing.assert_allclose(float(jnp.mean(big)), 0.0, atol=0.01)


def test_a_packed_example_draws_the_noise_it_draws_alone():
  """Slot keys ``[R, S]`` (each example's own key) give every packed token its example's noise
  at its own position."""
  from jaxplain.models import pack, unpack  # pylint: disable=g-import-not-at-top
  keys = example_keys(jax.random.key(5), BATCH)
  alone = np.asarray(embedding_noise(keys, 1, BATCH, 16, 0.3))  # [B, T, E]
  (part,), layout = pack(BATCH, 16, 4)
  part = jax.tree.map(jnp.asarray, part)
  data = np.zeros(part.packing.starts.shape + (2,), np.uint32)
  data[layout.row, layout.slot] = np.asarray(jax.random.key_data(keys))
  packed = embedding_noise(jax.random.wrap_key_data(jnp.asarray(data)), 1, part, 16, 0.3)
  back = unpack([np.moveaxis(np.asarray(packed), -1, 0)], layout)  # [E, B, T]
  real = np.asarray(BATCH.attention_mask) > 0
  np.testing.assert_array_equal(np.moveaxis(back, 0, -1)[real], alone[real])
  assert example_keys(jax.random.key(5), part).shape == part.packing.starts.shape
  with pytest.raises(InputError, match="one per example"):
    example_keys(keys[:2], BATCH)


def test_reductions():
  s = jnp.asarray([[[1.0, -2.0]], [[3.0, 0.0]]])  # [K=2, B=1, T=2]
  np.testing.assert_allclose(reduce_samples(s, "smoothgrad"), [[2.0, -1.0]])
  np.testing.assert_allclose(reduce_samples(s, "smoothgrad_sq"), [[5.0, 2.0]])
  np.testing.assert_allclose(reduce_samples(s, "vargrad"), [[1.0, 1.0]])


def test_deterministic_given_key_and_keys_matter():
  a = _sg(key=jax.random.key(1), samples=3)
  np.testing.assert_array_equal(a, _sg(key=jax.random.key(1), samples=3))
  assert not np.allclose(a, _sg(key=jax.random.key(2), samples=3))


def test_zero_noise_gives_the_base_method():
  base = np.asarray(call("gradient_x_input", BATCH))
  np.testing.assert_allclose(_sg(base="gradient_x_input", samples=2, stdev=0.0), base, atol=SAME)
  np.testing.assert_allclose(_sg("vargrad", base="gradient_x_input", samples=2, stdev=0.0), 0.0,
                             atol=1e-9)


def test_chunks_of_any_size_equal_one_vmap():
  full = _sg("vargrad", samples=5)
  for chunk in (2, 5, 8):
    np.testing.assert_allclose(_sg("vargrad", samples=5, chunk_size=chunk), full, atol=SAME)


def test_combinator_equals_registered_kernel():
  forward, params = model().forward, model().params
  tunnel = noise_tunnel(functools.partial(integrated_gradients, steps=3, **IDS),
                        kind="smoothgrad_sq", samples=2, stdev=0.05)
  ours = jax.jit(lambda p, b, k: tunnel(forward, p, b, key=k))(params, BATCH, jax.random.key(0))
  registered = _sg("smoothgrad_sq", base="integrated_gradients", steps=3, samples=2, stdev=0.05,
                   **IDS)
  np.testing.assert_allclose(np.asarray(ours), registered, atol=SAME)
  short = _sg("smoothgrad_sq", base="ig", steps=3, samples=2, stdev=0.05, **IDS)
  np.testing.assert_array_equal(short, registered)  # base takes the methods' short names


def test_bad_input():
  with pytest.raises(InputError, match="stdev"):
    _sg(stdev=-0.1)
  with pytest.raises(InputError, match="samples"):
    _sg(samples=0)
  with pytest.raises(InputError, match="unknown base"):
    _sg(base="lime")
  with pytest.raises(InputError, match="smoothgrad has no hyperparameter 'steps'; it takes base, "
                     "samples, stdev.*its base method 'saliency' takes norm"):
    _sg(base="saliency", steps=4)
  with pytest.raises(InputError, match="noise has shape"):
    call("smoothgrad", BATCH, hyper=(), noise=jnp.zeros((2, 4, 16, 3)))
  with pytest.raises(InputError, match="PRNG key"):
    noise_tunnel(integrated_gradients)(model().forward, model().params, BATCH)
  with pytest.raises(InputError, match="key must be a jax.random.key .*got int"):
    noise_tunnel(integrated_gradients)(model().forward, model().params, BATCH, key=3)
  with pytest.raises(InputError, match="kind"):
    noise_tunnel(integrated_gradients, kind="meangrad")
