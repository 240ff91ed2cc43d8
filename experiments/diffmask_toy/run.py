"""DiffMask on the authors' toy counting task: KL / JS divergence to the known ground truth.

    python experiments/diffmask_toy.py [--out /tmp/jaxplain_diffmask_toy] [--data-size N]

Trains the toy model, trains DiffMask hidden gates on it (both indices, as the notebook does),
reads DiffMask at the 2-d encoder state (index 1, ``layer_drop=1``) and compares it with
Integrated Gradients and gradient x input at the same state, writing
``experiments/diffmask_toy/results/{metrics.json, metrics.md, example.png}``.
"""

import argparse
import dataclasses
import json
import os
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
import config as toy_config  # noqa: E402  pylint: disable=g-import-not-at-top
import toy  # noqa: E402  pylint: disable=g-import-not-at-top

from jaxplain.attribution import diffmask as dm  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def summarise(name, attr, gt):
  kl, js = toy.divergences(attr, gt)
  finite = np.isfinite(kl)
  return {"method": name, "kl_mean": float(np.mean(kl)) if finite.all() else float("inf"),
          "kl_std": float(np.std(kl)) if finite.all() else float("nan"),
          "js_mean": float(np.mean(js)), "js_std": float(np.std(js)), "examples": int(kl.size)}


