"""Self-contained HTML heatmaps of token attributions.

Every example becomes a line of words (or word pieces), each a ``<span>`` whose background comes
from a diverging red/blue scale: red supports the explained target, blue speaks against it, white
is neutral. Scores are normalised per example by their largest magnitude, so colours compare words
within one example, never across examples; the exact score is in each span's ``title`` (hover)
and ``data-score``. The page has inline CSS only: no scripts, no fonts, no network.

Everything that came from outside (texts, tokens, labels, method names, hyperparameters, titles)
is escaped with :func:`html.escape` (``quote=True``), so an input such as
``<script>alert(1)</script>`` shows as text. The colour and span helpers are public so that other
pages (the report) draw the same scale.
"""

import html
import math
from typing import Any, Sequence

import numpy as np

# RdBu (ColorBrewer) end points: the colours of |score| = max on each side.
POSITIVE_RGB: tuple[int, int, int] = (178, 24, 43)
"""Full-strength colour of scores that support the target."""
NEGATIVE_RGB: tuple[int, int, int] = (33, 102, 172)
"""Full-strength colour of scores that speak against the target."""
NEUTRAL_RGB: tuple[int, int, int] = (255, 255, 255)
_DARK_TEXT_ABOVE = 0.55  # |normalised score| above which white text reads better than black

CSS = """
.jaxplain { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; line-height: 1.9;
  color: #1b1b1b; }
.jaxplain h1 { font-size: 1.25em; margin: 0 0 .6em; }
.jaxplain .jx-example { margin: 0 0 1.2em; padding: .5em .75em; border: 1px solid #ddd;
  border-radius: 6px; }
.jaxplain .jx-meta { font-size: .85em; color: #444; margin-bottom: .3em; line-height: 1.5; }
.jaxplain .jx-meta b { color: #111; }
.jaxplain .jx-text { font-size: 1.05em; }
.jaxplain .jx-tok { padding: .1em .2em; border-radius: 3px; white-space: pre-wrap; }
.jaxplain .jx-special { font-family: ui-monospace, monospace; font-size: .85em; opacity: .8; }
.jaxplain .jx-sep { color: #888; padding: 0 .4em; }
.jaxplain .jx-legend { display: flex; align-items: center; gap: .5em; font-size: .8em;
  color: #444; margin: .4em 0 1em; }
.jaxplain .jx-bar { width: 12em; height: .9em; border: 1px solid #ccc; border-radius: 2px; }
"""
"""The stylesheet every jaxplain page shares; selectors are scoped under ``.jaxplain``."""


def escape(value: Any) -> str:
  """``str(value)`` escaped for HTML text and attribute values (quotes included)."""
  return html.escape(str(value), quote=True)


def normalise(scores: Sequence[float] | np.ndarray) -> np.ndarray:
  """Scores divided by their largest magnitude, in ``[-1, 1]``; all zeros stay zeros.

  Non-finite scores count as 0 for the scale and come back as 0.
  """
  x = np.asarray(scores, np.float64)
  x = np.where(np.isfinite(x), x, 0.0)
  scale = np.abs(x).max(initial=0.0)
  return x / scale if scale > 0 else np.zeros_like(x)


def diverging_rgb(value: float) -> tuple[int, int, int]:
  """The colour of a normalised score: ``-1`` blue, ``0`` white, ``+1`` red (linear in RGB)."""
  v = float(value)
  if not math.isfinite(v):
    v = 0.0
  v = max(-1.0, min(1.0, v))
  end = POSITIVE_RGB if v >= 0 else NEGATIVE_RGB
  a = abs(v)
  return tuple(round(n + a * (e - n)) for n, e in zip(NEUTRAL_RGB, end))  # type: ignore


def css_rgb(rgb: Sequence[int]) -> str:
  """``(r, g, b)`` as a CSS colour, ``"rgb(r, g, b)"``."""
  r, g, b = (int(c) for c in rgb)
  return f"rgb({r}, {g}, {b})"


