"""``jaxplain report``: one self-contained HTML page from a sweep's output directory.

    jaxplain report runs/sweep -o report.html
    jaxplain report runs/sweep --heads heads/head_masks.json --max-examples 200
    jaxplain diffmask explain - --gates runs/dm --json < texts.txt > runs/sweep/diffmask.json

The page has the explainer leaderboard (every method x every metric, mean and 95% bootstrap
interval, time per example; sortable), metric curves, per-example word heatmaps of all methods
side by side (search and paging), and DiffMask / head-mask figures when the sweep has them. It
needs no network: open it from disk or mail it. A partial sweep gives a report of what is there
and a warning naming what is missing; a missing directory or an unknown schema is one error line.
"""

import os
from typing import Annotated, Optional

import typer

from jaxplain.cli import _common
from jaxplain.cli._app import app, warn


@app.command()
def report(
    sweep_dir: Annotated[str, typer.Argument(
        help="A sweep's output directory (manifest + Parquet shards).", show_default=False)],
    output: Annotated[Optional[str], typer.Option(
        "--output", "-o", help="The HTML file to write [default: SWEEP_DIR/report.html].",
        show_default=False)] = None,
    title: Annotated[Optional[str], typer.Option(
        "--title", help="Page title [default: names the sweep].", show_default=False)] = None,
    heads: Annotated[Optional[str], typer.Option(
        "--heads", help="A head_masks.json from `jaxplain heads` to show as a layer x head "
        "grid [default: SWEEP_DIR/head_masks.json when present].", show_default=False)] = None,
    diffmask: Annotated[Optional[str], typer.Option(
        "--diffmask", help="The JSON of `jaxplain diffmask explain --json` to show as layer x "
        "token maps [default: SWEEP_DIR/diffmask.json when present].", show_default=False)
                        ] = None,
    max_examples: Annotated[int, typer.Option(
        "--max-examples", min=0, help="Examples embedded as heatmaps (the rest are counted).")
                            ] = 1000,
    page_size: Annotated[int, typer.Option(
        "--page-size", min=1, help="Examples per page of heatmaps.")] = 20,
    resamples: Annotated[int, typer.Option(
        "--resamples", min=1, help="Bootstrap resamples of the 95% intervals.")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Bootstrap seed.")] = 0,
) -> None:
  """Write the explainer leaderboard and heatmaps of a sweep as one HTML page."""
  from jaxplain.viz.report import render_report  # pylint: disable=g-import-not-at-top
  from jaxplain.viz.report_data import load_sweep  # pylint: disable=g-import-not-at-top
  out = output if output is not None else os.path.join(sweep_dir, "report.html")
  data = load_sweep(sweep_dir, head_masks=heads, diffmask=diffmask,
                   max_examples=max_examples)
  _common.check_writable(out)
  if title is not None:
    data.title = title
  for line in data.missing:
    warn(line)
  page = render_report(data, max_examples=max_examples, page_size=page_size,
                       resamples=resamples, seed=seed)
  _common.write_atomic(out, page)
  total = data.num_examples if data.num_examples is not None else len(data.examples)
  typer.echo(f"wrote {out} ({len(data.methods)} methods, {total} examples)", err=True)
