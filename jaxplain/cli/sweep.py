"""``jaxplain sweep``: attribute a whole corpus on every device, resumably, to Parquet shards.

The plan comes from a TOML file (``--config``), from flags, or both (flags win). Rerunning the
same command resumes a killed sweep; a different config against the same ``--output`` is
refused. See ``docs/sweeps.md``.
"""

from typing import Optional

import typer

from jaxplain.cli._app import app


def _options(items: list[str], what: str) -> dict[str, dict]:
  from jaxplain.cli import _common  # pylint: disable=g-import-not-at-top
  from jaxplain.errors import InputError  # pylint: disable=g-import-not-at-top
  out: dict[str, dict] = {}
  for item in items:
    name, dot, rest = item.partition(".")
    if not dot:
      raise InputError(f"{what} {item!r} is not NAME.KEY=VALUE; write e.g. ig.steps=20.")
    out.setdefault(name, {}).update(_common.parse_params([rest]))
  return out


def _buckets(text: str | None) -> str | tuple[int, ...] | None:
  """``--buckets``: a preset name, or comma-separated token counts (checked by the config)."""
  from jaxplain.errors import InputError  # pylint: disable=g-import-not-at-top
  if text is None or not text.strip() or text.strip().isalpha():
    return None if text is None else text.strip()
  try:
    return tuple(int(b) for b in text.split(","))
  except ValueError:
    raise InputError(f"--buckets {text!r} is neither a preset (default, fine) nor "
                     "comma-separated token counts such as 16,32,64.") from None


