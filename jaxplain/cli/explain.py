"""``jaxplain explain``: explain one or a few texts from the command line.

    jaxplain explain "an utterly charming film"
    jaxplain explain "a dull film" "a sharp film" --method ig --param steps=32 --json
    echo "a film" | jaxplain explain - --model path/to/bert-sst2 --html film.html

prints the predicted label with its probability and a table of per-word attributions
(gradient x input by default), optionally writes the HTML heatmap, or prints JSON.
"""

import json
import math
from typing import Annotated, Any, Optional

import typer

from jaxplain.cli import _common
from jaxplain.cli._app import app
from jaxplain.errors import InputError

_BAR_WIDTH = 12  # characters of the |score| bar in the terminal table
_OWN_OPTIONS = {"method": "--method", "target": "--target", "text_pairs": "--pair",
                "max_length": "--max-length", "truncate": "--no-truncate",
                "batch_size": "--batch-size", "seed": "--seed", "key": "--seed",
                "model": "--model", "batch_or_texts": "the TEXTS arguments", "pack": "--pack"}
"""Arguments of :func:`jaxplain.attribute` that are options here, not method hyperparameters."""


@app.command()
def explain(
    texts: Annotated[list[str], typer.Argument(
        help="Texts to explain; - reads one text per line from stdin.", show_default=False)],
    model: Annotated[Optional[str], typer.Option(
        "--model", help="Model directory or Hugging Face hub id [default: the built-in "
        "sentiment model].", show_default=False)] = None,
    method: Annotated[str, typer.Option(
        "--method", "-m", help="Attribution method: a name from jaxplain.methods() or an alias "
        "(ig, saliency, smoothgrad, attnlrp, rollout, ...).")
                      ] = "gradient_x_input",
    target: Annotated[Optional[str], typer.Option(
        "--target", "-t", help="Class to explain, as an index or a label [default: the "
        "predicted class].", show_default=False)] = None,
    pair: Annotated[Optional[list[str]], typer.Option(
        "--pair", help="Second text of a pair (NLI, QA), once per text.",
        show_default=False)] = None,
    param: Annotated[Optional[list[str]], typer.Option(
        "--param", "-p", help="Method hyperparameter key=value (repeatable), e.g. steps=32.",
        show_default=False)] = None,
    steps: Annotated[Optional[int], typer.Option(
        "--steps", help="Shorthand for --param steps=N.", show_default=False)] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of randomised methods.")] = 0,
    max_length: Annotated[Optional[int], typer.Option(
        "--max-length", help="Longest input in tokens [default: the model's].",
        show_default=False)] = None,
    truncate: Annotated[bool, typer.Option(
        "--truncate/--no-truncate", help="Truncate over-long inputs with a warning, or refuse "
        "them.")] = True,
    batch_size: Annotated[Optional[int], typer.Option(
        "--batch-size", help="Texts per compiled call, in length-sorted calls [default: about "
        "2048 tokens per call on the CPU].", show_default=False)
                          ] = None,
    pack: Annotated[Optional[bool], typer.Option(
        "--pack/--no-pack", help="Pack several texts per row instead of padding each (sequence "
        "packing): the same scores with less padding, for the gradient family (noise tunnels "
        "and layer variants included), attnlrp, cp_lrp, the attention methods and Chefer's "
        "relprop (gae, mask_lrp, partial_lrp, full_lrp), not the seed methods, on classifiers "
        "[default: pack when it can and --batch-size is not given].", show_default=False)] = None,
    aggregate: Annotated[str, typer.Option(
        "--aggregate", help="Word pieces -> words: sum, mean, max or abs_sum.")] = "sum",
    tokens: Annotated[bool, typer.Option(
        "--tokens", help="Show word pieces (and special tokens) instead of words.")] = False,
    html: Annotated[Optional[str], typer.Option(
        "--html", help="Also write the HTML heatmap to this file.", show_default=False)] = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print machine-readable JSON instead of tables.")] = False,
    cache: Annotated[bool, typer.Option(
        "--cache/--no-cache", help="Keep compiled programs in the persistent cache "
        "($XDG_CACHE_HOME/jaxplain/jax) so the next run starts faster.")] = True,
) -> None:
  """Explain a model's prediction for each text with token attributions."""
  from jaxplain.attribution import canonical_name  # pylint: disable=g-import-not-at-top
  from jaxplain.result import WORD_AGGREGATIONS  # pylint: disable=g-import-not-at-top
  name = canonical_name(method)  # an unknown method fails before the model loads
  if aggregate not in WORD_AGGREGATIONS:
    raise InputError(f"unknown --aggregate {aggregate!r}; use one of "
                     f"{', '.join(WORD_AGGREGATIONS)}.")
  hyper = _common.parse_params(param)
  for k in hyper:
    if k in _OWN_OPTIONS:
      raise InputError(f"--param {k}=... is not a method hyperparameter; use {_OWN_OPTIONS[k]}.")
  if steps is not None:
    hyper["steps"] = steps
  texts = _common.read_texts(texts)
  if pair is not None and len(pair) != len(texts):
    raise InputError(f"{len(texts)} texts but {len(pair)} --pair values; pass one per text.")
  if html is not None:
    _common.check_writable(html)  # fail before the slow part
  _common.configure_jax(cache)
  import jaxplain  # pylint: disable=g-import-not-at-top
  loaded = _common.load(model)
  result = jaxplain.attribute(
      loaded, texts, name, _common.parse_target(target, loaded.labels), text_pairs=pair,
      max_length=max_length, truncate=truncate, batch_size=batch_size, seed=seed,
      pack="auto" if pack is None else pack,
      **hyper)
  unit_aggregate = None if tokens else aggregate
  if html is not None:
    _common.write_atomic(html, result.to_html(aggregate=unit_aggregate))
  if as_json:
    typer.echo(json.dumps(to_json(result, loaded.name, aggregate), ensure_ascii=False))
  else:
    print_tables(result, unit_aggregate)
  if html is not None and not as_json:
    typer.echo(f"wrote {html}", err=True)


