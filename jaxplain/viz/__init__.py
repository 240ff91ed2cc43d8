"""Visualisations: HTML heatmaps, matplotlib figures, and the explainer report page.

HTML (no matplotlib needed): :func:`attribution_html` (what ``Attribution.to_html`` and
``Attribution._repr_html_`` render), and the report, :func:`render_report` of
:func:`load_sweep` (``jaxplain report``).

Matplotlib figures of the same pictures (each returns a :class:`matplotlib.figure.Figure` made
without pyplot; matplotlib is imported only when one is drawn): :func:`plot_heatmap` (an
:class:`~jaxplain.Attribution`), :func:`word_heatmap`, :func:`plot_curves` (deletion /
insertion curves), :func:`plot_leaderboard`, :func:`plot_layer_tokens` (DiffMask),
:func:`plot_head_grid`, and :func:`plot_report`, every figure of a report's data at once.

Example::

    from jaxplain import viz
    data = viz.load_sweep("runs/sweep")
    viz.plot_leaderboard(data.leaderboard()).savefig("leaderboard.svg")
    open("report.html", "w").write(viz.render_report(data))
"""

from jaxplain.viz.html import (attribution_html, css_rgb, diverging_rgb, example_html,
                               legend_html, normalise, score_span)
from jaxplain.viz.plots import (figure_png, figure_svg, plot_curves, plot_head_grid,
                                plot_heatmap, plot_layer_tokens, plot_leaderboard, plot_report,
                                word_heatmap)
from jaxplain.viz.report import render_report
from jaxplain.viz.report_data import (Curve, HeadGrid, LayerTokenMap, ReportData, ReportExample,
                                      diffmask_maps, load_sweep)

__all__ = ["Curve", "HeadGrid", "LayerTokenMap", "ReportData", "ReportExample",
           "attribution_html", "css_rgb", "diffmask_maps", "diverging_rgb", "example_html",
           "figure_png", "figure_svg", "legend_html", "load_sweep", "normalise", "plot_curves",
           "plot_head_grid", "plot_heatmap", "plot_layer_tokens", "plot_leaderboard",
           "plot_report", "render_report", "score_span", "word_heatmap"]