@app.command()
def sweep(
    data: Optional[str] = typer.Argument(None, help="A local csv/jsonl/parquet file (csv may be "
                                         ".bz2/.gz) or a Hugging Face data set name (needs a "
                                         "network). Overrides [data] source in --config."),
    config: Optional[str] = typer.Option(None, "--config", "-c", help="A TOML sweep config "
                                         "(see docs/sweeps.md); flags override it."),
    output: Optional[str] = typer.Option(None, "--output", "-o", help="Output directory."),
    model: Optional[str] = typer.Option(None, "--model", help="Model path or hub id (default: "
                                        "the embedded sentiment model)."),
    methods: list[str] = typer.Option([], "--method", "-m", help="A method (repeat); default "
                                      "gradient_x_input."),
    param: list[str] = typer.Option([], "--param", help="METHOD.KEY=VALUE or METRIC.KEY=VALUE, "
                                    "e.g. ig.steps=50 (repeat)."),
    metrics: list[str] = typer.Option([], "--metric", help="A faithfulness metric computed in "
                                      "the same pass, e.g. comprehensiveness (repeat)."),
    text_column: Optional[str] = typer.Option(None, help="Text column (default text)."),
    pair_column: Optional[str] = typer.Option(None, help="Second-text column, for pairs."),
    label_column: Optional[str] = typer.Option(None, help="Gold label column."),
    id_column: Optional[str] = typer.Option(None, help="Example id column (default: row index)."),
    name: Optional[str] = typer.Option(None, "--name", help="Hub data set configuration."),
    split: Optional[str] = typer.Option(None, help="Hub split (default train)."),
    limit: Optional[int] = typer.Option(None, help="Only the first N rows."),
    label_map: list[str] = typer.Option([], "--label-map", help="RAW=LABEL, e.g. "
                                        "fresh=positive (repeat)."),
    batch_size: Optional[int] = typer.Option(None, help="Examples per step over all local "
                                             "devices (default 32)."),
    max_length: Optional[int] = typer.Option(None, help="Longest input in tokens."),
    dtype: Optional[str] = typer.Option(None, help="float32 (default) or bfloat16 compute."),
    buckets: Optional[str] = typer.Option(None, help="Padded lengths: default, fine (steps "
                                          "of 4 up to 64 tokens: less padding, more compiled "
                                          "shapes) or comma-separated token counts."),
    seed: Optional[int] = typer.Option(None, help="PRNG seed (default 0)."),
    shard_size: Optional[int] = typer.Option(None, help="Examples per output shard (default "
                                             "1024)."),
    truncate: Optional[bool] = typer.Option(None, "--truncate/--skip-long", help="Truncate "
                                            "over-long inputs (default) or skip them; either "
                                            "way they go to the errors file."),
    target: Optional[str] = typer.Option(None, help="Explain the 'predicted' (default) or the "
                                         "gold 'label' class."),
    slicing: Optional[str] = typer.Option(None, help="Split over processes: round_robin "
                                          "(default) or block."),
    coordinator: Optional[str] = typer.Option(None, envvar="JAXPLAIN_COORDINATOR",
                                              help="HOST:PORT of process 0, for multi-process "
                                              "runs."),
    num_processes: Optional[int] = typer.Option(None, envvar="JAXPLAIN_NUM_PROCESSES",
                                                help="How many processes."),
    process_id: Optional[int] = typer.Option(None, envvar="JAXPLAIN_PROCESS_ID",
                                             help="This process's index."),
    distributed: bool = typer.Option(False, "--distributed", envvar="JAXPLAIN_DISTRIBUTED",
                                     help="Call jax.distributed.initialize() with auto-detected "
                                     "settings (TPU slices, SLURM)."),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help="Progress "
                                            "bar (default: when stderr is a terminal)."),
    cache: bool = typer.Option(True, "--cache/--no-cache", help="JAX compilation cache."),
) -> None:
  """Attribute a corpus: every method and metric in one compiled pass, Parquet shards out."""
  from jaxplain import corpus  # pylint: disable=g-import-not-at-top
  from jaxplain.attribution import canonical_name  # pylint: disable=g-import-not-at-top
  from jaxplain.cli import _common  # pylint: disable=g-import-not-at-top
  from jaxplain.errors import InputError  # pylint: disable=g-import-not-at-top

  if coordinator is not None or num_processes is not None or process_id is not None:
    corpus.initialize_distributed(coordinator, num_processes, process_id)
  elif distributed:
    corpus.initialize_distributed()
  _common.configure_jax(cache)

  options = _options(param, "--param")
  overrides = {
      "output": output, "model": model, "batch_size": batch_size, "max_length": max_length,
      "dtype": dtype, "seed": seed, "shard_size": shard_size, "target": target,
      "slicing": slicing, "metrics": list(metrics) or None, "buckets": _buckets(buckets),
      "on_long": None if truncate is None else ("truncate" if truncate else "skip"),
      "data": {"source": data, "text_column": text_column, "text_pair_column": pair_column,
               "label_column": label_column, "id_column": id_column, "name": name,
               "split": split, "limit": limit},
  }
  if label_map:
    overrides["label_map"] = _common.parse_label_map(label_map)
  raw = {} if config is None else corpus.plan.load_toml(config)
  metric_names = set(corpus.METRIC_NAMES)
  metric_opts = {k: v for k, v in options.items() if k in metric_names}
  method_opts: dict[str, dict] = {}
  for key, opts in options.items():
    if key in metric_names:
      continue
    try:
      canon = canonical_name(key)
    except InputError:
      raise InputError(f"--param {key}.KEY=VALUE: {key!r} is neither a method nor a metric "
                       f"({', '.join(sorted(metric_names))}).") from None
    method_opts.setdefault(canon, {}).update(opts)
  if methods:
    chosen = [canonical_name(m) for m in methods]
    base = {m: {} for m in chosen}
  else:  # the methods named in the TOML file (or the default)
    from_file = raw.get("methods") or dict.fromkeys(
        name for name, _ in corpus.plan.DEFAULT_METHODS)
    if not isinstance(from_file, dict):
      from_file = {m: {} for m in from_file}
    base = {canonical_name(m): dict(h or {}) for m, h in from_file.items()}
  unknown = set(method_opts) - set(base)
  if unknown:
    raise InputError(f"--param names {', '.join(sorted(unknown))}, which is not among the "
                     f"methods ({', '.join(base)}); add --method or list it in the config.")
  if methods or method_opts:
    overrides["methods"] = {m: {**h, **method_opts.get(m, {})} for m, h in base.items()}
  if metric_opts:
    overrides["metric_options"] = {**dict(raw.get("metric_options") or {}), **metric_opts}
  if not (raw.get("data") or {}).get("source") and data is None:
    raise InputError("no data given; pass a file or hub data set name, or set [data] source in "
                     "--config.")
  plan = corpus.merge_config(raw, overrides)
  summary = corpus.sweep(plan, progress=progress)
  typer.echo(f"swept {summary}")
