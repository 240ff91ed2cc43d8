"""DiffMask figures: the token x layer keep-probability map and layers survived per word.

Both take host arrays (one example) and write PNG or SVG (by the file extension) through
matplotlib's Agg backend, so they work without a display.
"""

import os
from typing import Sequence

import numpy as np

from jaxplain.errors import InputError


def _pyplot():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def _save(fig, path: str) -> str:
  ext = os.path.splitext(path)[1].lower()
  if ext not in (".png", ".svg", ".pdf"):
    raise InputError(f"plot path {path} must end in .png, .svg or .pdf.")
  try:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, bbox_inches="tight", dpi=150)
  except OSError as e:
    raise InputError(f"cannot write the plot {path} ({e.strerror or e}).") from None
  finally:
    _pyplot().close(fig)
  return path


def layer_labels(num_states: int) -> list[str]:
  """Column labels: ``E`` for the word embeddings, then ``1..L+1`` (authors' ``E, 3, 6...``)."""
  return ["E"] + [str(k) for k in range(1, num_states)]


def plot_heatmap(keep: np.ndarray, tokens: Sequence[str], path: str, *, title: str = "",
                 normalise: bool = True) -> str:
  """Tokens x layers heat-map of keep probabilities for one example.

  Args:
    keep: ``[T, L+2]`` keep probabilities (real tokens only, or padded; extra rows are cut).
    tokens: the ``T'`` token strings to show (``T' <= T``).
    path: output ``.png`` / ``.svg`` / ``.pdf``.
    title: figure title.
    normalise: divide each layer's column by its max (the authors' ``plot_sst_attributions``).
  Returns:
    ``path``.
  """
  keep = np.asarray(keep, np.float32)[:len(tokens)]
  if keep.ndim != 2 or keep.shape[0] != len(tokens):
    raise InputError(f"keep must be [T, L+2] with a row per token; got {keep.shape} for "
                     f"{len(tokens)} tokens.")
  shown = keep / np.maximum(np.abs(keep).max(0, keepdims=True), 1e-12) if normalise else keep
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(0.45 * keep.shape[1] + 2.0, 0.28 * len(tokens) + 1.2))
  im = ax.imshow(shown, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
  ax.set_yticks(range(len(tokens)), list(tokens), fontsize=8)
  ax.set_xticks(range(keep.shape[1]), layer_labels(keep.shape[1]), fontsize=8)
  ax.set_xlabel("hidden-state index (E = word embeddings)")
  fig.colorbar(im, ax=ax, label="keep probability" + (" / column max" if normalise else ""))
  if title:
    ax.set_title(title, fontsize=9)
  return _save(fig, path)


def words_survival(keep: np.ndarray, word_ids: np.ndarray, tokens: Sequence[str]
                   ) -> tuple[list[str], np.ndarray]:
  """Expected number of layers each word survives (mean over its word pieces).

  Args:
    keep: ``[T, L+2]`` keep probabilities of one example.
    word_ids: ``[T]`` word index per token, ``-1`` on special tokens and padding.
    tokens: ``[T]`` token strings (word pieces joined, ``##`` stripped).
  Returns:
    ``(words, survived [W])``.
  """
  keep, word_ids = np.asarray(keep), np.asarray(word_ids)
  words, values = [], []
  for w in sorted(set(int(i) for i in word_ids[:len(tokens)] if i >= 0)):
    idx = np.flatnonzero(word_ids[:len(tokens)] == w)
    words.append("".join(tokens[i].removeprefix("##") for i in idx))
    values.append(float(keep[idx].sum(-1).mean()))
  return words, np.asarray(values, np.float32)


def plot_survival(words: Sequence[str], survived: np.ndarray, path: str, *, num_states: int,
                  title: str = "") -> str:
  """Bar chart: expected number of hidden-state indices (of ``L+2``) each word survives."""
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * len(words) + 1.5), 3.0))
  ax.bar(range(len(words)), survived, color="tab:blue")
  ax.set_xticks(range(len(words)), list(words), rotation=60, ha="right", fontsize=8)
  ax.set_ylim(0, num_states)
  ax.set_ylabel(f"expected layers survived (of {num_states})")
  if title:
    ax.set_title(title, fontsize=9)
  return _save(fig, path)
