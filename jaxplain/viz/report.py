"""The explainer report: one self-contained HTML page from a :class:`ReportData`.

The page has a leaderboard (every method x every metric: mean, 95% bootstrap interval, time per
example; click a header to sort), metric curves, every example's word heatmaps for all methods
side by side (filter by text, page through), DiffMask layer x token maps and head-mask grids.

It needs nothing outside itself: CSS and one small script are inline, figures are matplotlib
SVG embedded as ``data:`` images, and a Content-Security-Policy forbids every network request
and every script but the page's own (allowed by its SHA-256 hash). Everything that came from
the data (texts, words, labels, ids, method and metric names) is escaped with
:func:`html.escape` (``quote=True``); the search index is JSON with ``<``, ``>`` and ``&``
written as ``\\u003c``, ``\\u003e``, ``\\u0026``, so a text containing ``</script>`` cannot end
its ``<script>`` block. Heatmap spans and colours are those of :mod:`jaxplain.viz.html`.
"""

import base64
import hashlib
import json
import math
from typing import Any

import numpy as np

from jaxplain.viz import html as jh
from jaxplain.viz import plots
from jaxplain.viz.report_data import HeadGrid, ReportData, ReportExample

PAGE_SIZE = 20
"""Examples per page of the heatmap section."""
MAX_EXAMPLES = 1000
"""Examples embedded by default (the page stays a few MB); the rest are counted, not shown."""
MAX_FIGURES = 24
"""DiffMask maps embedded at most (one figure each)."""

REPORT_CSS = """
.jx-report { max-width: 1200px; margin: 0 auto; padding: 1em 1.5em; }
.jx-report h2 { font-size: 1.1em; margin: 1.6em 0 .5em; border-bottom: 1px solid #ddd; }
.jx-report [hidden] { display: none !important; }
.jx-report dl.jx-facts { display: grid; grid-template-columns: max-content 1fr; gap: 0 1em;
  font-size: .85em; line-height: 1.5; margin: 0; }
.jx-report dl.jx-facts dt { color: #555; }
.jx-report dl.jx-facts dd { margin: 0; word-break: break-word; }
.jx-report .jx-missing { background: #fff4e0; border: 1px solid #e8b56a; border-radius: 6px;
  padding: .5em .8em; font-size: .9em; line-height: 1.5; }
.jx-report table.jx-board { border-collapse: collapse; font-size: .82em; line-height: 1.35; }
.jx-report table.jx-board th, .jx-report table.jx-board td { border-bottom: 1px solid #e4e4e4;
  padding: .3em .6em; text-align: right; vertical-align: top; white-space: nowrap; }
.jx-report table.jx-board th:first-child, .jx-report table.jx-board td:first-child {
  text-align: left; }
.jx-report table.jx-board th { cursor: pointer; user-select: none; background: #f5f5f5;
  position: sticky; top: 0; }
.jx-report table.jx-board th[aria-sort=ascending]::after { content: " \\25B2"; }
.jx-report table.jx-board th[aria-sort=descending]::after { content: " \\25BC"; }
.jx-report .jx-scroll { overflow-x: auto; }
.jx-report .jx-ci { display: block; color: #777; font-size: .85em; }
.jx-report .jx-best { font-weight: 700; }
.jx-report .jx-figs { display: flex; flex-wrap: wrap; gap: 1em; }
.jx-report figure { margin: 0; }
.jx-report figure img { max-width: 100%; height: auto; }
.jx-report figcaption { font-size: .8em; color: #555; }
.jx-report .jx-controls { display: flex; gap: .6em; align-items: center; margin: .4em 0 .8em;
  font-size: .9em; }
.jx-report .jx-controls input { flex: 0 1 24em; padding: .25em .4em; }
.jx-report .jx-grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(22em, 1fr));
  gap: .4em .9em; }
.jx-report .jx-cell { border-top: 1px dashed #e0e0e0; padding-top: .2em; }
.jx-report .jx-cell .jx-name { font-size: .75em; color: #555; font-family: ui-monospace,
  monospace; }
"""

