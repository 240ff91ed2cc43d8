"""LAFA: neighbour search, kernels, aggregation, and bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxplain
import importlib
L = importlib.import_module("jaxplain.attribution.lafa")
from jaxplain.models import EncoderConfig, init_encoder

TINY = EncoderConfig(family="bert", hidden_size=32, num_layers=2, num_heads=4,
                     intermediate_size=64, vocab_size=60, max_positions=32, num_labels=2)
ATOL = 1e-5  # float32 sums over a handful of tokens


@pytest.fixture(scope="module")
def tiny():
  return init_encoder(TINY, seed=3)


def _batch(rows, t=8):
  ids = np.zeros((len(rows), t), np.int32)
  mask = np.zeros_like(ids)
  wid = np.full_like(ids, -1)
  for i, r in enumerate(rows):
    ids[i, :len(r)] = r
    mask[i, :len(r)] = 1
    wid[i, 1:len(r) - 1] = np.arange(len(r) - 2)
  return jaxplain.Batch(ids, mask, np.zeros_like(ids), word_ids=wid)


# Jitted once for the module: run op by op, each of the model's operations compiles on its own
# (most of these tests' time).
_lafa = jax.jit(L.lafa, static_argnums=0, static_argnames=("neighbours", "kernel", "base"))
_base_scores = jax.jit(L.base_scores, static_argnums=0)

POOL = [[2, 10, 11, 3], [2, 10, 12, 13, 3], [2, 20, 21, 3], [2, 11, 10, 3], [2, 30, 31, 32, 3]]


def test_nearest_known_neighbours_and_chunking():
  vectors = jnp.asarray([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0], [0.0, 2.0], [10.0, 0.0]])
  queries = jnp.asarray([[0.1, 0.0], [9.0, 0.0]])
  d, i = L.nearest(vectors, queries, 3)
  np.testing.assert_array_equal(np.asarray(i), [[0, 1, 3], [4, 2, 1]])
  np.testing.assert_allclose(np.asarray(d[0]), [0.1, 0.9, np.sqrt(0.01 + 4)], rtol=1e-5)
  d2, i2 = L.nearest(vectors, queries, 3, chunk_size=2)  # 5 rows, chunks of 2: padded tail
  np.testing.assert_array_equal(np.asarray(i2), np.asarray(i))
  np.testing.assert_allclose(np.asarray(d2), np.asarray(d), rtol=1e-6)


def test_kernel_values():
  a = jnp.asarray([[1.0, 0.0], [0.0, 2.0]])
  b = jnp.asarray([[1.0, 0.0], [3.0, 0.0]])
  ids_a, ids_b = jnp.asarray([5, 6]), jnp.asarray([5, 7])
  np.testing.assert_allclose(L.kernel_matrix("indicator", a, b, ids_a, ids_b), [[1, 0], [0, 0]])
  np.testing.assert_allclose(L.kernel_matrix("cosine", a, b, ids_a, ids_b), [[1, 1], [0, 0]],
                             atol=1e-6)
  np.testing.assert_allclose(L.kernel_matrix("rbf", a, b, ids_a, ids_b)[0],
                             [1.0, np.exp(-2.0 / 4.0)], rtol=1e-6)
  np.testing.assert_allclose(L.kernel_matrix("laplacian", a, b, ids_a, ids_b)[1, 0],
                             np.exp(-3.0 / 4.0), rtol=1e-6)
  np.testing.assert_allclose(L.kernel_matrix("l2", a, b, ids_a, ids_b)[0], [1 / 0.3, 1 / 2.0],
                             rtol=1e-6)
  np.testing.assert_allclose(L.kernel_matrix("cubic", a, b, ids_a, ids_b)[0], [343.0, 9261.0],
                             rtol=1e-6)


def test_lafa_reduces_to_base_and_matches_hand_aggregate(tiny):
  forward, params = tiny
  pool = [_batch(POOL)]
  index = L.build_index(forward, params, pool, layer=1, quantile=1.0, key=jax.random.key(0))
  query = _batch([[2, 10, 11, 3]])
  base = _base_scores(forward, params, query)
  zero = _lafa(forward, params, query, index=index, lam=0.0)
  np.testing.assert_allclose(zero, base, atol=ATOL)
  got = _lafa(forward, params, query, index=index, lam=1.0, neighbours=2, kernel="indicator")
  # By hand: the two nearest pool entries other than the query itself, under the cut-off.
  q = jax.jit(lambda p: L.pool_hidden(forward, p, query, 1))(params)
  d = np.linalg.norm(np.asarray(index.vectors) - np.asarray(q), axis=-1)
  order = [j for j in np.argsort(d, kind="stable") if d[j] > 1e-6 and d[j] < index.cutoff][:2]
  expected = np.asarray(base[0]).copy()
  agg = np.zeros(8)
  for j in order:
    ids, s = np.asarray(index.input_ids[j]), np.asarray(index.scores[j])
    n = np.asarray(index.attention_mask[j]).sum()
    for t in range(1, 3):
      agg[t] += (s * (ids == np.asarray(query.input_ids[0, t]))).sum() / n
  expected[1:3] += agg[1:3] / max(len(order), 1)
  np.testing.assert_allclose(np.asarray(got[0]), expected, atol=ATOL)
  assert np.all(np.asarray(got)[np.asarray(query.attention_mask) == 0] == 0)


def test_no_neighbour_inside_cutoff_gives_base(tiny):
  forward, params = tiny
  index = L.build_index(forward, params, [_batch(POOL)], layer=1, quantile=1.0)
  index = index.__class__(**{**index.__dict__, "cutoff": jnp.asarray(0.0)})
  query = _batch([[2, 10, 11, 3]])
  np.testing.assert_allclose(_lafa(forward, params, query, index=index, lam=1.0),
                             _base_scores(forward, params, query), atol=ATOL)


def test_same_class_restriction(tiny):
  forward, params = tiny
  index = L.build_index(forward, params, [_batch(POOL)], layer=1, quantile=1.0,
                        labels=np.array([0, 1, 1, 1, 1]))
  query = _batch([[2, 10, 11, 3]])
  only_zero = _lafa(forward, params, query, index=index, lam=1.0, query_labels=jnp.asarray([0]),
                    kernel="indicator")  # the only class-0 entry is the query itself
  np.testing.assert_allclose(only_zero, _base_scores(forward, params, query), atol=ATOL)


def test_bad_input(tiny):
  forward, params = tiny
  with pytest.raises(jaxplain.InputError, match="pool is empty"):
    L.build_index(forward, params, [])
  with pytest.raises(jaxplain.InputError, match="at least two"):
    L.build_index(forward, params, [_batch([[2, 5, 3]])])
  with pytest.raises(jaxplain.InputError, match="layer 9 is out of range"):
    L.build_index(forward, params, [_batch(POOL)], layer=9)
  index = L.build_index(forward, params, [_batch(POOL)], layer=1)
  with pytest.raises(jaxplain.InputError, match="unknown LAFA kernel"):
    L.lafa(forward, params, _batch([[2, 5, 3]]), index=index, kernel="poly")
  with pytest.raises(jaxplain.InputError, match="needs a reference pool"):
    L.lafa(forward, params, _batch([[2, 5, 3]]))
  with pytest.raises(jaxplain.InputError, match="neighbours must be >= 1"):
    L.lafa(forward, params, _batch([[2, 5, 3]]), index=index, neighbours=0)
  with pytest.raises(jaxplain.InputError, match="neighbours from a pool of 5"):
    L.nearest(index.vectors, index.vectors[:1], 6)
