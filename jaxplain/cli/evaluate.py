"""``jaxplain evaluate``: faithfulness (and plausibility) of chosen methods over a data set."""

from typing import Optional

import typer

from jaxplain.cli._app import app


@app.command()
def evaluate(
    data: str = typer.Argument(..., help="A local csv/jsonl/parquet file (compressed too), or a "
                               "Hugging Face data set name (needs a network)."),
    methods: list[str] = typer.Option(["gradient_x_input", "integrated_gradients"], "--method",
                                      "-m", help="A method to evaluate (repeat the option)."),
    metrics: list[str] = typer.Option(["comprehensiveness", "sufficiency", "aopc_log_odds"],
                                      "--metric", help="A metric (repeat the option)."),
    output: str = typer.Option("evaluation", "--output", "-o",
                               help="Directory for metrics.md, metrics.csv and metrics.json."),
    model: Optional[str] = typer.Option(None, "--model", help="Model path or hub id "
                                        "(default: the embedded sentiment model)."),
    text_column: str = typer.Option("text", help="Column holding the texts."),
    label_column: str = typer.Option("label", help="Column holding the labels."),
    split: str = typer.Option("test", help="Split, for hub data sets."),
    label_map: list[str] = typer.Option([], "--label-map", help="RAW=LABEL, e.g. fresh=positive "
                                        "(repeat); rows with other labels are dropped."),
    limit: Optional[int] = typer.Option(None, help="Evaluate the first N rows."),
    target: str = typer.Option("predicted", help="Explain the 'predicted' or the 'gold' class."),
    batch_size: int = typer.Option(32, help="Texts per compiled call."),
    max_length: Optional[int] = typer.Option(None, help="Truncate inputs to N tokens."),
    lexicon: Optional[str] = typer.Option(None, help="A VADER lexicon file: adds plausibility "
                                          "against a lexicon proxy (not human rationales)."),
    param: list[str] = typer.Option([], "--param", help="METHOD.KEY=VALUE hyperparameter, e.g. "
                                    "integrated_gradients.steps=20 (repeat)."),
    seed: int = typer.Option(0, help="Bootstrap seed."),
    cache: bool = typer.Option(True, "--cache/--no-cache", help="JAX compilation cache."),
) -> None:
  """Evaluate attribution methods on a data set: one table, mean and 95% bootstrap interval."""
  from jaxplain.cli import _common  # pylint: disable=g-import-not-at-top
  from jaxplain.errors import InputError  # pylint: disable=g-import-not-at-top
  _common.configure_jax(cache)
  from jaxplain.attribution import canonical_name  # pylint: disable=g-import-not-at-top
  from jaxplain.metrics.evaluate import evaluate as run, read_dataset  # pylint: disable=g-import-not-at-top

  mapping = _common.parse_label_map(label_map)
  options: dict[str, dict] = {}
  for item in param:
    name, dot, rest = item.partition(".")
    if not dot:
      raise InputError(f"--param {item!r} is not METHOD.KEY=VALUE; write e.g. "
                       "integrated_gradients.steps=20.")
    options.setdefault(name, {}).update(_common.parse_params([rest]))
  names = {m: canonical_name(m) for m in methods}
  method_options = {m: options.get(m, options.get(names[m], {})) for m in methods}
  texts, labels = read_dataset(data, text_column=text_column, label_column=label_column,
                               split=split, limit=limit, label_map=mapping)
  loaded = _common.load(model)
  if lexicon is not None and "plausibility" not in metrics:
    metrics = list(metrics) + ["plausibility"]
  result = run(loaded, texts, labels, {m: names[m] for m in methods}, metrics,
               batch_size=batch_size, target=target, lexicon_path=lexicon,
               method_options=method_options, max_length=max_length, seed=seed,
               output_dir=output)
  typer.echo(result.to_markdown())
  typer.echo(f"wrote {', '.join(result.files)}")
