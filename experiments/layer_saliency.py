"""Decoded layer saliency (Hou & Castanon 2023) against the gradient family, on Rotten Tomatoes.

Comprehensiveness, sufficiency (ERASER bins) and AOPC/LOdds (Mask-LRP protocol) on the default
model's Rotten Tomatoes test split, for decoded layer saliency at the automatically chosen layer
and at fixed layers, against gradient, gradient x input, saliency and IG; plus the mean
coherence and saliency mass per layer, plotted. The evaluation protocol is ours (the paper's
tables were not available): see the spec, section 3.3.

    python experiments/layer_saliency.py --data-dir ../shared/data --limit 300

Writes ``experiments/layer_saliency/results/{metrics.md,metrics.csv,metrics.json,
by_layer.json,by_layer.png}``.
"""

import argparse
import functools
import json
import os

import jax
import numpy as np

from jaxplain.attribution.decoded import decoded_layer_saliency_all
from jaxplain.data import read_rotten_tomatoes, split_by_movie
from jaxplain.metrics.evaluate import evaluate
from jaxplain.models.default import default_model, split_seed

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--data-dir", default=os.path.join(HERE, "..", "..", "shared", "data"))
  p.add_argument("--limit", type=int, default=300)
  p.add_argument("--tau", type=int, default=10)
  p.add_argument("--ig-steps", type=int, default=20)
  p.add_argument("--batch-size", type=int, default=32)
  p.add_argument("--out", default=os.path.join(HERE, "layer_saliency", "results"))
  args = p.parse_args()

  model = default_model()
  seed = split_seed()
  df = read_rotten_tomatoes(os.path.join(args.data_dir, "rotten_tomatoes_corpus_full.csv.bz2"))
  test = split_by_movie(df, seed)[2].iloc[:args.limit]
  texts, labels = test.text.tolist(), test.label.tolist()
  os.makedirs(args.out, exist_ok=True)

  # 1. Coherence and saliency mass by layer (label-free), averaged over the split.
  fn = jax.jit(functools.partial(decoded_layer_saliency_all, model.forward, tau=args.tau))
  coh_sum, mass_sum, n = 0.0, 0.0, 0
  for i in range(0, len(texts), args.batch_size):
    batch = model.encode(texts[i:i + args.batch_size])
    sal, coh = fn(model.params, batch)
    coh_sum = coh_sum + np.asarray(coh).sum(1)
    mass_sum = mass_sum + np.asarray(sal).sum(-1).sum(1)
    n += len(batch)
  coherence, mass = (coh_sum / n).tolist(), (mass_sum / n).tolist()
  with open(os.path.join(args.out, "by_layer.json"), "w") as f:
    json.dump({"coherence": coherence, "saliency_mass": mass, "tau": args.tau, "examples": n},
              f, indent=2)
  _plot(coherence, mass, os.path.join(args.out, "by_layer.png"))
  print("coherence by layer:", np.round(coherence, 3), "\nmass by layer:", np.round(mass, 3))

  # 2. Faithfulness against the gradient family.
  layers = model.config.num_layers
  methods = {"decoded (auto layer)": "decoded_layer_saliency", "gradient": "gradient",
             "gradient_x_input": "gradient_x_input", "saliency": "saliency",
             f"integrated_gradients ({args.ig_steps})": "integrated_gradients"}
  options = {f"integrated_gradients ({args.ig_steps})": {"steps": args.ig_steps},
             "decoded (auto layer)": {"tau": args.tau}}
  for layer in (1, layers // 2, layers):
    methods[f"decoded (layer {layer})"] = "decoded_layer_saliency"
    options[f"decoded (layer {layer})"] = {"layer": layer, "tau": args.tau}
  ev = evaluate(model, texts, labels, methods, metrics=("comprehensiveness", "sufficiency",
                                                        "aopc_log_odds"),
                batch_size=args.batch_size, method_options=options,
                metric_options={"aopc_log_odds": {"min_length": 10}}, output_dir=args.out)
  print(ev.to_markdown())


def _plot(coherence, mass, path):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(5, 3.2))
  layers = np.arange(len(coherence))
  ax.plot(layers, coherence, "o-", label="coherence")
  ax.set_xlabel("hidden state (0 = embeddings)")
  ax.set_ylabel("coherence")
  ax2 = ax.twinx()
  ax2.plot(layers, mass, "s--", color="tab:red", label="saliency mass")
  ax2.set_ylabel("mean saliency mass")
  fig.legend(loc="upper center", ncol=2, fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)


if __name__ == "__main__":
  main()
