"""Combinatorial shortcuts in attention-based interpretation models (Bai et al., KDD 2021).

The intuitive experiment on Rotten Tomatoes: K label-independent constant tokens ([unused0..K-1])
are inserted after [CLS] in every example; attention pooling and L2X interpretation models are
trained over the frozen default model's MiniLM encoder, without and with each mitigation, over
several seeds. Reported per setting (mean +- std over seeds):

* accuracy: against the gold label (attention pooling is a classifier) and fidelity to the
  black box (L2X mimics the default model);
* post-hoc accuracy: the black box's agreement with itself when it reads only the k tokens the
  model selects (top-k attention weights for attention pooling);
* mass on inserted tokens: attention mass / share of selected tokens that are inserted ones;
* shortcut-probe accuracy: a logistic probe predicting the gold label from the explanation
  restricted to the inserted positions (trained on train, tested on test): 0.5 = no shortcut;
* ERASER comprehensiveness and sufficiency of the explanation on the black box (first seed).

The paper's exact procedure is not known to us; this design is ours (see
``jaxplain.attribution.selectors``).

    python experiments/shortcuts.py --data-dir ../shared/data --train 3000 --test 800

Writes ``experiments/shortcuts/results/{table.md,table.json}``.
"""

import argparse
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxplain.attribution import selectors as S
from jaxplain.contracts import Batch
from jaxplain.data import read_rotten_tomatoes, split_by_movie
from jaxplain.metrics import faithfulness as F
from jaxplain.models.default import default_model, split_seed

HERE = os.path.dirname(os.path.abspath(__file__))
VARIANTS = ("none", "random_pretraining", "instance_weighting")


def insert_tokens(batch: Batch, k: int, width: int) -> tuple[Batch, np.ndarray]:
  """Inserts ids 1..k ([unused0..]) after [CLS]; returns the batch and the inserted mask."""
  ids, mask = np.asarray(batch.input_ids), np.asarray(batch.attention_mask)
  n = ids.shape[0]
  out_ids = np.zeros((n, width), np.int32)
  out_mask = np.zeros((n, width), np.int32)
  word = np.full((n, width), -1, np.int32)
  inserted = np.zeros((n, width), bool)
  wid = np.asarray(batch.word_ids)
  for i in range(n):
    m = int(mask[i].sum())
    row = np.concatenate([ids[i, :1], np.arange(1, k + 1), ids[i, 1:m]])
    out_ids[i, :len(row)] = row
    out_mask[i, :len(row)] = 1
    word[i, 1:k + 1] = np.arange(k)  # inserted tokens are words of their own
    word[i, k + 1:len(row)] = np.where(wid[i, 1:m] >= 0, wid[i, 1:m] + k, -1)
    inserted[i, 1:k + 1] = True
  return Batch(out_ids, out_mask, np.zeros_like(out_ids), word_ids=word), inserted


def features(model, texts, k, width, chunk):
  """Cached frozen-encoder features of the inserted inputs, and the black box's predictions."""
  fwd = jax.jit(lambda p, b: model.forward(p, b))
  ctx, tok, masks, preds, batches, ins = [], [], [], [], [], []
  for i in range(0, len(texts), chunk):
    b, inserted = insert_tokens(model.encode(texts[i:i + chunk], max_length=width - k), k, width)
    out = fwd(model.params, b.device_part())
    ctx.append(np.asarray(out.hidden[-1]))
    tok.append(np.asarray(out.hidden[0]))
    masks.append(np.asarray(b.attention_mask))
    preds.append(np.asarray(out.logits.argmax(-1)))
    batches.append(b)
    ins.append(inserted)
  cat = np.concatenate
  return (jnp.asarray(cat(ctx)), jnp.asarray(cat(tok)), jnp.asarray(cat(masks)), cat(preds),
          batches, cat(ins))


def posthoc_accuracy(model, batches, weights, k, full_pred):
  """Black box on the top-k tokens only ([CLS] + selected + [SEP], re-packed) vs its full call."""
  fwd = jax.jit(lambda p, b: model.forward(p, b).logits)
  preds, start = [], 0
  cls_id, sep_id = model.tokenizer.cls_token_id, model.tokenizer.sep_token_id
  for b in batches:
    n, width = b.input_ids.shape
    w = weights[start:start + n]
    ids = np.zeros((n, k + 2), np.int32)
    for i in range(n):
      real = np.nonzero((np.asarray(b.word_ids[i]) >= 0))[0]
      top = np.sort(real[np.argsort(-w[i, real], kind="stable")[:k]])
      ids[i] = np.concatenate([[cls_id], np.asarray(b.input_ids[i])[top], [sep_id]])
    out = fwd(model.params, Batch(ids, np.ones_like(ids), np.zeros_like(ids)))
    preds.append(np.asarray(out.argmax(-1)))
    start += n
  return float((np.concatenate(preds) == full_pred).mean())