SCRIPT = """(function () {
  "use strict";
  var each = function (xs, f) { Array.prototype.forEach.call(xs, f); };
  var table = document.getElementById("jx-table");
  if (table) {
    var heads = table.tHead.rows[0].cells;
    var value = function (row, col, text) {
      var raw = row.cells[col].getAttribute("data-value");
      if (raw === null) return null;
      if (text) return raw;
      var v = parseFloat(raw);
      return isNaN(v) ? null : v;
    };
    var sortBy = function (col) {
      var th = heads[col];
      var text = th.getAttribute("data-type") === "text";
      var first = (text || th.getAttribute("data-better") === "low") ? "ascending" : "descending";
      var other = first === "ascending" ? "descending" : "ascending";
      var dir = th.getAttribute("aria-sort") === first ? other : first;
      each(heads, function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", dir);
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var sign = dir === "ascending" ? 1 : -1;
      rows.sort(function (a, b) {
        var x = value(a, col, text), y = value(b, col, text);
        if (x === null || y === null) return (x === null) - (y === null);
        return text ? sign * x.localeCompare(y) : sign * (x - y);
      });
      rows.forEach(function (r) { body.appendChild(r); });
    };
    each(heads, function (th, col) {
      th.addEventListener("click", function () { sortBy(col); });
      th.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortBy(col); }
      });
    });
  }
  var list = document.getElementById("jx-list");
  if (list) {
    var index = JSON.parse(document.getElementById("jx-index").textContent);
    var items = list.children;
    var size = parseInt(list.getAttribute("data-page-size"), 10) || 20;
    var search = document.getElementById("jx-search");
    var info = document.getElementById("jx-page");
    var prev = document.getElementById("jx-prev");
    var next = document.getElementById("jx-next");
    var page = 0, matches = [];
    var show = function () {
      var pages = Math.max(1, Math.ceil(matches.length / size));
      page = Math.min(Math.max(page, 0), pages - 1);
      var shown = {};
      matches.slice(page * size, (page + 1) * size).forEach(function (i) { shown[i] = true; });
      for (var i = 0; i < items.length; i++) items[i].hidden = !shown[i];
      info.textContent = matches.length === 0 ? "no example matches" :
          "page " + (page + 1) + " of " + pages + " \\u00b7 " + matches.length +
          (matches.length === 1 ? " example" : " examples");
      prev.disabled = page === 0;
      next.disabled = page >= pages - 1;
    };
    var filter = function () {
      var q = search.value.trim().toLowerCase();
      matches = [];
      for (var i = 0; i < index.length; i++) if (!q || index[i].indexOf(q) >= 0) matches.push(i);
      page = 0;
      show();
    };
    search.addEventListener("input", filter);
    prev.addEventListener("click", function () { page -= 1; show(); });
    next.addEventListener("click", function () { page += 1; show(); });
    filter();
  }
})();
"""
"""The page's only script: header sorting, search and paging (no data, no network)."""


def script_json(value: Any) -> str:
  """``value`` as JSON that is safe inside ``<script>``: ``<``, ``>``, ``&`` and U+2028/9 escaped.

  ``JSON.parse`` reads it back unchanged; the HTML parser never sees ``</script>`` or ``<!--``.
  """
  text = json.dumps(value, ensure_ascii=False, allow_nan=False)
  for char, code in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                     ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
    text = text.replace(char, code)
  return text


def _csp() -> str:
  digest = base64.b64encode(hashlib.sha256(SCRIPT.encode("utf-8")).digest()).decode("ascii")
  return (f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
          f"script-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'")


def _number(x: float) -> str:
  if x is None or not math.isfinite(float(x)):
    return "&ndash;"
  return f"{float(x):.4g}"


def _svg_img(fig, alt: str) -> str:
  svg = plots.figure_svg(fig)
  data = base64.b64encode(svg.encode("utf-8")).decode("ascii")
  return f'<img alt="{jh.escape(alt)}" src="data:image/svg+xml;base64,{data}">'


def _figure(fig, caption: str) -> str:
  try:
    img = _svg_img(fig, caption)
  finally:
    _release(fig)
  return f'<figure>{img}<figcaption>{jh.escape(caption)}</figcaption></figure>'


def _release(fig) -> None:
  """Frees a figure that pyplot tracks (figures from :mod:`jaxplain.viz.plots` are not)."""
  import sys  # pylint: disable=g-import-not-at-top
  if "matplotlib.pyplot" in sys.modules:
    sys.modules["matplotlib.pyplot"].close(fig)


def _facts(data: ReportData, shown: int) -> str:
  total = data.num_examples if data.num_examples is not None else len(data.examples)
  facts = dict(data.meta)
  facts["methods"] = ", ".join(data.methods) or "none"
  facts["examples"] = (f"{total}" if shown >= total else
                       f"{total} ({shown} shown as heatmaps)")
  rows = "".join(f"<dt>{jh.escape(k)}</dt><dd>{jh.escape(v)}</dd>" for k, v in facts.items())
  return f'<dl class="jx-facts">{rows}</dl>'


def _missing(data: ReportData) -> str:
  if not data.missing:
    return ""
  items = "".join(f"<li>{jh.escape(m)}</li>" for m in data.missing)
  return (f'<div class="jx-missing" role="note"><b>Incomplete input</b>: this report shows '
          f'what is there.<ul>{items}</ul></div>')


