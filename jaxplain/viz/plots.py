"""Matplotlib figures of attributions and their evaluation: heatmaps, curves, leaderboards.

Every function returns a :class:`matplotlib.figure.Figure` made without pyplot's global state
(``Figure()`` + the Agg canvas), so they work headless, in threads and in notebooks alike; save
one with ``fig.savefig("x.svg")``. The colours are those of the HTML heatmaps
(:func:`jaxplain.viz.html.diverging_rgb`): red supports the target, blue speaks against it.
:func:`figure_svg` turns a figure into the SVG text the HTML report embeds.
"""

import io
import math
from typing import Any, Mapping, Sequence

import numpy as np

from jaxplain.errors import InputError
from jaxplain.viz.html import diverging_rgb, normalise, text_rgb

_WORDS_PER_INCH = 1.6   # heatmap layout: average word box width, for wrapping
_LINE_HEIGHT = 0.34     # inches per heatmap line


def _figure(width: float, height: float):
  from matplotlib.backends.backend_agg import FigureCanvasAgg  # pylint: disable=g-import-not-at-top
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  fig = Figure(figsize=(width, height))
  FigureCanvasAgg(fig)
  return fig


def _unit(rgb: Sequence[int]) -> tuple[float, float, float]:
  return tuple(c / 255.0 for c in rgb)  # type: ignore


