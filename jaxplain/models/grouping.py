"""Length grouping: examples sorted by length, cut into calls, each padded to a bucket.

Padding every example of a call to its longest one wastes the most on a corpus of mixed lengths:
512 Rotten Tomatoes snippets padded together to the bucket of the longest (64 tokens) are 56%
padding, in length-sorted groups padded to buckets 13-16%. :func:`length_groups` plans those
groups for :func:`jaxplain.attribute` (per example) and
:func:`jaxplain.metrics.forward_compacted` (per perturbed row). Host-side numpy.
"""

from typing import Iterator, Sequence

import numpy as np

from jaxplain.models.tokenize import BUCKETS, bucket_length


def length_groups(lengths: Sequence[int], max_length: int, *, rows: int | None = None,
                  buckets: Sequence[int] = BUCKETS, budget: int = 2048
                  ) -> Iterator[tuple[np.ndarray, int, int]]:
  """``(indices, rows per call, width)`` per call, over examples sorted by length.

  A fixed ``rows`` cuts groups of that size in length order, each at the bucket of its longest
  example (the last group is filled up to ``rows``). ``rows=None`` runs a group of width ``w``
  at ``budget // w`` rows (one compiled shape per width), or at the power of two that holds the
  rows left when fewer remain (so a small input pads at most 2x and still compiles few shapes).
  Of the widths that the next examples need, the greedy choice is the one with the fewest token
  rows executed per example consumed (a wider bucket holds more of the next examples, a
  narrower one pads less; the rest of a group that ends early is filled); ties go to the wider,
  which makes fewer calls. Our heuristic, measured only as a whole
  (``bench_metrics.py --compare-rows``, ``bench_attribute_call.py``).

  Args:
    lengths: ``[N]`` token count of each example (its last real token + 1).
    max_length: the widest call (caps every bucket).
    rows: examples per call; ``None`` sizes each call by ``budget``.
    buckets: padded lengths to choose from.
    budget: token rows per call when ``rows`` is ``None``.
  Yields:
    ``(indices, size, width)``: the examples of one call (positions into ``lengths``, shortest
    first, at most ``size`` of them), the call's row count (the caller fills rows past
    ``len(indices)``, e.g. with repeats) and its padded length. Every example appears once;
    ties in length keep their order.
  """
  lengths = np.asarray(lengths, np.int64)
  order = np.argsort(lengths, kind="stable")
  n = len(order)
  widths = np.array([bucket_length(int(e), max_length, buckets) for e in lengths[order]],
                    np.int64)
  start = 0
  while start < n:
    if rows is not None:
      size = max(1, min(int(rows), n))
      take, width = size, int(widths[min(start + size, n) - 1])
    else:
      best = None
      left = 1 << (n - start - 1).bit_length()  # smallest power of two >= the rows left
      for w in np.unique(widths[start:]):
        size = max(1, min(budget // int(w), left))
        k = int(np.searchsorted(widths[start:start + size], w, side="right"))
        if best is None or w * size / k <= best[0]:  # ties: the wider, fewer calls
          best = (w * size / k, k, size, int(w))
        if k == min(size, n - start):  # every next row fits: wider buckets only cost more
          break
      _, take, size, width = best
    yield order[start:start + take], size, width
    start += take
