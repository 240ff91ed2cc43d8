"""Readers for the sentiment data sets jaxplain is trained and evaluated on (host-side pandas).

Three files, all read from a path the caller gives (the library never assumes where they live):

- the Rotten Tomatoes corpus (``rotten_tomatoes_corpus_full.csv.bz2``: columns ``category``
  fresh/rotten/plot, ``text``, ``movie_name``): the critics' snippets Pang & Lee's sentence
  polarity data and SST were built from;
- Pang & Lee's sentence polarity data (``pang_lee_polarity_sentences.csv.bz2``: ``label``
  1/-1, ``text``; no header row);
- Pang & Lee's review polarity data (``pang_lee_polarity_reviews.csv.bz2``: ``label`` 1/-1,
  ``text``, one sentence per line; no header row): the full reviews ERASER's movie rationales
  were drawn from.

Every reader returns a DataFrame with an int ``label`` column in the default model's logit order
(0 = negative, 1 = positive) and a ``text`` column. :func:`split_by_movie` makes train /
validation / test splits in which no movie appears in two splits, so a model cannot score by
recognising a film's title or cast.
"""

import os
from typing import Sequence

import numpy as np
import pandas as pd

from jaxplain.errors import InputError

LABELS: tuple[str, str] = ("negative", "positive")
"""Class names in label order: ``label == 0`` is negative, ``label == 1`` is positive."""

_RT_CATEGORIES = {"rotten": 0, "fresh": 1}


def read_rotten_tomatoes(path: str | os.PathLike) -> pd.DataFrame:
  """The labelled critics' snippets of the Rotten Tomatoes corpus, one row per unique text.

  ``plot`` rows (film synopses, no sentiment) are dropped, and so are blank texts and repeated
  texts (the first occurrence is kept; no text in the corpus carries both labels).

  Args:
    path: ``rotten_tomatoes_corpus_full.csv`` (optionally ``.bz2``/``.gz`` compressed) with
      columns ``category`` (fresh/rotten/plot), ``text`` and ``movie_name``.
  Returns:
    A DataFrame with columns ``text`` (str), ``label`` (int: 0 rotten/negative, 1
    fresh/positive), ``movie_name`` (str) and ``category`` (str), index reset.
  Raises:
    InputError: the file is missing, unreadable, or lacks these columns.
  Example:
    >>> df = read_rotten_tomatoes("data/rotten_tomatoes_corpus_full.csv.bz2")  # doctest: +SKIP
    >>> df.label.mean()                                                       # doctest: +SKIP
    0.58
  """
  df = _read_csv(path, "the Rotten Tomatoes corpus (rotten_tomatoes_corpus_full.csv.bz2)")
  missing = [c for c in ("category", "text", "movie_name") if c not in df.columns]
  if missing:
    raise InputError(f"{path} lacks the column(s) {', '.join(missing)}; expected the Rotten "
                     "Tomatoes corpus with columns category (fresh/rotten/plot), text and "
                     f"movie_name, found {', '.join(map(str, df.columns))}.")
  df = df[df["category"].isin(_RT_CATEGORIES)].copy()
  df = df[df["text"].notna() & df["movie_name"].notna()]
  df["text"] = df["text"].astype(str).str.strip()
  df = df[df["text"] != ""].drop_duplicates("text", keep="first")
  if df.empty:
    raise InputError(f"{path} has no fresh or rotten rows; is it the Rotten Tomatoes corpus?")
  df["label"] = df["category"].map(_RT_CATEGORIES).astype(np.int64)
  df["movie_name"] = df["movie_name"].astype(str)
  return df[["text", "label", "movie_name", "category"]].reset_index(drop=True)


