"""The property table every attribution method must pass (optax ``_OPTIMIZERS_UNDER_TEST``).

A method is "in" when its rows of :data:`METHODS_UNDER_TEST` pass: output ``[B, T]`` float32
(``[L+1, B, T]`` for layer methods), exactly 0 on padding, masked == dropped (more padding
changes nothing), batch invariance (alone == in a batch == in any order), determinism given the
key, ``jit`` == eager, and no recompilation on a second call of the same shape bucket.

To add a method, append a :class:`Case`. Randomised methods receive one key per example
``[B]`` (the sweep convention), so "alone == in a batch" is well defined for them; a method that
cannot honour a property lists it in ``skip`` with the reason in a comment.
"""

import dataclasses
import functools

import jax
import numpy as np
import pytest

from _tiny_bert import IDS, ROWS, TRACES, jitted, make_batch, model
from jaxplain.attribution import METHODS



@dataclasses.dataclass(frozen=True)
class Case:
  """One row of the table: a ``METHODS`` name, static hyperparameters, properties to skip."""

  name: str
  hyper: tuple = ()
  skip: frozenset = frozenset()
  atol: float = 2e-5  # the same float32 sums in another XLA program (batch size, padding)

  @property
  def id(self) -> str:
    return self.name + "".join(f"-{k}={v}" for k, v in self.hyper if k not in IDS)


def _h(**hyper) -> tuple:
  """Static hyperparameters as a sorted tuple (the jit cache key shared with other tests)."""
  return tuple(sorted(hyper.items()))


METHODS_UNDER_TEST = (
    Case("gradient"),
    Case("saliency"),
    Case("gradient_x_input"),
    Case("integrated_gradients", _h(steps=8, **IDS)),
    Case("integrated_gradients", _h(chunk_size=2, quadrature="riemann_trapezoid", steps=5, **IDS)),
    Case("smoothgrad", _h(samples=3, stdev=0.1)),
    Case("smoothgrad_sq", _h(chunk_size=2, samples=3, stdev=0.1)),
    Case("vargrad", _h(base="gradient_x_input", samples=3, stdev=0.1)),
    Case("vargrad", _h(base="integrated_gradients", chunk_size=2, per_dimension=True, samples=3,
                       stdev=0.1, steps=3, **IDS)),
    Case("layer_gradient_x_activation"),
    Case("layer_integrated_gradients", _h(steps=6, **IDS)),
    Case("layer_integrated_gradients", _h(path="layer", steps=4, **IDS)),
)
CASES = [pytest.param(c, id=c.id) for c in METHODS_UNDER_TEST]


def _traced(case: Case):
  """The shared cached ``jit`` of the kernel (``_tiny_bert.jitted``); it counts its traces."""
  return jitted(case.name, case.hyper)


def _keys(n: int, seed: int = 0):
  return jax.random.split(jax.random.key(seed), n)


@functools.cache
def _batch_scores(case: Case) -> np.ndarray:
  fn = _traced(case)
  return np.asarray(fn(model().params, make_batch(ROWS), None, _keys(len(ROWS))))


def _skip(case: Case, prop: str):
  if prop in case.skip:
    pytest.skip(f"{case.name} opts out of {prop}")


def _layered(scores) -> bool:
  return scores.ndim == 3


@pytest.mark.parametrize("case", CASES)
def test_shape_dtype_and_zero_padding(case):
  scores = _batch_scores(case)
  b, t = len(ROWS), 16
  assert scores.dtype == np.float32
  assert scores.shape[-2:] == (b, t) and scores.ndim in (2, 3), scores.shape
  if _layered(scores):
    assert scores.shape[0] == model().config.num_layers + 1
  mask = np.asarray(make_batch(ROWS).attention_mask) > 0
  assert np.all(scores[..., ~mask] == 0.0), "padding received relevance"
  assert np.all(np.isfinite(scores))
  assert np.any(scores[..., mask] != 0.0)


@pytest.mark.parametrize("case", CASES)
def test_alone_with_more_padding_equals_in_batch(case):
  """Batch invariance and masked == dropped at once: each example alone, padded to 32."""
  _skip(case, "batch_invariance")
  fn = _traced(case)
  scores = _batch_scores(case)
  keys = _keys(len(ROWS))
  for i, row in enumerate(ROWS):
    alone = np.asarray(fn(model().params, make_batch([row], t=32), None, keys[i:i + 1]))
    np.testing.assert_allclose(alone[..., 0, :16], scores[..., i, :], atol=case.atol, rtol=1e-4,
                               err_msg=f"example {i}")
    assert np.all(alone[..., 0, 16:] == 0.0)


@pytest.mark.parametrize("case", CASES)
def test_any_order(case):
  _skip(case, "batch_invariance")
  fn = _traced(case)
  order = [2, 0, 3, 1]
  keys = _keys(len(ROWS))
  permuted = np.asarray(fn(model().params, make_batch([ROWS[i] for i in order]), None,
                           keys[np.asarray(order)]))
  np.testing.assert_allclose(permuted, _batch_scores(case)[..., order, :], atol=case.atol,
                             rtol=1e-4)


@pytest.mark.parametrize("case", CASES)
def test_deterministic_given_key_and_no_recompilation(case):
  _skip(case, "determinism")
  fn = _traced(case)
  first = _batch_scores(case)
  traces = TRACES[case.name, case.hyper]
  rows = [r[:1] + [(x + 7) % 90 + 5 for x in r[1:-1]] + r[-1:] for r in ROWS]  # new ids, same bucket
  fn(model().params, make_batch(rows), None, _keys(len(ROWS), 1))
  again = np.asarray(fn(model().params, make_batch(ROWS), None, _keys(len(ROWS))))
  assert TRACES[case.name, case.hyper] == traces, "a second call of the same bucket retraced"
  np.testing.assert_array_equal(again, first)


@pytest.mark.parametrize("case", CASES)
def test_jit_equals_eager(case):
  _skip(case, "jit_equals_eager")
  batch = make_batch(ROWS[2:3], t=32)
  keys = _keys(1)
  compiled = _traced(case)
  eager = METHODS[case.name](model().forward, model().params, batch, None, key=keys,
                             **dict(case.hyper))
  np.testing.assert_allclose(np.asarray(eager),
                             np.asarray(compiled(model().params, batch, None, keys)),
                             atol=case.atol, rtol=1e-4)
