"""Sequence packing: several short examples per row, so a corpus pads almost nothing.

Length bucketing pads every example of a batch to one of a few lengths; on short texts that is
10-16% of the computed token slots (Rotten Tomatoes snippets, see ``docs/gradients.md``).
Packing instead lays examples end to end in rows of ``row_length`` tokens (best-fit
decreasing), each with its own special tokens, positions restarting at 0 and attention kept
inside the example (:class:`jaxplain.contracts.Packing`). The model's outputs for each example
are those it has alone, so every method that reads one logit per example and scores tokens
through a backward pass gives the same scores (:data:`jaxplain.attribution.PACKABLE`).

The shapes stay few: rows of one length, ``rows_per_batch`` rows per batch (the last batch of a
call is cut to the next power of two that holds its rows) and a power-of-two number of slots.
Host-side numpy; :func:`pack` and :func:`unpack` are exact inverses on the real tokens.
"""

import dataclasses
import heapq
from typing import Sequence

import numpy as np

from jaxplain.contracts import Batch, Packing
from jaxplain.errors import InputError
from jaxplain.models.tokenize import BUCKETS, bucket_length


@dataclasses.dataclass(frozen=True)
class PackLayout:
  """Where each example of the unpacked ``[B, T]`` batch sits in the packed batches.

  Attributes:
    part: ``[B]`` the packed batch that holds the example.
    row: ``[B]`` its row in that batch.
    slot: ``[B]`` its slot in the row (``Packing.starts[row, slot]`` is its first token).
    offset: ``[B]`` the position of its first token in the row.
    length: ``[B]`` its token count (special tokens included).
    shape: ``(B, T)`` of the unpacked batch.
  """

  part: np.ndarray
  row: np.ndarray
  slot: np.ndarray
  offset: np.ndarray
  length: np.ndarray
  shape: tuple[int, int]


def plan_rows(lengths: Sequence[int], row_length: int) -> list[list[int]]:
  """Best-fit decreasing: example indices per row, each row's lengths summing to at most
  ``row_length``.

  Examples are placed longest first, each into the open row with the least room that holds it
  (the earliest such row on ties), or a new row. Rows are kept by their free room, so a placement
  costs at most ``row_length`` steps: linear in the number of examples. Deterministic (ties in
  length keep their order); a row lists its examples longest first.

  Raises:
    InputError: an example longer than ``row_length``.
  """
  lengths = np.asarray(lengths, np.int64)
  if lengths.size and int(lengths.max()) > row_length:
    i = int(lengths.argmax())
    raise InputError(f"example {i} has {int(lengths[i])} tokens, more than the packed row length "
                     f"{row_length}; pass a row length of at least {int(lengths.max())}.")
  rows: list[list[int]] = []
  by_room: list[list[int]] = [[] for _ in range(row_length + 1)]  # room -> heap of row ids
  for i in np.argsort(-lengths, kind="stable"):
    n = int(lengths[i])
    room = next((k for k in range(n, row_length + 1) if by_room[k]), None)
    if room is None:
      r, room = len(rows), row_length
      rows.append([])
    else:
      r = heapq.heappop(by_room[room])
    rows[r].append(int(i))
    heapq.heappush(by_room[room - n], r)
  return rows


MIN_ROW_LENGTH = 64
"""The shortest row :func:`default_row_length` picks when the texts fill it."""


def default_row_length(lengths: Sequence[int], max_length: int,
                       buckets: Sequence[int] = BUCKETS) -> int:
  """The row length of ``attribute(..., pack=True)``: the smallest bucket that holds the longest
  example and :data:`MIN_ROW_LENGTH` tokens, or all the examples when they total fewer.

  Rows at least 64 long leave little room unfilled on short texts (0.7% of the slots on Rotten
  Tomatoes snippets); longer rows pad less still but attend over more keys per token.
  """
  lengths = [int(n) for n in lengths]
  return bucket_length(max(max(lengths), min(MIN_ROW_LENGTH, sum(lengths))), max_length,
                       buckets)


def _pow2(n: int) -> int:
  return 1 << max(0, int(n) - 1).bit_length()


