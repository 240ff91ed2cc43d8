"""Texts -> :class:`Batch` through a Hugging Face fast tokenizer, padded to a few length buckets.

Padding every batch to one of a small set of lengths means jit compiles a handful of shapes for a
whole corpus instead of one per batch. Over-long inputs are truncated with a
:class:`TruncationWarning` (or refused, with ``truncate=False``); bad texts raise
:class:`InputError` naming the offending example.
"""

import os
import sys
import warnings
from collections.abc import Iterable, Mapping
from typing import Any, Sequence

import numpy as np

from jaxplain.contracts import Batch
from jaxplain.errors import InputError, TruncationWarning

BUCKETS: tuple[int, ...] = (16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256,
                            320, 384, 448, 512)
"""Padded lengths. A batch is padded to the smallest bucket that holds its longest input.

Steps of 8 up to 64 tokens, 16 up to 128, 32 up to 256 and 64 up to 512: fine where sentences
are (a Rotten Tomatoes snippet has ~27 word pieces), coarse where programs are expensive to
compile and rare. On 128 Rotten Tomatoes snippets in sorted batches of 32 they cut padding from
37% (the earlier 16, 32, 64, 128, ... powers) to 21% of token slots and IG-50 time by 26%
(``experiments/benchmarks/results/bench_gradients.md``), at the price of more compiled shapes
per corpus (each bucket is compiled once, and cached on disk by the CLI).
"""


FINE_BUCKETS: tuple[int, ...] = (16, 20, 24, 28, 32, 36, 40, 44, 48, 52, 56, 60, 64) + BUCKETS[7:]
"""Steps of 4 up to 64 tokens, then as :data:`BUCKETS`: less padding, more compiled shapes.

For large corpora of short texts on the CPU, where each compiled shape is paid once and the
run is long. On 512 Rotten Tomatoes snippets in sorted batches of 32 (2026-12-07 02:39 UTC,
``bench_gradients.py --methods ig50 --fine-buckets`` with these lengths): padding 16% -> 11% of
token slots, IG-50 4.93 -> 5.42 examples/s (1.10x), but 10 compiled shapes instead of 6
(compile and first run 52 -> 81 s). So IG-50 on that corpus gains end to end from about 1,500
examples; a program cached on disk (the CLI's cache, JAX's persistent compilation cache) is paid
only once.
"""

BUCKET_PRESETS: dict[str, tuple[int, ...]] = {"default": BUCKETS, "fine": FINE_BUCKETS}
"""Named bucket sets for :meth:`jaxplain.Model.with_buckets` and the sweep's ``buckets``."""


def resolve_buckets(buckets: str | Sequence[int]) -> tuple[int, ...]:
  """A preset name (:data:`BUCKET_PRESETS`) or increasing positive lengths, as a tuple.

  Raises:
    InputError: an unknown name, an empty set, or lengths that are not increasing positive
      integers.
  """
  if isinstance(buckets, str):
    if buckets not in BUCKET_PRESETS:
      raise InputError(f"unknown bucket preset {buckets!r}; use one of "
                       f"{', '.join(BUCKET_PRESETS)} or a list of increasing lengths.")
    return BUCKET_PRESETS[buckets]
  try:
    lengths = tuple(buckets)
  except TypeError:
    lengths = None
  if (not lengths or not all(isinstance(b, (int, np.integer)) and not isinstance(b, bool)
                             and b > 0 for b in lengths)
      or any(a >= b for a, b in zip(lengths, lengths[1:]))):
    raise InputError(f"buckets must be a preset name ({', '.join(BUCKET_PRESETS)}) or "
                     f"increasing positive token counts such as (16, 32, 64); got {buckets!r}.")
  return tuple(int(b) for b in lengths)


def bucket_length(longest: int, max_length: int, buckets: Sequence[int] = BUCKETS) -> int:
  """The padded length for a batch whose longest input has ``longest`` tokens."""
  for b in buckets:
    if b >= longest:
      return min(b, max_length)
  return max_length


