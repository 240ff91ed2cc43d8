"""Length bucketing: a shard's examples sorted by length, batched, padded to a few shapes.

Every batch has the same number of rows (the global batch size; the last batch of a shard is
filled with dummy rows that are dropped) and a length from a small set of buckets, so a whole
corpus compiles one program per bucket. Sorting by length before batching keeps padding low;
:class:`PaddingStats` measures it against the two alternatives, padding every batch of the file
order to its longest input's bucket, and padding everything to ``max_length`` (one shape).
"""

import dataclasses
from typing import Sequence

import numpy as np

from jaxplain.models.tokenize import BUCKETS, bucket_length


@dataclasses.dataclass(frozen=True)
class BatchPlan:
  """One batch: ``rows`` (positions into the shard's example list, real rows only) and the
  padded length ``length``; the batch is filled to the global size with dummy rows."""

  rows: tuple[int, ...]
  length: int


def plan_batches(lengths: Sequence[int], batch_size: int, max_length: int,
                 buckets: Sequence[int] = BUCKETS) -> list[BatchPlan]:
  """Batches of at most ``batch_size`` examples, shortest first, each padded to a bucket.

  Args:
    lengths: token count of each example (special tokens included, at most ``max_length``).
    batch_size: rows per batch (the global batch size).
    max_length: the longest allowed input.
    buckets: padded lengths to choose from (capped at ``max_length``).
  Returns:
    The batches; ties in length keep their original order (a stable sort), so the plan is a
    deterministic function of ``lengths``.
  """
  order = np.argsort(np.asarray(lengths, np.int64), kind="stable")
  plans = []
  for start in range(0, len(order), batch_size):
    rows = tuple(int(i) for i in order[start:start + batch_size])
    longest = max(int(lengths[i]) for i in rows)
    plans.append(BatchPlan(rows, bucket_length(longest, max_length, buckets)))
  return plans


@dataclasses.dataclass
class PaddingStats:
  """Token counts for padding waste: ``waste = padded slots / all slots``.

  Attributes:
    real: real tokens (special tokens included).
    bucketed: slots computed with length bucketing (dummy rows included).
    file_order: slots if batches were taken in file order, each padded to its longest
      input's bucket.
    fixed: slots if every batch were padded to ``max_length``.
  """

  real: int = 0
  bucketed: int = 0
  file_order: int = 0
  fixed: int = 0

  def add(self, lengths: Sequence[int], plans: Sequence[BatchPlan], batch_size: int,
          max_length: int, buckets: Sequence[int] = BUCKETS) -> None:
    """Counts one shard: ``lengths`` in file order and the ``plans`` actually run."""
    lengths = [int(n) for n in lengths]
    self.real += sum(lengths)
    self.bucketed += sum(batch_size * p.length for p in plans)
    for start in range(0, len(lengths), batch_size):
      longest = max(lengths[start:start + batch_size])
      self.file_order += batch_size * bucket_length(longest, max_length, buckets)
    self.fixed += batch_size * max_length * len(plans)

  def merge(self, other: "PaddingStats") -> None:
    for f in dataclasses.fields(self):
      setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

  @staticmethod
  def _waste(slots: int, real: int) -> float:
    return 0.0 if slots == 0 else (slots - real) / slots

  @property
  def waste(self) -> float:
    """Padding waste with bucketing."""
    return self._waste(self.bucketed, self.real)

  @property
  def waste_file_order(self) -> float:
    """Padding waste without sorting: file-order batches, each padded to a bucket."""
    return self._waste(self.file_order, self.real)

  @property
  def waste_fixed(self) -> float:
    """Padding waste with one shape: every batch padded to ``max_length``."""
    return self._waste(self.fixed, self.real)

  def as_dict(self) -> dict[str, float]:
    return {"real_tokens": self.real, "padded_slots": self.bucketed,
            "padding_waste": round(self.waste, 6),
            "padding_waste_file_order": round(self.waste_file_order, 6),
            "padding_waste_fixed": round(self.waste_fixed, 6)}