def text_rgb(value: float) -> tuple[int, int, int]:
  """Black or white text, whichever reads on :func:`diverging_rgb` of ``value``."""
  v = float(value) if math.isfinite(float(value)) else 0.0
  return (255, 255, 255) if abs(v) > _DARK_TEXT_ABOVE else (0, 0, 0)


def format_score(score: float) -> str:
  """The shortest decimal that round-trips the float32 ``score`` (exact, not rounded)."""
  s = np.float32(score)
  if not np.isfinite(s):
    return str(float(s))
  return np.format_float_positional(s, unique=True, trim="-")


def score_span(text: str, score: float, normalised: float, *, special: bool = False) -> str:
  """One coloured ``<span>``: background from ``normalised`` in ``[-1, 1]``, exact score on hover.

  Args:
    text: what the span shows (escaped here).
    score: the raw score, shown in ``title`` and ``data-score``.
    normalised: the score on the ``[-1, 1]`` colour scale.
    special: marks a special token (``[CLS]``, ``<s>``), drawn in a monospace font.
  Returns:
    An HTML string.
  """
  exact = format_score(score)
  cls = "jx-tok jx-special" if special else "jx-tok"
  style = (f"background-color: {css_rgb(diverging_rgb(normalised))}; "
           f"color: {css_rgb(text_rgb(normalised))}")
  return (f'<span class="{cls}" style="{style}" title="{escape("score " + exact)}" '
          f'data-score="{escape(exact)}">{escape(text)}</span>')


def legend_html(positive: str = "supports the target", negative: str = "against the target") -> str:
  """A colour bar from blue (``negative``) through white to red (``positive``)."""
  stops = ", ".join(css_rgb(diverging_rgb(v)) for v in (-1.0, -0.5, 0.0, 0.5, 1.0))
  return ('<div class="jx-legend">'
          f'<span>{escape(negative)}</span>'
          f'<span class="jx-bar" style="background: linear-gradient(to right, {stops})"></span>'
          f'<span>{escape(positive)}</span>'
          '<span>(colours normalised per example by its largest |score|; hover for the exact '
          'score)</span></div>')


def page(body: str, title: str) -> str:
  """A complete HTML document around ``body`` (already HTML), with :data:`CSS` inline."""
  return ('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
          '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
          f'<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n'
          f'<body>\n{body}\n</body>\n</html>\n')


def fragment(body: str) -> str:
  """``body`` in a ``<div class="jaxplain">`` with the stylesheet, for notebooks."""
  return f'<div class="jaxplain"><style>{CSS}</style>{body}</div>'


def _label(labels: Sequence[str], index: int) -> str:
  return str(labels[index]) if 0 <= index < len(labels) else f"class {index}"


def _meta_html(attribution: Any, i: int) -> str:
  parts = []
  probs = attribution.probabilities
  if probs is not None:
    pred = int(np.argmax(probs[i]))
    parts.append(f"predicted <b>{escape(_label(attribution.labels, pred))}</b> "
                 f"(p = {float(probs[i, pred]):.3f})")
  if attribution.target is not None:
    t = int(attribution.target[i])
    if probs is None:  # not a classifier (an embedding, a QA or token head): an output index
      target = f"output {t}"
    else:
      target = escape(_label(attribution.labels, t))
      if 0 <= t < probs.shape[1]:
        target += f" (p = {float(probs[i, t]):.3f})"
    parts.append(f"explaining <b>{target}</b>")
  else:
    parts.append("explaining <b>a custom target</b>")
  method = escape(attribution.method)
  if attribution.hyper:
    shown = [f"{k}={v!r}" for k, v in sorted(attribution.hyper.items())
             if not hasattr(v, "shape")]  # arrays (baselines, indexes) are not worth printing
    if shown:
      method += " (" + escape(", ".join(shown)) + ")"
  parts.append(f"method <b>{method}</b>")
  if attribution.deltas is not None:
    parts.append(f"convergence delta {escape(format_score(attribution.deltas[i]))}")
  return '<div class="jx-meta">' + " &middot; ".join(parts) + "</div>"