def check_texts(texts: Any, what: str = "text") -> list[str]:
  """``texts`` (a string, or a list, array or other iterable of them) as a non-empty list of
  non-blank strings, or an :class:`InputError`."""
  if isinstance(texts, str):
    texts = [texts]
  elif hasattr(texts, "columns"):  # iterating a data frame gives its column names
    raise InputError(f"got a data frame; pass its {what} column, e.g. df[\"text\"].")
  elif isinstance(texts, Iterable) and not isinstance(texts, (bytes, dict, Mapping)):
    texts = list(texts)  # a tuple, numpy array, pandas Series...
  else:
    raise InputError(f"expected a {what} string or a list of strings, got "
                     f"{type(texts).__name__}.")
  if not texts:
    raise InputError(f"no {what}s given; pass at least one non-empty string.")
  for i, t in enumerate(texts):
    if not isinstance(t, str):
      raise InputError(f"{what} {i} is a {type(t).__name__}, not a string; pass text.")
    if not t.strip():
      raise InputError(f"{what} {i} is empty or whitespace only; pass some words to explain.")
  return list(texts)


def _caller_level() -> int:
  """The ``stacklevel`` that points a warning at the first frame outside jaxplain."""
  package = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
  frame, level = sys._getframe(1), 1  # pylint: disable=protected-access
  while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
    frame, level = frame.f_back, level + 1
  return level


def encode(tokenizer: Any, texts: str | Sequence[str], text_pairs: str | Sequence[str] | None,
           max_length: int, *, truncate: bool = True,
           buckets: Sequence[int] = BUCKETS) -> Batch:
  """Tokenises ``texts`` (and ``text_pairs``) into a padded :class:`Batch`.

  Args:
    tokenizer: a Hugging Face fast tokenizer.
    texts: one text or a list.
    text_pairs: the second texts of pairs (NLI, QA), or ``None``.
    max_length: longest allowed input, special tokens included.
    truncate: truncate longer inputs with a warning; ``False`` raises instead.
    buckets: padded lengths to choose from.
  Returns:
    A :class:`Batch` with ``word_ids``, ``offsets`` and ``sequence_ids``, padded to a bucket.
  """
  texts = check_texts(texts)
  pairs = None
  if text_pairs is not None:
    pairs = check_texts(text_pairs, "text pair")
    if len(pairs) != len(texts):
      raise InputError(f"{len(texts)} texts but {len(pairs)} text pairs; pass one pair per text.")
  # verbose=False: the tokenizer's own over-length message would repeat the warning below.
  full = tokenizer(texts, pairs, truncation=False, add_special_tokens=True, verbose=False)
  lengths = [len(ids) for ids in full["input_ids"]]
  too_long = [i for i, n in enumerate(lengths) if n > max_length]
  if too_long:
    msg = (f"{len(too_long)} input(s) longer than the {max_length}-token limit "
           f"(example {too_long[0]} has {lengths[too_long[0]]})")
    if not truncate:
      raise InputError(msg + "; shorten them, or allow truncation (drop --no-truncate / "
                       "truncate=False).")
    warnings.warn(msg + f"; truncated to {max_length} tokens.", TruncationWarning,
                  stacklevel=_caller_level())
    enc = tokenizer(texts, pairs, truncation=True, max_length=max_length,
                    add_special_tokens=True, return_offsets_mapping=True)
  else:
    enc = tokenizer(texts, pairs, truncation=False, add_special_tokens=True,
                    return_offsets_mapping=True)
  n = len(texts)
  t = bucket_length(max(len(ids) for ids in enc["input_ids"]), max_length, buckets)
  pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
  input_ids = np.full((n, t), pad, np.int32)
  attention = np.zeros((n, t), np.int32)
  types = np.zeros((n, t), np.int32)
  word_ids = np.full((n, t), -1, np.int32)
  seq_ids = np.full((n, t), -1, np.int32)
  offsets = np.zeros((n, t, 2), np.int32)
  for i in range(n):
    ids = enc["input_ids"][i]
    m = len(ids)
    input_ids[i, :m] = ids
    attention[i, :m] = 1
    if "token_type_ids" in enc:
      types[i, :m] = enc["token_type_ids"][i]
    words = enc.word_ids(i)
    seqs = enc.sequence_ids(i)
    first_words = max((w for w, s in zip(words, seqs) if s == 0 and w is not None), default=-1)
    for j, (w, s) in enumerate(zip(words, seqs)):
      if w is None or s is None:
        continue
      word_ids[i, j] = w + (first_words + 1 if s == 1 else 0)
      seq_ids[i, j] = s
      offsets[i, j] = enc["offset_mapping"][i][j]
  return Batch(input_ids=input_ids, attention_mask=attention, token_type_ids=types,
               word_ids=word_ids, offsets=offsets, sequence_ids=seq_ids)
