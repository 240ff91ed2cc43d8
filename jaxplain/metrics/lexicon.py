"""A sentiment-lexicon pseudo-rationale: a stand-in where no human rationales exist.

Words whose VADER mean valence is at least ``threshold`` in magnitude are marked. This is a
**lexicon proxy**, not a human rationale: the result carries ``lexicon_proxy = True`` and a
label saying so, and reports built from it must keep that label.
"""

import dataclasses
import os
from typing import Sequence

import numpy as np

from jaxplain.contracts import Batch
from jaxplain.errors import InputError

LEXICON_PROXY_LABEL = "lexicon proxy (VADER |mean valence| >= {t}); not human rationales"


@dataclasses.dataclass(frozen=True)
class LexiconRationale:
  """A token mask from a lexicon, labelled as a proxy.

  Attributes:
    mask: ``bool [B, T]``, True on tokens of lexicon words.
    words: per example, the words that matched.
    threshold: the valence magnitude used.
    lexicon_proxy: always True: this is not a human rationale.
    label: the text to print next to any number computed against it.
  """

  mask: np.ndarray
  words: list[list[str]]
  threshold: float
  lexicon_proxy: bool = True

  @property
  def label(self) -> str:
    return LEXICON_PROXY_LABEL.format(t=self.threshold)


def read_vader_lexicon(path: str | os.PathLike) -> dict[str, float]:
  """Reads a VADER lexicon file (``word<TAB>mean<TAB>std<TAB>[ten ratings]``) into word -> mean.

  Raises:
    InputError: the file is missing or a line is not in that format.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise InputError(f"no lexicon file at {path}; pass the path of vader_lexicon.txt "
                     "(from the vaderSentiment package or its repository).")
  out = {}
  with open(path, encoding="utf-8") as f:
    for n, line in enumerate(f, 1):
      if not line.strip():
        continue
      parts = line.rstrip("\n").split("\t")
      try:
        out[parts[0].lower()] = float(parts[1])
      except (IndexError, ValueError):
        raise InputError(f"{path}:{n} is not 'word<TAB>mean<TAB>std<TAB>[ratings]'; is this a "
                         "VADER lexicon file?") from None
  if not out:
    raise InputError(f"{path} holds no lexicon entries.")
  return out


def lexicon_rationale(texts: Sequence[str], batch: Batch, lexicon: dict[str, float], *,
                      threshold: float = 1.5) -> LexiconRationale:
  """Marks the tokens of words whose ``|mean valence| >= threshold`` (a lexicon proxy).

  Args:
    texts: the (first) texts the batch was encoded from.
    batch: from ``model.encode(texts)`` (needs ``word_ids`` and ``offsets``).
    lexicon: from :func:`read_vader_lexicon`.
    threshold: valence magnitude (VADER means lie in [-4, 4]; 1.5 keeps "good" 1.9 and "dull"
      -1.7, drops "okay" 0.9).
  Returns:
    A :class:`LexiconRationale` (``lexicon_proxy=True``).
  """
  if batch.word_ids is None or batch.offsets is None:
    raise InputError("lexicon rationales need batch.word_ids and offsets; use model.encode.")
  wid, off = np.asarray(batch.word_ids), np.asarray(batch.offsets)
  seq = None if batch.sequence_ids is None else np.asarray(batch.sequence_ids)
  if len(texts) != wid.shape[0]:
    raise InputError(f"{len(texts)} texts for a batch of {wid.shape[0]}.")
  mask = np.zeros(wid.shape, bool)
  matched = []
  for i, text in enumerate(texts):
    hits = []
    for w in np.unique(wid[i][wid[i] >= 0]):
      pos = np.flatnonzero((wid[i] == w) & (seq[i] == 0 if seq is not None else True))
      if pos.size == 0:
        continue
      word = text[off[i, pos[0], 0]:off[i, pos[-1], 1]].lower()
      if abs(lexicon.get(word, 0.0)) >= threshold:
        mask[i, pos] = True
        hits.append(word)
    matched.append(hits)
  return LexiconRationale(mask=mask, words=matched, threshold=float(threshold))