def _finite(x: Any) -> float | None:
  x = float(x)
  return x if math.isfinite(x) else None


def to_json(result: Any, model_name: str, aggregate: str = "sum") -> dict[str, Any]:
  """The ``--json`` document: one entry per text with label, probabilities, tokens and words
  (and, for the layer variants, every hidden state's token scores and convergence gap).

  Non-finite numbers become ``null`` so the output is strict JSON.
  """
  examples = []
  for i in range(len(result)):
    toks, tok_scores = result.token_scores(i)
    words, word_scores = result.word_scores(i, aggregate)
    ex: dict[str, Any] = {"text": result.texts[i]}
    if result.text_pairs is not None:
      ex["text_pair"] = result.text_pairs[i]
    if result.probabilities is not None:
      pred = int(result.predicted[i])
      ex["label"] = _label(result.labels, pred)
      ex["probability"] = _finite(result.probabilities[i, pred])
      ex["probabilities"] = {_label(result.labels, c): _finite(p)
                             for c, p in enumerate(result.probabilities[i])}
    if result.target is not None:
      ex["target"] = int(result.target[i])
      if result.probabilities is not None:  # a class of a classifier, not an output index
        ex["target_label"] = _label(result.labels, int(result.target[i]))
    ex["tokens"] = list(toks)
    ex["token_scores"] = [_finite(s) for s in tok_scores]
    ex["words"] = list(words)
    ex["word_scores"] = [_finite(s) for s in word_scores]
    if result.deltas is not None:
      ex["convergence_delta"] = _finite(result.deltas[i])
    layers = result.extra.get("layers")  # per-layer methods: [L+1, B, T], row 0 the embeddings
    if layers is not None:
      ex["layer_token_scores"] = [[_finite(s) for s in row[i, :len(toks)]] for row in layers]
    if "layer_deltas" in result.extra:  # [L+1, B]
      ex["layer_convergence_deltas"] = [_finite(d) for d in result.extra["layer_deltas"][:, i]]
    examples.append(ex)
  hyper = {k: v for k, v in result.hyper.items() if not hasattr(v, "shape")}
  return {"model": model_name, "method": result.method, "hyper": hyper,
          "word_aggregation": aggregate, "examples": examples}


def _label(labels: Any, index: int) -> str:
  return str(labels[index]) if 0 <= index < len(labels) else f"class {index}"


def _explained(result: Any, i: int) -> str:
  """What example ``i`` explains: a class label, an output index (other heads), or custom."""
  if result.target is None:
    return "a custom target"
  t = int(result.target[i])
  return _label(result.labels, t) if result.probabilities is not None else f"output {t}"


def print_tables(result: Any, aggregate: str | None = "sum") -> None:
  """Prints, per text, the prediction and a table of word (or token) scores with bars."""
  from rich import box  # pylint: disable=g-import-not-at-top
  from rich.console import Console  # pylint: disable=g-import-not-at-top
  from rich.table import Table  # pylint: disable=g-import-not-at-top
  from rich.text import Text  # pylint: disable=g-import-not-at-top
  console = Console(highlight=False)
  for i in range(len(result)):
    if aggregate is None:
      units, scores = result.token_scores(i)
    else:
      units, scores = result.word_scores(i, aggregate)
    head = Text()
    if result.probabilities is not None:
      pred = int(result.predicted[i])
      head.append(f"{_label(result.labels, pred)}", style="bold")
      head.append(f" (p = {float(result.probabilities[i, pred]):.3f})")
    else:
      head.append("(no class probabilities for this head)")
    explained = _explained(result, i)
    head.append(f"   explaining: {explained}   method: {result.method}")
    if result.deltas is not None:
      head.append(f"   delta: {float(result.deltas[i]):.3g}")
    shown = Text(result.texts[i], style="italic")
    if result.text_pairs is not None:
      shown.append(" ‖ ", style="dim").append(result.text_pairs[i], style="italic")
    console.print(shown)
    console.print(head, soft_wrap=True)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("#", justify="right", style="dim")
    table.add_column("word" if aggregate is not None else "token")
    table.add_column("score", justify="right")
    table.add_column("", no_wrap=True)
    finite = [abs(float(s)) for s in scores if math.isfinite(float(s))]
    scale = max(finite, default=0.0) or 1.0
    for j, (unit, s) in enumerate(zip(units, scores)):
      s = float(s)
      style = "red" if s > 0 else "blue" if s < 0 else ""
      bar = "█" * round(_BAR_WIDTH * abs(s) / scale) if math.isfinite(s) else ""
      table.add_row(str(j), Text(str(unit)), Text(f"{s:+.4f}", style=style),
                    Text(bar, style=style))
    console.print(table)
  console.print(Text("red supports the explained class, blue speaks against it", style="dim"))