def leaderboard_html(data: ReportData, *, resamples: int = 1000, seed: int = 0) -> str:
  """The sortable leaderboard: a row per method, mean and 95% interval per metric, time.

  The best mean of each metric column is bold (by its ``higher_is_better`` direction).
  """
  metrics = data.metric_names()
  table = data.leaderboard(resamples=resamples, seed=seed)
  cells = {(r.method, r.metric): r for r in table.itertuples()}
  best = {}
  for k in metrics:
    hib = data.higher_is_better.get(k, True)
    vals = [(cells[(m, k)].mean, m) for m in data.methods
            if (m, k) in cells and math.isfinite(cells[(m, k)].mean)]
    if vals:
      best[k] = (max if hib else min)(vals)[1]
  head = ['<th data-type="text" tabindex="0" title="click to sort">method</th>']
  for k in metrics:
    hib = data.higher_is_better.get(k, True)
    arrow = "&uarr;" if hib else "&darr;"
    head.append(f'<th data-better="{"high" if hib else "low"}" tabindex="0" '
                f'title="{"higher" if hib else "lower"} is better; click to sort">'
                f'{jh.escape(k)} {arrow}</th>')
  head.append('<th data-better="low" tabindex="0" title="attribution seconds per example; '
              'click to sort">s / example</th>')
  rows = []
  for m in data.methods:
    tds = [f'<td data-value="{jh.escape(m)}">{jh.escape(m)}</td>']
    for k in metrics:
      r = cells.get((m, k))
      if r is None or not math.isfinite(r.mean):
        n = 0 if r is None else r.n
        tds.append(f'<td title="n = {n}">&ndash;</td>')
        continue
      cls = ' class="jx-best"' if best.get(k) == m else ""
      tds.append(f'<td data-value="{float(r.mean)!r}"{cls} title="n = {r.n}">{_number(r.mean)}'
                 f'<span class="jx-ci">[{_number(r.ci_low)}, {_number(r.ci_high)}]</span></td>')
    sec = data.seconds_per_example.get(m, math.nan)
    sec_attr = f' data-value="{float(sec)!r}"' if sec is not None and math.isfinite(sec) else ""
    tds.append(f"<td{sec_attr}>{_number(sec)}</td>")
    rows.append(f'<tr data-method="{jh.escape(m)}">{"".join(tds)}</tr>')
  return ('<div class="jx-scroll"><table class="jx-board" id="jx-table"><thead><tr>'
          + "".join(head) + "</tr></thead><tbody>" + "\n".join(rows) + "</tbody></table></div>"
          '<p class="jx-meta">Means over examples with 95% percentile-bootstrap intervals '
          f'({resamples} resamples, seed {seed}); &uarr; higher is better, &darr; lower is '
          'better; the best mean per column is bold. Click a header to sort.</p>')


def word_gaps(text: str, words: list[str]) -> list[str]:
  """What goes before each word: ``""`` where the text writes it against the previous one.

  Words are found in ``text`` in order (case-insensitively); a word that is not found, and the
  one after it, get a single space. So ``don't`` and ``<b>`` read as written, not as the
  tokenizer's pieces ``don ' t``.
  """
  low, pos, gaps, found = text.lower(), 0, [], True
  for k, w in enumerate(words):
    at = low.find(str(w).lower(), pos) if w else -1
    if k == 0:
      gaps.append("")
    elif at < 0 or not found:
      gaps.append(" ")
    else:
      gaps.append("" if at == pos else " ")
    found = at >= 0
    if found:
      pos = at + len(str(w))
  return gaps


def _example_html(ex: ReportExample, methods: list[str], index: int, hidden: bool) -> str:
  meta = [f"<b>#{jh.escape(ex.id)}</b>"]
  if ex.label is not None:
    meta.append(f"label <b>{jh.escape(ex.label)}</b>")
  if ex.prediction is not None:
    p = "" if ex.probability is None or not math.isfinite(ex.probability) \
        else f" (p = {ex.probability:.3f})"
    meta.append(f"predicted <b>{jh.escape(ex.prediction)}</b>{p}")
  cells = []
  for m in methods:
    if m not in ex.words:
      continue
    words, scores = ex.words[m]
    scores = np.asarray(scores, np.float64)
    norm = jh.normalise(scores)
    spans = "".join(gap + jh.score_span(w, s, v)
                    for gap, w, s, v in zip(word_gaps(ex.text, words), words, scores, norm))
    cells.append(f'<div class="jx-cell" data-method="{jh.escape(m)}">'
                 f'<div class="jx-name">{jh.escape(m)}</div><div class="jx-text">{spans}</div>'
                 "</div>")
  body = (f'<div class="jx-grid">{"".join(cells)}</div>' if cells else
          f'<div class="jx-text">{jh.escape(ex.text)}</div>'
          '<div class="jx-meta">(no word scores for this example)</div>')
  hide = " hidden" if hidden else ""
  return (f'<div class="jx-example jx-row" data-index="{index}"{hide}>'
          f'<div class="jx-meta">{" &middot; ".join(meta)}</div>{body}</div>')


