"""Visualisations: self-contained HTML heatmaps (and, later, plots and the report page)."""

from jaxplain.viz.html import (attribution_html, css_rgb, diverging_rgb, example_html,
                               legend_html, normalise, score_span)

__all__ = ["attribution_html", "css_rgb", "diverging_rgb", "example_html", "legend_html",
           "normalise", "score_span"]