def figure_svg(fig) -> str:
  """``fig`` as a standalone SVG document (text drawn as paths: no fonts needed to view it)."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  buf = io.StringIO()
  with matplotlib.rc_context({"svg.fonttype": "path", "svg.hashsalt": "jaxplain"}):
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
  return buf.getvalue()


def figure_png(fig, dpi: int = 110) -> bytes:
  """``fig`` as PNG bytes."""
  buf = io.BytesIO()
  fig.savefig(buf, format="png", bbox_inches="tight", dpi=dpi)
  return buf.getvalue()


def word_heatmap(words: Sequence[str], scores: Sequence[float] | np.ndarray, *,
                 title: str = "", width: float = 8.0):
  """Words in reading order on boxes coloured by their score (normalised by the largest ``|score|``).

  Args:
    words: the words (or tokens).
    scores: ``[W]`` their scores.
    title: a caption above the words.
    width: figure width in inches; lines wrap to it.
  Returns:
    A :class:`~matplotlib.figure.Figure`.
  """
  scores = np.asarray(scores, np.float64)
  if len(words) != scores.shape[0]:
    raise InputError(f"{len(words)} words but {scores.shape[0]} scores; pass one score per word.")
  norm = normalise(scores)
  per_line = max(1, int(width * _WORDS_PER_INCH))
  lines = max(1, math.ceil(len(words) / per_line))
  fig = _figure(width, _LINE_HEIGHT * lines + (0.45 if title else 0.15))
  ax = fig.add_axes((0, 0, 1, 1))
  ax.set_axis_off()
  ax.set_xlim(0, width)
  ax.set_ylim(-lines * _LINE_HEIGHT - 0.05, 0.4 if title else 0.05)
  if title:
    ax.text(0.05, 0.2, title, fontsize=9, va="center", ha="left", weight="bold")
  renderer = fig.canvas.get_renderer()
  x, y = 0.05, -_LINE_HEIGHT / 2
  inch = fig.dpi
  for word, v in zip(words, norm):
    t = ax.text(x, y, str(word), fontsize=9, va="center", ha="left", color=_unit(text_rgb(v)),
                bbox={"boxstyle": "round,pad=0.2", "facecolor": _unit(diverging_rgb(v)),
                      "edgecolor": "none"})
    w = t.get_window_extent(renderer).width / inch + 0.12
    if x + w > width and x > 0.05:  # wrap: move this word to the next line
      x, y = 0.05, y - _LINE_HEIGHT
      t.set_position((x, y))
    x += w
  return fig


def plot_heatmap(attribution: Any, i: int = 0, *, aggregate: str | None = "sum",
                 width: float = 8.0):
  """Example ``i`` of an :class:`~jaxplain.Attribution` as a word heatmap figure.

  Args:
    attribution: the result of :func:`jaxplain.attribute`.
    i: the example.
    aggregate: word aggregation (``"sum"``, ``"mean"``, ``"max"``, ``"abs_sum"``), or ``None``
      for tokens.
    width: figure width in inches.
  Returns:
    A :class:`~matplotlib.figure.Figure`.
  Example:
    >>> fig = plot_heatmap(jaxplain.attribute(model, "a charming film"), 0)   # doctest: +SKIP
    >>> fig.savefig("film.svg")                                               # doctest: +SKIP
  """
  if not 0 <= i < len(attribution):
    raise InputError(f"example {i} is out of range; the attribution has {len(attribution)}.")
  if aggregate is None:
    units, scores = attribution.token_scores(i)
  else:
    units, scores = attribution.word_scores(i, aggregate)
  return word_heatmap(units, scores, title=str(attribution.method), width=width)


def plot_curves(curve: Any, *, methods: Sequence[str] | None = None, title: str | None = None):
  """One line per method: the mean over examples of a metric curve by removal level.

  Args:
    curve: a :class:`~jaxplain.viz.report_data.Curve`.
    methods: the methods to draw (default: all of the curve's).
    title: the figure title (default: the curve's name).
  Returns:
    A :class:`~matplotlib.figure.Figure`.
  """
  names = list(curve.values) if methods is None else [m for m in methods if m in curve.values]
  x = np.asarray(curve.x, np.float64)
  fig = _figure(5.6, 3.4)
  ax = fig.add_subplot(1, 1, 1)
  cmap = _method_colours(names)
  for m in names:
    y = curve.mean(m)
    if y.shape[0] != x.shape[0]:
      raise InputError(f"curve {curve.name!r} of method {m!r} has {y.shape[0]} levels but x has "
                       f"{x.shape[0]}.")
    ax.plot(x, y, marker="o", markersize=2.5, linewidth=1.3, label=m, color=cmap[m])
  ax.set_xlabel(curve.xlabel)
  ax.set_ylabel(curve.ylabel)
  ax.set_title(curve.name if title is None else title, fontsize=10)
  ax.grid(alpha=0.3)
  if names:
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
  return fig


def _method_colours(names: Sequence[str]) -> dict[str, Any]:
  from matplotlib import colormaps  # pylint: disable=g-import-not-at-top
  cmap = colormaps["tab20" if len(names) > 10 else "tab10"]
  return {m: cmap(k % cmap.N) for k, m in enumerate(names)}


def plot_leaderboard(table: Any, metrics: Sequence[str] | None = None, *, columns: int = 3):
  """Mean and 95% interval of each method, one panel per metric, best method on top.

  Args:
    table: a DataFrame with columns ``method, metric, mean, ci_low, ci_high`` and optionally
      ``higher_is_better`` (:attr:`jaxplain.metrics.Evaluation.table`, or
      :meth:`ReportData.leaderboard <jaxplain.viz.report_data.ReportData.leaderboard>`).
    metrics: the metrics to draw (default: all in the table).
    columns: panels per row.
  Returns:
    A :class:`~matplotlib.figure.Figure`.
  """
  missing = [c for c in ("method", "metric", "mean", "ci_low", "ci_high") if c not in table]
  if missing:
    raise InputError(f"the leaderboard table lacks the column(s) {', '.join(missing)}; pass "
                     "Evaluation.table or ReportData.leaderboard().")
  names = list(dict.fromkeys(table["metric"])) if metrics is None else list(metrics)
  if not names:
    raise InputError("the leaderboard table has no metrics to plot.")
  cols = max(1, min(columns, len(names)))
  rows = math.ceil(len(names) / cols)
  n_methods = table["method"].nunique()
  fig = _figure(4.2 * cols, rows * (0.28 * n_methods + 1.0))
  for k, metric in enumerate(names):
    ax = fig.add_subplot(rows, cols, k + 1)
    sub = table[table["metric"] == metric]
    if sub.empty:
      raise InputError(f"metric {metric!r} is not in the leaderboard table.")
    better_high = bool(sub["higher_is_better"].iloc[0]) if "higher_is_better" in sub else True
    sub = sub.sort_values("mean", ascending=better_high, na_position="first")
    y = np.arange(len(sub))
    mean = sub["mean"].to_numpy(np.float64)
    err = np.stack([mean - sub["ci_low"].to_numpy(np.float64),
                    sub["ci_high"].to_numpy(np.float64) - mean])
    ax.barh(y, mean, xerr=np.nan_to_num(err), color="#8fb3d9", ecolor="#333", capsize=2)
    ax.set_yticks(y, [str(m) for m in sub["method"]], fontsize=7)
    ax.set_title(f"{metric} ({'higher' if better_high else 'lower'} is better)", fontsize=9)
    ax.tick_params(axis="x", labelsize=7)
    ax.grid(axis="x", alpha=0.3)
  fig.tight_layout()
  return fig


def plot_layer_tokens(keep: np.ndarray, tokens: Sequence[str], *, title: str = "",
                      normalise_columns: bool = True):
  """DiffMask's tokens x hidden-state-index map of keep probabilities for one example.

  The same picture as :func:`jaxplain.attribution.diffmask.plots.plot_heatmap` (which writes a
  file), returned as a figure.

  Args:
    keep: ``[T, L+2]`` keep probabilities (rows beyond ``len(tokens)`` are cut).
    tokens: the token strings.
    title: figure title.
    normalise_columns: divide each column by its max (the DiffMask authors' plots).
  Returns:
    A :class:`~matplotlib.figure.Figure`.
  """
  from jaxplain.attribution.diffmask.plots import layer_labels  # pylint: disable=g-import-not-at-top
  keep = np.asarray(keep, np.float32)[:len(tokens)]
  if keep.ndim != 2 or keep.shape[0] != len(tokens):
    raise InputError(f"keep must be [T, L+2] with a row per token; got {keep.shape} for "
                     f"{len(tokens)} tokens.")
  shown = keep / np.maximum(np.abs(keep).max(0, keepdims=True), 1e-12) if normalise_columns \
      else keep
  fig = _figure(0.45 * keep.shape[1] + 2.2, 0.26 * len(tokens) + 1.2)
  ax = fig.add_subplot(1, 1, 1)
  im = ax.imshow(shown, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
  ax.set_yticks(range(len(tokens)), [str(t) for t in tokens], fontsize=7)
  ax.set_xticks(range(keep.shape[1]), layer_labels(keep.shape[1]), fontsize=7)
  ax.set_xlabel("hidden-state index (E = word embeddings)", fontsize=8)
  fig.colorbar(im, ax=ax, label="keep probability" + (" / column max" if normalise_columns
                                                      else ""))
  if title:
    ax.set_title(title, fontsize=9)
  return fig


def plot_head_grid(values: np.ndarray, *, title: str = "", label: str = "head mask"):
  """A layers x heads grid (head masks or head importances) as an image with a colour bar.

  Args:
    values: ``[L, N]``.
    title: figure title.
    label: colour bar label.
  Returns:
    A :class:`~matplotlib.figure.Figure`.
  """
  v = np.asarray(values, np.float32)
  if v.ndim != 2:
    raise InputError(f"a head grid is [layers, heads]; got shape {v.shape}.")
  fig = _figure(0.35 * v.shape[1] + 2.2, 0.35 * v.shape[0] + 1.2)
  ax = fig.add_subplot(1, 1, 1)
  im = ax.imshow(v, cmap="viridis", aspect="auto")
  ax.set_xticks(range(v.shape[1]), [str(k) for k in range(v.shape[1])], fontsize=7)
  ax.set_yticks(range(v.shape[0]), [str(k) for k in range(v.shape[0])], fontsize=7)
  ax.set_xlabel("head", fontsize=8)
  ax.set_ylabel("layer", fontsize=8)
  fig.colorbar(im, ax=ax, label=label)
  if title:
    ax.set_title(title, fontsize=9)
  return fig



def plot_report(data: Any, *, examples: int = 3, width: float = 8.0) -> dict[str, Any]:
  """Every figure of a report's data as matplotlib figures: the report page without the page.

  Args:
    data: a :class:`~jaxplain.viz.report_data.ReportData` (e.g. from
      :func:`~jaxplain.viz.report_data.load_sweep`).
    examples: word heatmaps of this many examples (one figure per example and method).
    width: heatmap width in inches.
  Returns:
    ``{name: Figure}`` in page order: ``"leaderboard"`` (when there are metrics), each curve by
    its name, ``"heatmap/<example id>/<method>"``, ``"diffmask/<example id>"``,
    ``"heads/<k>"``.
  Example:
    >>> for name, fig in plot_report(load_sweep("runs/sweep")).items():    # doctest: +SKIP
    ...   fig.savefig(name.replace("/", "_") + ".svg")
  """
  figs: dict[str, Any] = {}
  if data.methods and data.metric_names():
    figs["leaderboard"] = plot_leaderboard(data.leaderboard())
  for curve in data.curves:
    figs[curve.name] = plot_curves(curve, methods=data.methods)
  for ex in data.examples[:max(0, examples)]:
    for m in data.methods:
      if m in ex.words:
        words, scores = ex.words[m]
        figs[f"heatmap/{ex.id}/{m}"] = word_heatmap(words, scores, title=m, width=width)
  for d in data.diffmask:
    figs[f"diffmask/{d.example_id}"] = plot_layer_tokens(d.keep, d.tokens, title=d.title)
  for k, g in enumerate(data.head_grids):
    figs[f"heads/{k}"] = plot_head_grid(g.values, title=g.title, label=g.label)
  return figs
