"""``chunk_size="auto"``: the step axis is chunked to a token-row budget, and stays exact."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxplain.attribution import _quadrature as Q
from jaxplain.errors import InputError


def test_auto_chunk_follows_the_token_row_budget():
  assert Q.resolve_chunk_size("auto", steps=50, rows=32 * 64, budget=2048) == 1
  assert Q.resolve_chunk_size("auto", steps=300, rows=512, budget=2048) == 4
  assert Q.resolve_chunk_size("auto", steps=300, rows=512, budget=8192) == 15  # divisor of 300
  assert Q.resolve_chunk_size("auto", steps=48, rows=32 * 64, budget=8192) == 4
  # a divisor of the steps (no remainder to compile) when it is at least half the largest fit
  assert Q.resolve_chunk_size("auto", steps=50, rows=32 * 64, budget=8192) == 2
  assert Q.resolve_chunk_size("auto", steps=37, rows=32 * 64, budget=8192) == 4  # prime: remainder
  assert Q.resolve_chunk_size("auto", steps=4, rows=16) is None       # everything fits: one vmap
  budget = Q.auto_token_rows()                                        # this backend's default
  assert Q.resolve_chunk_size("auto", steps=48, rows=budget // 4) == 4
  assert Q.resolve_chunk_size("auto", steps=50, rows=10**6) == 1      # never below one step
  assert Q.resolve_chunk_size(7, steps=50, rows=10**6) == 7           # explicit values kept
  assert Q.resolve_chunk_size(None, steps=50, rows=10**6) is None


def test_auto_budget_is_smaller_on_the_cpu_for_speed():
  assert Q.auto_token_rows("cpu") == Q.CPU_TOKEN_ROWS < Q.auto_token_rows("gpu") == Q.AUTO_TOKEN_ROWS
  assert Q.auto_token_rows("tpu") == Q.AUTO_TOKEN_ROWS


@pytest.mark.parametrize("bad", ["big", 0, -2, 1.5, True])
def test_bad_chunk_size(bad):
  with pytest.raises(InputError, match="chunk_size"):
    Q.resolve_chunk_size(bad, steps=5, rows=5)


def test_auto_chunked_map_equals_one_vmap():
  xs = jnp.arange(11.0)
  fn = lambda x: jnp.stack([x, x ** 2])
  rows = Q.auto_token_rows() // 3                                        # -> chunks of 3 steps
  np.testing.assert_allclose(Q.map_steps(fn, xs, "auto", rows=rows), Q.map_steps(fn, xs, None))


@pytest.mark.parametrize("chunk", [None, 1, 3, 4, 11, 20, "auto"])
def test_sum_steps_is_the_sum_of_the_mapped_steps(chunk):
  xs = (jnp.arange(11.0), jnp.arange(22.0).reshape(11, 2))     # a pytree of step inputs
  fn = lambda x: {"a": x[0] * x[1], "b": jnp.sin(x[1]) + x[0]}  # a pytree of outputs [2]
  total = Q.sum_steps(fn, xs, chunk, rows=4)
  mapped = Q.map_steps(fn, xs, None)
  for k in ("a", "b"):
    np.testing.assert_allclose(np.asarray(total[k]), np.asarray(mapped[k]).sum(0), rtol=1e-6)
