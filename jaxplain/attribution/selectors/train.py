"""Training interpretation models with optax, and the two shortcut mitigations of Bai et al.

Bai et al. (KDD 2021) show that when a selector and a predictor are trained jointly, the
selector can encode the label in *which* tokens it picks (a "combinatorial shortcut"), and the
predictor decodes it, so the selection looks meaningful without being an explanation. Their two
mitigations, as we rebuild them (the paper's exact procedures were not available to us; every
choice below is ours and named):

* **Random attention pretraining** (:func:`train_random_pretrained`): train the predictor under
  random selections independent of input and label (uniform random attention / random k-subsets),
  freeze it, then train only the selector.
* **Instance weighting** (:func:`train_instance_weighted`): train once, fit an auxiliary
  classifier that sees only the selection pattern, weight each example by
  ``P(y) / P(y | pattern)`` (clipped to ``clip`` and renormalised to mean 1) so that the pattern
  carries no label information under the weighted distribution, and retrain from scratch.
"""

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray

from jaxplain.attribution.selectors import models
from jaxplain.errors import InputError


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Hyperparameters of one training run (our defaults, tuned on nothing but sanity)."""

  kind: str = "l2x"
  k: int = 5
  steps: int = 600
  batch_size: int = 64
  learning_rate: float = 3e-3
  temperature: float = 0.5
  width: int | None = None


def _random_selection(kind: str, mask, k: int, key) -> Float[Array, "B T"]:
  """Selections independent of input and label: random attention, or a random k-subset."""
  noise = jax.random.normal(key, mask.shape)
  if kind == "attention":
    return jax.nn.softmax(jnp.where(mask > 0, noise, -1e9), -1) * (mask > 0)
  return models.hard_top_k(noise, mask, k)


def train(context: Float[Array, "N T H"], tokens: Float[Array, "N T H"], mask: Int[Array, "N T"],
          targets: Int[Array, " N"], config: TrainConfig, *, key: PRNGKeyArray,
          num_classes: int = 2, weights: Float[Array, " N"] | None = None,
          params: models.Params | None = None, trainable: str = "all",
          random_selection: bool = False) -> models.Params:
  """Trains an interpretation model on cached encoder features with Adam.

  Args:
    context, tokens, mask: cached features ``[N, T, H]`` and mask ``[N, T]``.
    targets: ``[N]`` classes to fit (gold labels for attention pooling; the black box's
      predictions for L2X).
    config: a :class:`TrainConfig`.
    key: PRNG key (init, minibatches, Gumbel noise, random selections).
    weights: ``[N]`` per-example loss weights (instance weighting).
    params: start from these (else a fresh init).
    trainable: ``"all"``, ``"selector"`` or ``"predictor"``; the rest stays frozen (its
      updates are zeroed, so it does not change at all).
    random_selection: replace the selector by random selections (mitigation 1, stage 1).
  Returns:
    The trained parameters.
  """
  if trainable not in ("all", "selector", "predictor"):
    raise InputError(f"trainable must be 'all', 'selector' or 'predictor', not {trainable!r}.")
  models.check_k(config.k, mask)
  n = context.shape[0]
  k_init, k_loop = jax.random.split(key)
  if params is None:
    params = models.init(config.kind, context.shape[-1], num_classes, key=k_init,
                         width=config.width)
  labels = {name: ("train" if trainable in ("all", name) else "frozen") for name in params}
  tx = optax.multi_transform({"train": optax.adam(config.learning_rate),
                              "frozen": optax.set_to_zero()}, labels)
  opt_state = tx.init(params)
  w_all = jnp.ones((n,)) if weights is None else jnp.asarray(weights, jnp.float32)

  def loss_fn(p, idx, k):
    c, t, m, y, w = context[idx], tokens[idx], mask[idx], targets[idx], w_all[idx]
    sel = _random_selection(config.kind, m, config.k, k) if random_selection else None
    logits, _ = models.logits(config.kind, p, c, t, m, k=config.k, key=k,
                              temperature=config.temperature, train=True, weights=sel)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, y)
    return (ce * w).sum() / w.sum()

  @jax.jit
  def step(p, s, k):
    k_idx, k_noise = jax.random.split(k)
    idx = jax.random.randint(k_idx, (min(config.batch_size, n),), 0, n)
    loss, g = jax.value_and_grad(loss_fn)(p, idx, k_noise)
    updates, s = tx.update(g, s, p)
    return optax.apply_updates(p, updates), s, loss

  for i in range(config.steps):
    params, opt_state, _ = step(params, opt_state, jax.random.fold_in(k_loop, i))
  return params


def predict(params: models.Params, context, tokens, mask, config: TrainConfig
            ) -> tuple[np.ndarray, np.ndarray]:
  """``(predicted class [N], explanation weights [N, T])`` at test time (hard top-k for L2X)."""
  logits, weights = jax.jit(lambda p, c, t, m: models.logits(config.kind, p, c, t, m, k=config.k)
                            )(params, context, tokens, mask)
  return np.asarray(logits.argmax(-1)), np.asarray(weights)


def train_random_pretrained(context, tokens, mask, targets, config: TrainConfig, *,
                            key: PRNGKeyArray, num_classes: int = 2) -> models.Params:
  """Mitigation 1: predictor trained under random selections and frozen; then the selector."""
  k1, k2 = jax.random.split(key)
  params = train(context, tokens, mask, targets, config, key=k1, num_classes=num_classes,
                 trainable="predictor", random_selection=True)
  return train(context, tokens, mask, targets, config, key=k2, num_classes=num_classes,
               params=params, trainable="selector")


def fit_logistic(x: Float[Array, "N D"], y: Int[Array, " N"], num_classes: int = 2, *,
                 steps: int = 300, l2: float = 1e-3) -> dict[str, Any]:
  """A multinomial logistic regression fitted by full-batch Adam (deterministic)."""
  x = jnp.asarray(x, jnp.float32)
  p = {"w": jnp.zeros((x.shape[1], num_classes)), "b": jnp.zeros((num_classes,))}
  tx = optax.adam(0.05)
  s = tx.init(p)

  def loss(p):
    ce = optax.softmax_cross_entropy_with_integer_labels(x @ p["w"] + p["b"], y).mean()
    return ce + l2 * (p["w"] ** 2).sum()

  @jax.jit
  def step(p, s):
    g = jax.grad(loss)(p)
    u, s = tx.update(g, s, p)
    return optax.apply_updates(p, u), s

  for _ in range(steps):
    p, s = step(p, s)
  return p


def logistic_proba(p: dict[str, Any], x) -> np.ndarray:
  return np.asarray(jax.nn.softmax(jnp.asarray(x, jnp.float32) @ p["w"] + p["b"], -1))


def instance_weights(patterns: Float[Array, "N D"], labels: Int[Array, " N"], *,
                     num_classes: int = 2, clip: tuple[float, float] = (0.2, 5.0)) -> np.ndarray:
  """``P(y) / P(y | pattern)`` from an auxiliary classifier on the pattern, clipped, mean 1.

  Args:
    patterns: ``[N, D]`` what the auxiliary classifier sees (the selection over positions).
    labels: ``[N]`` the classes the interpretation model is trained on.
    clip: bounds on the raw weights (ours), before renormalising to mean 1.
  Returns:
    ``float32 [N]`` weights.
  """
  labels = np.asarray(labels)
  if clip[0] <= 0 or clip[0] > clip[1]:
    raise InputError(f"clip bounds {clip} must satisfy 0 < low <= high.")
  prior = np.bincount(labels, minlength=num_classes) / len(labels)
  aux = fit_logistic(patterns, jnp.asarray(labels), num_classes)
  cond = logistic_proba(aux, patterns)[np.arange(len(labels)), labels]
  w = np.clip(prior[labels] / np.maximum(cond, 1e-6), *clip)
  return (w / w.mean()).astype(np.float32)


def train_instance_weighted(context, tokens, mask, targets, config: TrainConfig, *,
                            key: PRNGKeyArray, num_classes: int = 2,
                            clip: tuple[float, float] = (0.2, 5.0)
                            ) -> tuple[models.Params, np.ndarray]:
  """Mitigation 2: train, weight examples by label-independence of the pattern, retrain.

  Returns:
    ``(params, weights [N])``.
  """
  k1, k2 = jax.random.split(key)
  first = train(context, tokens, mask, targets, config, key=k1, num_classes=num_classes)
  _, patterns = predict(first, context, tokens, mask, config)
  w = instance_weights(patterns, targets, num_classes=num_classes, clip=clip)
  return train(context, tokens, mask, targets, config, key=k2, num_classes=num_classes,
               weights=w), w


def shortcut_probe(train_patterns, train_labels, test_patterns, test_labels,
                   num_classes: int = 2) -> float:
  """Accuracy of a logistic probe predicting the label from selection patterns (held out)."""
  p = fit_logistic(train_patterns, jnp.asarray(train_labels), num_classes)
  pred = logistic_proba(p, test_patterns).argmax(-1)
  return float((pred == np.asarray(test_labels)).mean())