def faithfulness(model, batches, weights, limit):
  run = jax.jit(lambda p, b, s: F.run_protocols(
      model.forward, p, b, s, (F.comprehensiveness_protocol(), F.sufficiency_protocol())))
  comp, suff, start = [], [], 0
  for b in batches:
    if start >= limit:
      break
    n = len(b)
    out = run(model.params, b, jnp.asarray(weights[start:start + n], jnp.float32))
    comp.append(np.asarray(out["comprehensiveness"]))
    suff.append(np.asarray(out["sufficiency"]))
    start += n
  return float(np.concatenate(comp).mean()), float(np.concatenate(suff).mean())


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--data-dir", default=os.path.join(HERE, "..", "..", "shared", "data"))
  p.add_argument("--train", type=int, default=3000)
  p.add_argument("--test", type=int, default=800)
  p.add_argument("--inserted", type=int, default=4, help="K constant tokens")
  p.add_argument("--k", type=int, default=5, help="tokens selected by L2X / post-hoc")
  p.add_argument("--width", type=int, default=64)
  p.add_argument("--steps", type=int, default=800)
  p.add_argument("--seeds", type=int, default=3)
  p.add_argument("--faith-limit", type=int, default=256)
  p.add_argument("--out", default=os.path.join(HERE, "shortcuts", "results"))
  args = p.parse_args()
  t_start = time.perf_counter()

  model = default_model()
  seed = split_seed()
  df = read_rotten_tomatoes(os.path.join(args.data_dir, "rotten_tomatoes_corpus_full.csv.bz2"))
  train_df, _, test_df = split_by_movie(df, seed)
  train_df = train_df.sample(n=min(args.train, len(train_df)), random_state=0)
  test_df = test_df.iloc[:args.test]
  # Drop examples too short to select k real tokens from (k > sequence is refused).
  tr = features(model, train_df.text.tolist(), args.inserted, args.width, 64)
  te = features(model, test_df.text.tolist(), args.inserted, args.width, 64)
  y_tr, y_te = train_df.label.to_numpy(), test_df.label.to_numpy()
  print(f"features: {time.perf_counter() - t_start:.0f}s; black-box test accuracy "
        f"{(te[3] == y_te).mean():.3f}", flush=True)

  rows = []
  for kind in ("attention", "l2x"):
    for variant in VARIANTS:
      runs = []
      for s in range(args.seeds):
        cfg = S.TrainConfig(kind=kind, k=args.k, steps=args.steps)
        key = jax.random.key(s)
        targets = jnp.asarray(y_tr if kind == "attention" else tr[3])
        t0 = time.perf_counter()
        if variant == "none":
          params = S.train(tr[0], tr[1], tr[2], targets, cfg, key=key)
        elif variant == "random_pretraining":
          params = S.train_random_pretrained(tr[0], tr[1], tr[2], targets, cfg, key=key)
        else:
          params, _ = S.train_instance_weighted(tr[0], tr[1], tr[2], targets, cfg, key=key)
        train_s = time.perf_counter() - t0
        _, w_tr = S.predict(params, tr[0], tr[1], tr[2], cfg)
        pred, w_te = S.predict(params, te[0], te[1], te[2], cfg)
        ins_te, ins_tr = te[5], tr[5]
        k_ins = args.inserted
        pat_tr = w_tr[:, 1:k_ins + 1]
        pat_te = w_te[:, 1:k_ins + 1]
        mass = float((w_te * ins_te).sum(1).mean() / (1.0 if kind == "attention" else args.k))
        run = {
            "accuracy_gold": float((pred == y_te).mean()),
            "fidelity_blackbox": float((pred == te[3]).mean()),
            "posthoc_accuracy": posthoc_accuracy(model, te[4], w_te, args.k, te[3]),
            "inserted_mass": mass,
            "shortcut_probe": S.shortcut_probe(pat_tr, y_tr, pat_te, y_te),
            "train_seconds": train_s,
        }
        del ins_tr
        if s == 0:
          run["comprehensiveness"], run["sufficiency"] = faithfulness(model, te[4], w_te,
                                                                      args.faith_limit)
        runs.append(run)
        print(kind, variant, s, {k: round(v, 3) for k, v in run.items()}, flush=True)
      row = {"model": kind, "mitigation": variant, "seeds": args.seeds}
      for key_ in runs[0]:
        vals = np.asarray([r[key_] for r in runs if key_ in r])
        row[key_] = float(vals.mean())
        row[key_ + "_std"] = float(vals.std())
      rows.append(row)

  os.makedirs(args.out, exist_ok=True)
  config = {k: v for k, v in vars(args).items() if k != "out"}
  config["runtime_seconds"] = round(time.perf_counter() - t_start, 1)
  with open(os.path.join(args.out, "table.json"), "w") as f:
    json.dump({"config": config, "rows": rows}, f, indent=2)
  cols = ["accuracy_gold", "fidelity_blackbox", "posthoc_accuracy", "inserted_mass",
          "shortcut_probe", "comprehensiveness", "sufficiency"]
  with open(os.path.join(args.out, "table.md"), "w") as f:
    f.write("| model | mitigation | " + " | ".join(cols) + " |\n")
    f.write("|---|---|" + "---|" * len(cols) + "\n")
    for r in rows:
      cells = [f"{r[c]:.3f} ± {r[c + '_std']:.3f}" if r.get(c + "_std", 0) else f"{r[c]:.3f}"
               for c in cols]
      f.write(f"| {r['model']} | {r['mitigation']} | " + " | ".join(cells) + " |\n")
  print(open(os.path.join(args.out, "table.md")).read())


if __name__ == "__main__":
  main()
