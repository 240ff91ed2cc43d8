"""Length grouping (:func:`jaxplain.models.length_groups`): the plan of calls that
:func:`jaxplain.attribute` and :func:`jaxplain.metrics.forward_compacted` run."""

import hypothesis
import hypothesis.strategies as st
import numpy as np

from jaxplain.models import bucket_length, length_groups

BUCKETS = (8, 16, 24, 32, 48, 64)


@hypothesis.settings(max_examples=60, deadline=None, derandomize=True)
@hypothesis.given(st.lists(st.integers(1, 64), min_size=1, max_size=300),
                  st.sampled_from([64, 256, 2048]))
def test_budget_groups_cover_every_example_once_within_budget(lengths, budget):
  """``rows=None``: every example once, in a group wide enough for it, each call either
  ``budget // width`` rows or the power of two that holds the examples left (few compiled
  shapes, padding at most 2x on a small tail), shortest first."""
  lengths = np.asarray(lengths)
  seen = []
  for idx, size, width in length_groups(lengths, 64, buckets=BUCKETS, budget=budget):
    left = len(lengths) - len(seen)
    power = 1 << (left - 1).bit_length()
    assert 1 <= len(idx) <= size == max(1, min(budget // width, power))
    assert size == max(1, budget // width) or size < 2 * left
    assert all(bucket_length(int(e), 64, BUCKETS) <= width for e in lengths[idx])
    seen.extend(idx.tolist())
  assert sorted(seen) == list(range(len(lengths)))
  assert (np.diff(lengths[seen]) >= 0).all()


@hypothesis.settings(max_examples=30, deadline=None, derandomize=True)
@hypothesis.given(st.lists(st.integers(1, 64), min_size=1, max_size=100), st.integers(1, 40))
def test_fixed_rows_cut_sorted_groups_at_their_longest_bucket(lengths, rows):
  lengths = np.asarray(lengths)
  groups = list(length_groups(lengths, 64, rows=rows, buckets=BUCKETS))
  order = np.concatenate([idx for idx, _, _ in groups])
  assert order.tolist() == np.argsort(lengths, kind="stable").tolist()
  for idx, size, width in groups:
    assert size == min(rows, len(lengths)) and 1 <= len(idx) <= size
    assert width == bucket_length(int(lengths[idx].max()), 64, BUCKETS)