def split_by_movie(df: pd.DataFrame, seed: int,
                   fractions: Sequence[float] = (0.8, 0.1, 0.1)) -> tuple[pd.DataFrame, ...]:
  """Splits rows into parts by ``movie_name``, so that no movie is in two parts.

  The movies are shuffled with ``numpy.random.default_rng(seed)`` and dealt out in that order:
  each movie goes to the first part whose share of rows is not yet full, so the parts' row counts
  (not their movie counts) approach ``fractions``, within about one movie's rows, and every part
  gets at least one movie.

  Args:
    df: a DataFrame with a ``movie_name`` column (e.g. from :func:`read_rotten_tomatoes`).
    seed: the shuffling seed; the same seed and data give the same split on every machine.
    fractions: the parts' shares of rows, positive and summing to 1 (train, validation, test).
  Returns:
    One DataFrame per fraction, each with its index reset, in the order of ``fractions``.
  Raises:
    InputError: bad fractions, no ``movie_name`` column, or fewer movies than parts.
  Example:
    >>> train, val, test = split_by_movie(df, seed=0)          # doctest: +SKIP
  """
  fractions = [float(f) for f in fractions]
  if not fractions or min(fractions) <= 0 or abs(sum(fractions) - 1.0) > 1e-6:
    raise InputError(f"fractions {fractions} must be positive and sum to 1, e.g. (0.8, 0.1, 0.1).")
  if "movie_name" not in df.columns:
    raise InputError("split_by_movie needs a movie_name column; read the data with "
                     "read_rotten_tomatoes().")
  counts = df.groupby("movie_name", sort=True).size()
  if len(counts) < len(fractions):
    raise InputError(f"{len(counts)} movie(s) cannot be split into {len(fractions)} parts.")
  order = np.random.default_rng(seed).permutation(len(counts))
  last = len(fractions) - 1
  bounds = np.cumsum(fractions) * len(df)
  part_of, filled, part, in_part = {}, 0, 0, 0
  for k, i in enumerate(order):
    # Move on once this part holds its share of rows, or when the movies left are just enough
    # to give every later part one; no part is ever skipped or left empty.
    while part < last and in_part and (filled >= bounds[part] - 1e-9
                                       or len(order) - k <= last - part):
      part, in_part = part + 1, 0
    part_of[counts.index[i]] = part
    filled += int(counts.iloc[i])
    in_part += 1
  parts = df["movie_name"].map(part_of).to_numpy()
  return tuple(df[parts == p].reset_index(drop=True) for p in range(len(fractions)))


def read_pang_lee_reviews(path: str | os.PathLike) -> pd.DataFrame:
  """Pang & Lee's full movie reviews (the 2004 review polarity data, 1,500 here).

  Args:
    path: ``pang_lee_polarity_reviews.csv`` (optionally compressed): two columns, the label
      (1 positive, -1 negative) and the review, one sentence per line; no header row.
  Returns:
    A DataFrame with ``text`` (the review, lines kept), ``label`` (0 negative, 1 positive) and
    ``polarity`` (the original 1/-1).
  Raises:
    InputError: the file is missing, unreadable, or not two columns of label and text.
  """
  return _read_pang_lee(path, "Pang & Lee's review polarity data "
                        "(pang_lee_polarity_reviews.csv.bz2)")


def read_pang_lee_sentences(path: str | os.PathLike) -> pd.DataFrame:
  """Pang & Lee's sentence polarity data (rotten tomatoes snippets, 1/-1 labels).

  About 98% of these sentences are also snippets of the Rotten Tomatoes corpus (lower-cased and
  tokenised), so they are not held-out data for a model trained on that corpus.

  Args:
    path: ``pang_lee_polarity_sentences.csv`` (optionally compressed): the label (1/-1) and the
      sentence; no header row.
  Returns:
    A DataFrame with ``text``, ``label`` (0 negative, 1 positive) and ``polarity`` (1/-1).
  Raises:
    InputError: the file is missing, unreadable, or not two columns of label and text.
  """
  return _read_pang_lee(path, "Pang & Lee's sentence polarity data "
                        "(pang_lee_polarity_sentences.csv.bz2)")


def _read_pang_lee(path: str | os.PathLike, what: str) -> pd.DataFrame:
  df = _read_csv(path, what, header=None)
  if df.shape[1] != 2:
    raise InputError(f"{path} has {df.shape[1]} columns; {what} has two: the label (1/-1) and "
                     "the text, without a header row.")
  df.columns = ["polarity", "text"]
  if not _is_int(df["polarity"].iloc[0]):  # tolerate a header row
    df = df.iloc[1:]
  polarity = pd.to_numeric(df["polarity"], errors="coerce")
  bad = ~polarity.isin([1, -1])
  if bad.any():
    row = int(np.flatnonzero(bad.to_numpy())[0])
    raise InputError(f"{path}: row {row} has the label {df['polarity'].iloc[row]!r}, not 1 or "
                     f"-1; is it {what}?")
  out = pd.DataFrame({"text": df["text"].fillna("").astype(str).str.strip(),
                      "label": (polarity.to_numpy() > 0).astype(np.int64),
                      "polarity": polarity.to_numpy().astype(np.int64)})
  return out[out["text"] != ""].reset_index(drop=True)


def _read_csv(path: str | os.PathLike, what: str, **kwargs) -> pd.DataFrame:
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise InputError(f"no file at {path}; pass the path to {what}.")
  try:
    return pd.read_csv(path, **kwargs)
  except Exception as e:  # bad compression, encoding or CSV raise many types
    raise InputError(f"{path} could not be read as CSV ({type(e).__name__}: {e}); pass the path "
                     f"to {what}.") from None


def _is_int(value) -> bool:
  try:
    int(value)
    return True
  except (TypeError, ValueError):
    return False