def pack(batch: Batch, row_length: int, rows_per_batch: int
         ) -> tuple[list[Batch], PackLayout]:
  """Packs a right-padded batch into batches of ``[rows_per_batch, row_length]``.

  Args:
    batch: ``[B, T]``, real tokens first in each row (as :meth:`jaxplain.Model.encode` makes).
    row_length: tokens per packed row; at least the longest example.
    rows_per_batch: rows per packed batch; the last batch has the next power of two that holds
      its rows (at most ``rows_per_batch``), its spare rows empty.
  Returns:
    ``(packed batches, layout)``: the batches carry ``input_ids``, ``attention_mask``,
    ``token_type_ids`` and :class:`~jaxplain.contracts.Packing` (numpy arrays); every batch of
    one call has the same number of slots ``S`` (a power of two).
  Raises:
    InputError: padding before a real token, a row without a real token, an example longer
      than ``row_length``, or a non-positive size.
  """
  if row_length < 1 or rows_per_batch < 1:
    raise InputError(f"row_length and rows_per_batch must be >= 1, got {row_length} and "
                     f"{rows_per_batch}.")
  ids = np.asarray(batch.input_ids)
  mask = np.asarray(batch.attention_mask) > 0
  types = np.asarray(batch.token_type_ids)
  lengths = mask.sum(1)
  if not (mask == (np.arange(mask.shape[1])[None, :] < lengths[:, None])).all():
    raise InputError("packing needs right-padded rows (real tokens first, then padding), as "
                     "model.encode makes them.")
  if (lengths == 0).any():
    raise InputError(f"row {int(np.argmin(lengths))} of the batch has no real token; packing "
                     "needs every row to hold an example.")
  rows = plan_rows(lengths, row_length)
  slots = _pow2(max(len(r) for r in rows))
  b = ids.shape[0]
  layout = {k: np.zeros(b, np.int32) for k in ("part", "row", "slot", "offset")}
  batches = []
  for first in range(0, len(rows), rows_per_batch):
    chunk = rows[first:first + rows_per_batch]
    r_count = rows_per_batch if len(chunk) == rows_per_batch else min(rows_per_batch,
                                                                      _pow2(len(chunk)))
    p_ids = np.zeros((r_count, row_length), np.int32)
    p_mask = np.zeros_like(p_ids)
    p_types = np.zeros_like(p_ids)
    p_pos = np.zeros_like(p_ids)
    p_seg = np.zeros_like(p_ids)
    p_starts = np.full((r_count, slots), -1, np.int32)
    part = len(batches)
    for r, members in enumerate(chunk):
      at = 0
      for s, i in enumerate(members):
        n = int(lengths[i])
        p_ids[r, at:at + n] = ids[i, :n]
        p_mask[r, at:at + n] = 1
        p_types[r, at:at + n] = types[i, :n]
        p_pos[r, at:at + n] = np.arange(n)
        p_seg[r, at:at + n] = s + 1
        p_starts[r, s] = at
        for k, v in (("part", part), ("row", r), ("slot", s), ("offset", at)):
          layout[k][i] = v
        at += n
    batches.append(Batch(p_ids, p_mask, p_types,
                         packing=Packing(p_pos, p_seg, p_starts)))
  return batches, PackLayout(**layout, length=lengths.astype(np.int32),
                             shape=(b, ids.shape[1]))


def unpack(scores: Sequence[np.ndarray], layout: PackLayout) -> np.ndarray:
  """Per-token values of the packed batches ``[..., R, row_length]`` back to ``[..., B, T]``.

  Leading axes (e.g. layers) are kept; padding positions are 0.
  """
  scores = [np.asarray(s) for s in scores]
  lead = scores[0].shape[:-2]
  b, t = layout.shape
  out = np.zeros(lead + (b, t), scores[0].dtype)
  for i in range(b):
    o, n = int(layout.offset[i]), int(layout.length[i])
    out[..., i, :n] = scores[layout.part[i]][..., layout.row[i], o:o + n]
  return out


def unpack_slots(values: Sequence[np.ndarray], layout: PackLayout) -> np.ndarray:
  """Per-example values of the packed batches ``[R, S, ...]`` back to ``[B, ...]``."""
  values = [np.asarray(v) for v in values]
  return np.stack([values[p][r, s] for p, r, s in zip(layout.part, layout.row, layout.slot)])