def examples_html(data: ReportData, *, max_examples: int = MAX_EXAMPLES,
                  page_size: int = PAGE_SIZE) -> str:
  """The heatmap section: a search box, pager, and every shown example's heatmaps."""
  shown = data.examples[:max_examples]
  index = [" ".join(str(x) for x in (ex.id, ex.text, ex.label or "", ex.prediction or "")).lower()
           for ex in shown]
  items = "\n".join(_example_html(ex, data.methods, i, i >= page_size)
                    for i, ex in enumerate(shown))
  return ('<div class="jx-controls">'
          '<input id="jx-search" type="search" placeholder="filter examples by text" '
          'aria-label="filter examples by text">'
          '<button id="jx-prev" type="button">&larr; previous</button>'
          '<span id="jx-page" aria-live="polite"></span>'
          '<button id="jx-next" type="button">next &rarr;</button></div>'
          f'{jh.legend_html()}'
          f'<div id="jx-list" data-page-size="{int(page_size)}">{items}</div>'
          f'<script type="application/json" id="jx-index">{script_json(index)}</script>')


def _head_figure(grid: HeadGrid):
  if grid.masks is None:
    return plots.plot_head_grid(grid.values, title=grid.title, label=grid.label)
  from jaxplain.attribution.heads import plot_head_masks  # pylint: disable=g-import-not-at-top
  return plot_head_masks(grid.masks, title=grid.title)


def _section(anchor: str, title: str, body: str) -> str:
  return f'<section id="{anchor}"><h2>{jh.escape(title)}</h2>{body}</section>'


def render_report(data: ReportData, *, max_examples: int = MAX_EXAMPLES,
                  page_size: int = PAGE_SIZE, resamples: int = 1000, seed: int = 0) -> str:
  """The whole report as one self-contained HTML document.

  Args:
    data: what to show (see :func:`jaxplain.viz.report_data.load_sweep`).
    max_examples: examples embedded as heatmaps (the page says how many there were).
    page_size: examples per page.
    resamples, seed: the bootstrap of the leaderboard intervals.
  Returns:
    HTML text: inline CSS, one inline script, SVG figures as ``data:`` images; no network.
  Example:
    >>> html = render_report(load_sweep("runs/sweep"))                   # doctest: +SKIP
  """
  shown = min(len(data.examples), max_examples)
  parts = [f"<h1>{jh.escape(data.title)}</h1>", _facts(data, shown), _missing(data)]
  if data.methods and data.metric_names():
    parts.append(_section("jx-leaderboard", "Leaderboard",
                          leaderboard_html(data, resamples=resamples, seed=seed)))
  else:
    parts.append(_section("jx-leaderboard", "Leaderboard",
                          '<p class="jx-meta">No metric values in this input.</p>'))
  if data.curves:
    figs = "".join(_figure(plots.plot_curves(c, methods=data.methods), c.name)
                   for c in data.curves)
    parts.append(_section("jx-curves", "Metric curves",
                          f'<div class="jx-figs">{figs}</div><p class="jx-meta">Mean over '
                          "examples per removal level.</p>"))
  if data.examples:
    parts.append(_section("jx-examples", "Examples",
                          examples_html(data, max_examples=max_examples, page_size=page_size)))
  if data.diffmask:
    figs = "".join(_figure(plots.plot_layer_tokens(d.keep, d.tokens, title=d.title),
                           d.title or f"example {d.example_id}")
                   for d in data.diffmask[:MAX_FIGURES])
    parts.append(_section("jx-diffmask", "DiffMask: keep probability by layer and token",
                          f'<div class="jx-figs">{figs}</div>'))
  if data.head_grids:
    figs = "".join(_figure(_head_figure(g), g.title) for g in data.head_grids)
    parts.append(_section("jx-heads", "Head masks", f'<div class="jx-figs">{figs}</div>'))
  body = "\n".join(p for p in parts if p)
  return ('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
          f'<meta http-equiv="Content-Security-Policy" content="{_csp()}">\n'
          '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
          f"<title>{jh.escape(data.title)}</title>\n<style>{jh.CSS}{REPORT_CSS}</style>\n"
          f'</head>\n<body>\n<div class="jaxplain jx-report">\n{body}\n</div>\n'
          f"<script>{SCRIPT}</script>\n</body>\n</html>\n")