def plot_example(path, ids, query, rows):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axs = plt.subplots(1, len(rows), figsize=(3.2 * len(rows), 2.6), sharey=True)
  for ax, (name, a) in zip(axs, rows):
    ax.bar(range(len(ids)), a / max(a.sum(), 1e-12))
    ax.set_xticks(range(len(ids)), [f"[{t}]" if t in query else str(t) for t in ids])
    ax.set_title(name, fontsize=9)
  axs[0].set_ylabel("normalised attribution")
  fig.suptitle(f"query m={query[0]}, n={query[1]}; [x] = query symbol", fontsize=9)
  fig.savefig(path, bbox_inches="tight", dpi=120)
  plt.close(fig)


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--out", default="/tmp/jaxplain_diffmask_toy", help="DiffMask checkpoints")
  ap.add_argument("--data-size", type=int, default=None)
  ap.add_argument("--steps", type=int, default=None, help="DiffMask steps (default 7000)")
  ap.add_argument("--results", default=RESULTS)
  args = ap.parse_args(argv)
  cfg = toy_config.get_config()
  if args.data_size:
    cfg = dataclasses.replace(cfg, data_size=args.data_size)
  if args.steps:
    cfg = dataclasses.replace(cfg, diffmask=dataclasses.replace(cfg.diffmask, steps=args.steps))
  times = {}

  t0 = time.time()
  data, labels, query = toy.make_data(cfg.data_size, cfg.seed)
  n_train = int(cfg.data_size * 0.9)
  train, val = data.take(slice(0, n_train)), data.take(slice(n_train, None))
  params = toy.train_model(train, labels[:n_train], epochs=cfg.model_epochs, seed=cfg.seed)
  val_acc = toy.accuracy(params, val, labels[n_train:])
  times["model_s"] = time.time() - t0
  print(f"toy model: val accuracy {val_acc:.4f} ({times['model_s']:.0f} s)", flush=True)

  t0 = time.time()
  res = dm.train_gates(toy.forward, train, cfg.diffmask, args.out, params=params, valid=val,
                       progress=sys.stdout.isatty())
  times["diffmask_train_s"] = time.time() - t0
  print(f"diffmask: best {res.best} ({times['diffmask_train_s']:.0f} s)", flush=True)

  t0 = time.time()
  keep = np.asarray(dm.keep_probabilities(toy.forward, params, val, gates=res.gates))
  ours_hidden, ours_input = keep[..., 1], keep[..., 0]
  ig = np.asarray(jax.jit(toy.integrated_gradients_hidden, static_argnums=2)(
      params, val, cfg.ig_steps))
  gxi = np.asarray(jax.jit(toy.gradient_x_input_hidden)(params, val))
  times["attribution_s"] = time.time() - t0
  gt = toy.ground_truth(val, query[n_train:])
  mask = np.asarray(val.attention_mask) > 0
  vquery, vlabels = query[n_train:], labels[n_train:]
  exact = np.zeros_like(gt)
  winner = np.where(vlabels[:, None] > 0, np.asarray(val.input_ids) == vquery[:, :1],
                    np.asarray(val.input_ids) == vquery[:, 1:]) & mask
  has = winner.any(-1)
  exact[np.flatnonzero(has), winner[has].argmax(-1)] = 1.0
  rand = np.random.default_rng(cfg.seed).uniform(size=gt.shape) * mask

  rows = [summarise("DiffMask (hidden, index 1)", ours_hidden * mask, gt),
          summarise("DiffMask (hidden, index 0 = embeddings)", ours_input * mask, gt),
          summarise(f"Integrated Gradients ({cfg.ig_steps} steps)", ig, gt),
          summarise("Gradient x input", gxi, gt),
          summarise("Exact erasure (one token)", exact, gt),
          summarise("Random (uniform noise)", rand, gt)]
  dmk, igk = rows[0]["kl_mean"], rows[2]["kl_mean"]
  out = {
      "command": "python experiments/diffmask_toy.py" + (
          f" --data-size {args.data_size}" if args.data_size else "") + (
          f" --steps {args.steps}" if args.steps else ""),
      "data_size": cfg.data_size, "val_examples": int(len(vlabels)),
      "toy_model_val_accuracy": val_acc, "diffmask_selected": res.best,
      "diffmask_last_eval": {k: v for k, v in res.evaluations[-1].items()},
      "diffmask_config": dataclasses.asdict(cfg.diffmask), "times_s": times,
      "backend": jax.default_backend(), "results": rows,
      "targets": {"diffmask_kl_le_0.1": dmk <= 0.1, "ig_over_diffmask_kl_ge_5": igk >= 5 * dmk},
      "paper": {"DiffMask": [0.04, 0.01], "Integrated Gradients": [1.36, 0.27],
                "Schulz": [1.16, 0.19], "Guan": [0.86, 0.23], "Exact": ["inf", 0.27]},
  }
  os.makedirs(args.results, exist_ok=True)
  with open(os.path.join(args.results, "metrics.json"), "w") as f:
    json.dump(out, f, indent=1, default=float)
  lines = ["| method | D_KL(gt ‖ attr) | D_JS | paper KL / JS |", "|---|---|---|---|"]
  paper = {"DiffMask (hidden, index 1)": "0.04 / 0.01", "Integrated Gradients": "1.36 / 0.27",
           "Exact erasure (one token)": "inf / 0.27"}
  for r in rows:
    ref = next((v for k, v in paper.items() if r["method"].startswith(k)), "")
    kl = "inf" if not np.isfinite(r["kl_mean"]) else f"{r['kl_mean']:.3f} ± {r['kl_std']:.3f}"
    lines.append(f"| {r['method']} | {kl} | {r['js_mean']:.3f} ± {r['js_std']:.3f} | {ref} |")
  with open(os.path.join(args.results, "metrics.md"), "w") as f:
    f.write(f"Toy task, {len(vlabels)} validation sequences ({rows[0]['examples']} with an m/n), "
            f"toy model val accuracy {val_acc:.4f}, data size {cfg.data_size}, DiffMask "
            f"{cfg.diffmask.steps} steps; backend {jax.default_backend()}; times (s): "
            + ", ".join(f"{k} {v:.0f}" for k, v in times.items()) + ".\n\n"
            + "\n".join(lines) + "\n")
  i = int(np.flatnonzero(has & (mask.sum(-1) >= 6))[0])
  L = int(mask[i].sum())
  plot_example(os.path.join(args.results, "example.png"), np.asarray(val.input_ids)[i, :L],
               vquery[i], [("ground truth", gt[i, :L]), ("DiffMask", ours_hidden[i, :L]),
                           ("Integrated Gradients", ig[i, :L]), ("gradient x input", gxi[i, :L])])
  print("\n".join(lines))
  return out


if __name__ == "__main__":
  main()