def _word_gaps(attribution: Any, i: int) -> list[str]:
  """For each word of ``word_scores(i)``: ``""``, ``" "`` or ``"sep"`` (the pair boundary) before it.

  Groups tokens exactly as :meth:`Attribution.word_scores` does (runs of one word id), and reads
  the gap from the character offsets: words written together in the text (``don't``) stay joined.
  """
  n = int(attribution.attention_mask[i].sum())
  wids, seqs, offs = attribution.word_ids[i, :n], attribution.sequence_ids[i, :n], \
      attribution.offsets[i, :n]
  have_offsets = bool(np.any(offs[:, 1] > 0))
  gaps, prev_end, prev_seq = [], None, None
  j = 0
  while j < n:
    if wids[j] < 0:
      j += 1
      continue
    k = j
    while k + 1 < n and wids[k + 1] == wids[j]:
      k += 1
    seq, start = int(seqs[j]), int(offs[j, 0])
    if prev_end is None:
      gaps.append("")
    elif seq != prev_seq:
      gaps.append("sep")
    elif have_offsets and start == prev_end:
      gaps.append("")
    else:
      gaps.append(" ")
    prev_end, prev_seq = int(offs[k, 1]), seq
    j = k + 1
  return gaps


def example_html(attribution: Any, i: int, aggregate: str | None = "sum") -> str:
  """Example ``i`` of an :class:`~jaxplain.Attribution` as a block of coloured spans.

  Args:
    attribution: the result of :func:`jaxplain.attribute`.
    i: the example.
    aggregate: word aggregation (``"sum"``, ``"mean"``, ``"max"``, ``"abs_sum"``), or ``None``
      for one span per token, special tokens included.
  Returns:
    An HTML ``<div>``.
  """
  if aggregate is None:
    units, scores = attribution.token_scores(i)
    n = len(units)
    special = [int(w) < 0 for w in attribution.word_ids[i, :n]]
    gaps = [""] + [" "] * (len(units) - 1)
  else:
    units, scores = attribution.word_scores(i, aggregate)
    special = [False] * len(units)
    gaps = _word_gaps(attribution, i)
    if len(gaps) != len(units):  # no word ids: fall back to single spaces
      gaps = [""] + [" "] * (len(units) - 1)
  norm = normalise(scores)
  spans = []
  for unit, score, v, sp, gap in zip(units, scores, norm, special, gaps):
    if gap == "sep":
      spans.append('<span class="jx-sep">&#8214;</span>')
    elif gap:
      spans.append(gap)
    spans.append(score_span(unit, score, v, special=sp))
  return (f'<div class="jx-example" data-example="{int(i)}">{_meta_html(attribution, i)}'
          f'<div class="jx-text">{"".join(spans)}</div></div>')


def attribution_html(attribution: Any, *, aggregate: str | None = "sum", full_page: bool = True,
                     title: str | None = None) -> str:
  """A self-contained HTML heatmap of every example of an :class:`~jaxplain.Attribution`.

  Each example shows the predicted label with its probability, the explained target, the method,
  and its words (or tokens) coloured red (supports the target) to blue (against it), normalised
  per example by the largest ``|score|``; hovering a word shows its exact score.

  Args:
    attribution: the result of :func:`jaxplain.attribute`.
    aggregate: how word pieces combine into words (``"sum"``, ``"mean"``, ``"max"``,
      ``"abs_sum"``), or ``None`` to show tokens.
    full_page: a complete ``<!DOCTYPE html>`` document (default), or a ``<div>`` fragment with
      its own ``<style>`` (notebooks).
    title: the heading and page title; default names the method.
  Returns:
    HTML as a string, with inline CSS only (no scripts, no network).
  Example:
    >>> a = jaxplain.attribute(model, "an utterly charming film")         # doctest: +SKIP
    >>> open("film.html", "w").write(a.to_html())                         # doctest: +SKIP
  """
  title = f"jaxplain: {attribution.method}" if title is None else str(title)
  examples = "\n".join(example_html(attribution, i, aggregate) for i in range(len(attribution)))
  body = f"<h1>{escape(title)}</h1>\n{legend_html()}\n{examples}"
  if not full_page:
    return fragment(body)
  return page(f'<div class="jaxplain">\n{body}\n</div>', title)
