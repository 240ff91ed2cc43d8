r"""Training DiffMask gates with optax: one jit-compiled step, checkpoints, model selection.

Each step samples one hidden-state index ``ell`` (uniform over ``0..L+1``, or over
``config.layers``) and gate noise, runs the frozen model once unmasked and once masked, and

1. descends the Lagrangian in the probes and baseline with Lookahead(k=6, alpha=0.5) over
   centred RMSprop (decay 0.99, eps 1e-8 outside the square root as in PyTorch), learning rates
   ``3e-4`` (probes) and ``1e-3`` (baseline) after a linear warm-up;
2. draws a *fresh* layer and noise (PyTorch Lightning called the authors' ``training_step`` once
   per optimiser) and ascends the Lagrangian in that layer's multiplier with Lookahead over plain
   RMSprop, lr ``0.3``, then clips it to ``[0, 200]``.

**Per-layer optimiser state.** Only the sampled index's probe (input variant: probes ``0..ell``)
and multiplier get gradients. The authors set every ``.grad`` to ``None`` after each step, so
PyTorch's RMSprop and timm's Lookahead leave the other layers' states untouched; optax would decay
them with zero gradients. With ``skip_untouched=True`` (default) the step keeps parameters and
optimiser state of untouched layers bit-for-bit (every per-layer leaf has the layer on axis 0);
``False`` is plain optax.

**Model selection** (authors' rule): every ``eval_every`` steps the gates are evaluated per index
on the validation data; among evaluations whose mean KL is ``<= eps_valid`` and mean agreement
``>= acc_valid`` the one with the lowest mean expected L0 is kept in ``<out_dir>/gates``.

**Resuming.** The whole state is saved with orbax every ``checkpoint_every`` steps (and when
interrupted). The batch order and every random draw depend only on ``seed`` and the step number,
so a resumed run continues exactly as an uninterrupted one.
"""

import dataclasses
import functools
import math
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxplain._compile import jit as _jit
from jaxplain._progress import progress_bar
from jaxplain.attribution.diffmask import checkpoint as ckpt
from jaxplain.attribution.diffmask import objective as obj
from jaxplain.attribution.diffmask.probes import VARIANTS, Gates, init_gates
from jaxplain.contracts import Batch, Forward, Params
from jaxplain.errors import InputError

_EMA = 0.9  # running statistics per layer (authors)


@dataclasses.dataclass(frozen=True)
class DiffMaskConfig:
  """Hyperparameters of DiffMask training; defaults are the authors' SST settings.

  Attributes:
    variant: ``"input"`` (gates on word embeddings) or ``"hidden"`` (on the state at a layer).
    margin: KL budget ``m`` (SST 0.1, toy 0.05, SQuAD 1.0). Scale it to the model: 0.1 is a
      budget for a 5-class model; for jaxplain's binary sentiment model, whose all-masked
      prediction is only ~0.27 nats away on average, 0.02 kept agreement >= 0.90 where 0.1 did
      not (our choice, ``experiments/diffmask_sentiment/README.md``).
    penalty: ``"log_l0"`` (authors' code: mean log keep probability) or ``"l0"`` (paper). The
      log-L0 pull on a shut gate tends to 1 while the KL gives it no gradient, so gates that shut
      early stay shut; with ``"l0"`` the pull fades and the gates trained on the binary
      sentiment model did not collapse (same README).
    baseline: ``"learned"`` (paper; authors' ``--placeholder``) or ``"zero"`` (authors' default).
    baseline_init: ``"auto"`` = ``[MASK]`` embedding for input gates (the batch mean word
      embedding when no ``[MASK]`` id is known) and Xavier-normal per layer for hidden gates
      (authors); ``"mean"`` = masked mean state of the first batch (the authors' toy notebook);
      ``"xavier"``.
    probe_width: probe hidden units; ``None`` = ``hidden_size // 4``.
    batch_size, steps: examples per step and total steps.
    learning_rate, baseline_learning_rate, lambda_learning_rate: 3e-4, 1e-3, 0.3. Raise the
      probe rate with care: RMSprop moves every probe weight by about ``10 x lr`` in its first
      steps while a slack constraint drives ``lambda`` to 0, so a large rate (3e-2 on a 4-d toy,
      3e-3 on MiniLM's 768-d probe inputs) shuts every gate within ~20 steps. A Hard Concrete
      gate that is exactly 0 in every sample gets no gradient from the KL (the clip), while the
      log-L0 penalty keeps pushing it, so such gates never reopen (keep probabilities ~1e-5).
    warmup_steps: linear warm-up of the gate learning rates (SST 1200, toy 200).
    lookahead_steps, lookahead_alpha: Lookahead ``k = 6``, ``alpha = 0.5``.
    rms_decay, rms_eps: RMSprop ``alpha = 0.99``, ``eps = 1e-8`` (outside the square root).
    lambda_init, lambda_max: multipliers start at 1 and stay in ``[0, 200]``.
    layers: indices ``ell`` to train (``None``: all ``0..L+1``).
    stop_train: the authors' ``--stop_train``: sample layers that are done (running agreement
      > 0.75, expected L0 < 0.1, > 100 steps) with weight 0.1.
    skip_untouched: keep untouched layers' optimiser state frozen (PyTorch semantics).
    eval_every, eval_size: validation period (steps) and most validation examples used.
    checkpoint_every, keep_checkpoints: orbax checkpoint period and how many to keep.
    log_every: steps between metric read-backs (progress bar and history).
    eps_valid, acc_valid: model selection thresholds on validation KL and agreement (0.8, 0.75).
    seed: everything random (init, batch order, layers, gate noise) derives from it.
    prng_impl: JAX PRNG implementation of the training keys. ``"rbg"`` (default) compiles the
      step several times faster on CPU than ``"threefry2x32"``; both are deterministic given
      ``seed`` on one backend.
  """

  variant: str = "input"
  margin: float = 0.1
  penalty: str = "log_l0"
  baseline: str = "learned"
  baseline_init: str = "auto"
  probe_width: int | None = None
  batch_size: int = 64
  steps: int = 2000
  learning_rate: float = 3e-4
  baseline_learning_rate: float = 1e-3
  lambda_learning_rate: float = 0.3
  warmup_steps: int = 1200
  lookahead_steps: int = 6
  lookahead_alpha: float = 0.5
  rms_decay: float = 0.99
  rms_eps: float = 1e-8
  lambda_init: float = 1.0
  lambda_max: float = obj.LAMBDA_MAX
  layers: tuple[int, ...] | None = None
  stop_train: bool = False
  skip_untouched: bool = True
  eval_every: int = 500
  eval_size: int = 1024
  checkpoint_every: int = 500
  keep_checkpoints: int = 2
  log_every: int = 25
  eps_valid: float = 0.8
  acc_valid: float = 0.75
  seed: int = 0
  prng_impl: str = "rbg"

  def validate(self, num_states: int) -> None:
    """Raises :class:`InputError` for settings that cannot train."""
    obj.check_margin(self.margin)
    if self.variant not in VARIANTS:
      raise InputError(f"variant must be 'input' or 'hidden', got {self.variant!r}.")
    if self.penalty not in obj.PENALTIES:
      raise InputError(f"penalty must be one of {obj.PENALTIES}, got {self.penalty!r}.")
    if self.baseline not in ("learned", "zero") or self.baseline_init not in (
        "auto", "mean", "xavier"):
      raise InputError("baseline must be 'learned' or 'zero' and baseline_init 'auto', 'mean' "
                       f"or 'xavier'; got {self.baseline!r}, {self.baseline_init!r}.")
    if self.steps < 1 or self.batch_size < 1:
      raise InputError("steps and batch_size must be positive.")
    if self.layers is not None and (not self.layers or
                                    any(not 0 <= k < num_states for k in self.layers)):
      raise InputError(f"layers must be indices in 0..{num_states - 1} (0 = word embeddings, "
                       f"k = Outputs.hidden[k-1]); got {self.layers}.")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class TrainState:
  """Everything that changes during training (a pytree; saved whole by orbax)."""

  gates: optax.LookaheadParams     # fast/slow Gates
  gate_opt: Any
  lam: optax.LookaheadParams       # fast/slow [K]
  lam_opt: Any
  stats: dict[str, jax.Array]      # running agreement, l0, steps per layer [K]
  step: jax.Array


def _gate_tx(cfg: DiffMaskConfig) -> optax.GradientTransformation:
  def rms(lr):
    sched = optax.linear_schedule(0.0, lr, cfg.warmup_steps) if cfg.warmup_steps else lr
    return optax.rmsprop(sched, decay=cfg.rms_decay, eps=cfg.rms_eps, centered=True,
                         eps_in_sqrt=False)
  base = rms(cfg.baseline_learning_rate) if cfg.baseline == "learned" else optax.set_to_zero()
  labels = lambda g: dataclasses.replace(g, probes=jax.tree.map(lambda _: "probes", g.probes),
                                         baseline="baseline")
  inner = optax.multi_transform({"probes": rms(cfg.learning_rate), "baseline": base}, labels)
  return optax.lookahead(inner, cfg.lookahead_steps, cfg.lookahead_alpha)


def _lambda_tx(cfg: DiffMaskConfig) -> optax.GradientTransformation:
  inner = optax.rmsprop(cfg.lambda_learning_rate, decay=cfg.rms_decay, eps=cfg.rms_eps,
                        eps_in_sqrt=False)
  return optax.lookahead(inner, cfg.lookahead_steps, cfg.lookahead_alpha)


def select_layers(touched: jax.Array, new: Any, old: Any) -> Any:
  """Per-layer leaves (leading axis ``K``) of ``new`` where ``touched``, else of ``old``."""
  k = touched.shape[0]
  def pick(n, o):
    if jnp.ndim(n) >= 1 and jnp.shape(n)[0] == k:
      return jnp.where(touched.reshape((k,) + (1,) * (jnp.ndim(n) - 1)), n, o)
    return n
  return jax.tree.map(pick, new, old)


def lambda_step(lam: optax.LookaheadParams, lam_opt: Any, constraint: jax.Array,
                layer: jax.Array, cfg: DiffMaskConfig,
                tx: optax.GradientTransformation | None = None):
  """One ascent step of the multiplier of ``layer`` given the batch's mean ``KL - margin``.

  A violated constraint (``constraint > 0``) raises ``lam[layer]``, a slack one lowers it; the
  result is clipped to ``[0, lambda_max]`` and, with ``skip_untouched``, other layers' values
  and optimiser states are left as they were.

  Returns:
    ``(lam, lam_opt)``.
  """
  tx = tx or _lambda_tx(cfg)
  k = lam.fast.shape[0]
  updates, new_opt = tx.update(obj.lambda_gradient(constraint, layer, k), lam_opt, lam)
  new = optax.apply_updates(lam, updates)
  new = jax.tree.map(lambda x: obj.clip_lambda(x, cfg.lambda_max), new)
  if cfg.skip_untouched:
    touched = jnp.arange(k) == layer
    new, new_opt = select_layers(touched, new, lam), select_layers(touched, new_opt, lam_opt)
  return new, new_opt


def init_state(gates: Gates, cfg: DiffMaskConfig) -> TrainState:
  """The training state at step 0 for initial ``gates``."""
  k = gates.num_states
  g = optax.LookaheadParams.init_synced(gates)
  lam = optax.LookaheadParams.init_synced(jnp.full((k,), cfg.lambda_init, jnp.float32))
  stats = {"agreement": jnp.zeros((k,)), "l0": jnp.ones((k,)), "steps": jnp.zeros((k,))}
  return TrainState(g, _gate_tx(cfg).init(g), lam, _lambda_tx(cfg).init(lam), stats,
                    jnp.zeros((), jnp.int32))


def _layer_logits(stats, cfg: DiffMaskConfig, k: int) -> jax.Array:
  allowed = np.zeros((k,), bool)
  allowed[list(cfg.layers) if cfg.layers is not None else slice(None)] = True
  w = jnp.where(jnp.asarray(allowed), 1.0, 0.0)
  if cfg.stop_train:
    done = (stats["agreement"] > 0.75) & (stats["l0"] < 0.1) & (stats["steps"] > 100)
    w = jnp.where(done, 0.1 * w, w)
  return jnp.log(w)


_RUN_ONLY = dict(steps=1, eval_every=1, eval_size=1, checkpoint_every=1, keep_checkpoints=1,
                 log_every=1, eps_valid=0.0, acc_valid=0.0, seed=0, prng_impl="rbg",
                 lambda_init=1.0, baseline_init="auto", probe_width=None, batch_size=1)


def step_config(cfg: DiffMaskConfig) -> DiffMaskConfig:
  """``cfg`` with the fields that do not enter the compiled step set to fixed values.

  Run length, logging, checkpointing, model selection, seeds and initial values change nothing
  in the step's program (shapes come from the arrays), so runs that differ only in them share
  one compiled step.
  """
  return dataclasses.replace(cfg, **_RUN_ONLY)


def make_train_step(forward: Forward, cfg: DiffMaskConfig):
  """The jit-compiled ``step(state, params, batch, key) -> (state, metrics)`` (cached)."""
  return _make_train_step(forward, step_config(cfg))


@functools.cache
def _make_train_step(forward: Forward, cfg: DiffMaskConfig):
  gate_tx, lam_tx = _gate_tx(cfg), _lambda_tx(cfg)

  def step(state: TrainState, params: Params, batch: Batch, key):
    gates = state.gates.fast
    k = gates.num_states
    k_l1, k_z1, k_l2, k_z2 = jax.random.split(key, 4)
    out, states = obj.model_states(forward, params, batch, gates.width)
    logits0 = jax.lax.stop_gradient(out.logits)
    layer_logits = _layer_logits(state.stats, cfg, k)
    ell = jax.random.categorical(k_l1, layer_logits)

    def loss_fn(g):
      logits, lp, _ = obj.masked_logits(forward, params, batch, g, states, ell, k_z1)
      return obj.lagrangian(logits0, logits, lp, batch.attention_mask, state.lam.fast[ell],
                            cfg.margin, cfg.penalty)
    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(gates)
    updates, gate_opt = gate_tx.update(grads, state.gate_opt, state.gates)
    new_gates = optax.apply_updates(state.gates, updates)
    if cfg.skip_untouched:
      idx = jnp.arange(k)
      touched = idx <= ell if cfg.variant == "input" else idx == ell
      new_gates = select_layers(touched, new_gates, state.gates)
      gate_opt = select_layers(touched, gate_opt, state.gate_opt)

    ell2 = jax.random.categorical(k_l2, layer_logits)
    logits2, _, _ = obj.masked_logits(forward, params, batch, new_gates.fast, states, ell2, k_z2)
    constraint2 = jnp.mean(obj.kl_divergence(logits0, logits2)) - cfg.margin
    lam, lam_opt = lambda_step(state.lam, state.lam_opt, constraint2, ell2, cfg, lam_tx)
    one = jax.nn.one_hot(ell, k, dtype=jnp.float32)
    ema = lambda old, new: old * (1 - one) + one * (_EMA * old + (1 - _EMA) * new)
    stats = {"agreement": ema(state.stats["agreement"], aux["agreement"]),
             "l0": ema(state.stats["l0"], aux["l0"]), "steps": state.stats["steps"] + one}
    metrics = {"loss": loss, "layer": ell, "lambda": lam.fast[ell], **aux}
    return TrainState(new_gates, gate_opt, lam, lam_opt, stats, state.step + 1), metrics

  return _jit(step, donate_argnums=())


def make_eval_step(forward: Forward, cfg: DiffMaskConfig):
  """``evaluate(gates, params, batch, layer, key) -> {kl, l0, agreement}``, jit-compiled."""
  return _make_eval_step(forward, cfg.margin, cfg.penalty)


@functools.cache
def _make_eval_step(forward: Forward, margin: float, penalty: str):
  cfg = DiffMaskConfig(margin=margin, penalty=penalty)

  def evaluate(gates: Gates, params, batch: Batch, layer, key):
    out, states = obj.model_states(forward, params, batch, gates.width)
    logits, lp, _ = obj.masked_logits(forward, params, batch, gates, states, layer, key)
    _, aux = obj.lagrangian(out.logits, logits, lp, batch.attention_mask, jnp.float32(0.0),
                            cfg.margin, cfg.penalty)
    return {n: aux[n] for n in ("kl", "l0", "agreement")}
  return _jit(evaluate)


def evaluate_gates(forward: Forward, params: Params, gates: Gates, data: Batch,
                   cfg: DiffMaskConfig, key) -> dict[str, list[float]]:
  """Validation metrics per index ``k``: mean KL, expected L0 and agreement (lists of ``K``).

  Gates are sampled as in training (the authors' validation is stochastic), with fixed ``key``.
  """
  fn = make_eval_step(forward, cfg)
  n = len(data)
  bs = min(cfg.batch_size, n)
  res = {"kl": [], "l0": [], "agreement": []}
  for layer in range(gates.num_states):
    acc = {m: 0.0 for m in res}
    count = 0
    for i, start in enumerate(range(0, n - bs + 1, bs)):
      part = data.take(slice(start, start + bs))
      vals = jax.device_get(fn(gates, params, part, jnp.int32(layer),
                               jax.random.fold_in(jax.random.fold_in(key, layer), i)))
      for m in res:
        acc[m] += float(vals[m])
      count += 1
    for m in res:
      res[m].append(acc[m] / max(count, 1))
  return res


@dataclasses.dataclass
class TrainResult:
  """What :func:`train_gates` returns.

  Attributes:
    gates: the selected gates (authors' rule), or the last ones when no evaluation met it.
    last_gates: the gates after the last step.
    state: the final :class:`TrainState`.
    history: logged training metrics (one dict per ``log_every`` steps).
    evaluations: validation results (one dict per evaluation, with per-layer lists).
    best: the selected evaluation (``None`` when none met the thresholds).
    out_dir: where gates and checkpoints were written (``None``: nothing written).
  """

  gates: Gates
  last_gates: Gates
  state: TrainState
  history: list[dict[str, float]]
  evaluations: list[dict[str, Any]]
  best: dict[str, Any] | None
  out_dir: str | None


def model_shape(forward: Forward, params: Params, batch: Batch) -> tuple[int, int, int]:
  """``(L, H, E)`` of the model behind ``forward`` (shape evaluation only, no compute)."""
  from jaxplain.contracts import Taps  # pylint: disable=g-import-not-at-top
  out = jax.eval_shape(lambda p, b: forward(p, b, Taps()), params, batch.take(slice(0, 1)))
  if out.logits.ndim != 2:
    raise InputError(f"DiffMask needs a sequence-classification head with logits [B, C]; this "
                     f"model returns logits of shape {out.logits.shape}.")
  return out.hidden.shape[0] - 1, out.hidden.shape[-1], out.word_embeddings.shape[-1]


def _resolve_model(model_or_forward, params):
  if hasattr(model_or_forward, "forward") and hasattr(model_or_forward, "params"):
    tok = getattr(model_or_forward, "tokenizer", None)
    return (model_or_forward.forward,
            model_or_forward.params if params is None else params,
            getattr(tok, "mask_token_id", None))
  if not callable(model_or_forward) or params is None:
    raise InputError("pass a jaxplain Model, or a forward function together with params=.")
  return model_or_forward, params, None


@functools.cache
def _mean_states(forward: Forward, width: int):
  """``jit((params, batch) -> [K, W])``: each state's mean over the batch's real tokens."""
  def run(params, batch):
    _, states = obj.model_states(forward, params, batch, width)
    m = (batch.attention_mask > 0).astype(jnp.float32)[None, ..., None]
    return jnp.sum(states * m, (1, 2)) / jnp.maximum(jnp.sum(m, (1, 2)), 1.0)
  return _jit(run)


@functools.cache
def _mask_embedding(forward: Forward):
  """``jit((params, token_id) -> [E])``: the word embedding of one token (``[MASK]``)."""
  from jaxplain.attribution._common import embed  # pylint: disable=g-import-not-at-top

  def run(params, token_id):
    one = Batch(jnp.full((1, 1), token_id, jnp.int32), jnp.ones((1, 1), jnp.int32),
                jnp.zeros((1, 1), jnp.int32))
    return embed(forward, params, one)[0, 0]
  return _jit(run)


def _initial_gates(forward, params, first: Batch, cfg: DiffMaskConfig, shape, mask_token_id,
                   key) -> Gates:
  num_layers, hidden, emb = shape
  k, w = num_layers + 2, max(hidden, emb)
  baseline = None
  if cfg.baseline == "zero":
    baseline = jnp.zeros((1, emb) if cfg.variant == "input" else (k, w))
  elif cfg.variant == "input" and cfg.baseline_init == "auto" and mask_token_id is not None:
    baseline = _mask_embedding(forward)(params, jnp.int32(mask_token_id))[None]
  elif cfg.baseline_init == "mean" or (cfg.variant == "input" and cfg.baseline_init == "auto"):
    mean = _mean_states(forward, w)(params, first.device_part())                 # [K W]
    baseline = mean[:1, :emb] if cfg.variant == "input" else mean
  return init_gates(key, variant=cfg.variant, num_layers=num_layers, hidden_size=hidden,
                    embedding_size=emb, probe_width=cfg.probe_width, baseline=baseline)


def _progress(enabled: bool, total: int, start: int):
  return progress_bar("diffmask", total, start, suffix="{task.fields[info]}",
                      info="") if enabled else None


def train_gates(model_or_forward: Any, data: Batch, config: DiffMaskConfig | None = None,
                out_dir: str | os.PathLike | None = None, *, params: Params | None = None,
                valid: Batch | None = None, mask_token_id: int | None = None,
                progress: bool = True, stop_after: int | None = None) -> TrainResult:
  """Trains DiffMask gates for a model on ``data``; resumes from ``out_dir`` if it holds a run.

  Args:
    model_or_forward: a :class:`jaxplain.models.Model`, or ``forward(params, batch, taps)``
      (then pass ``params=``). The model is frozen.
    data: the training examples, one padded :class:`Batch` (``[N, T]``); batches of
      ``config.batch_size`` are drawn from it in a seed-determined order (last partial batch of
      each epoch dropped, so every step has one shape).
    config: :class:`DiffMaskConfig` (default: the authors' SST settings).
    out_dir: directory for ``checkpoints/`` (resumable training state) and ``gates/`` (the
      selected gates, read by :func:`~jaxplain.attribution.diffmask.explain`); ``None`` writes
      nothing.
    params: model parameters when ``model_or_forward`` is a function.
    valid: validation examples for model selection (default: the first ``eval_size``
      training examples).
    mask_token_id: id of ``[MASK]`` for the input variant's baseline (read from a Model's
      tokenizer when omitted).
    progress: show a rich progress bar.
    stop_after: stop (with a checkpoint) once this many steps are done, as if interrupted;
      calling again with the same arguments finishes the run identically.
  Returns:
    :class:`TrainResult`.
  Raises:
    InputError: bad configuration (``margin <= 0``...), an unwritable ``out_dir``, or an
      ``out_dir`` holding a run for another model or configuration.
  Example:
    >>> res = train_gates(model, batch, DiffMaskConfig(steps=100), "runs/dm")  # doctest: +SKIP
    >>> scores = explain(model, batch, res.out_dir)                           # doctest: +SKIP
  """
  cfg = config or DiffMaskConfig()
  obj.check_margin(cfg.margin)
  forward, params, tok_mask = _resolve_model(model_or_forward, params)
  mask_token_id = tok_mask if mask_token_id is None else mask_token_id
  host = jax.tree.map(np.asarray, data.device_part())
  n = len(host)
  if n == 0:
    raise InputError("the DiffMask training data is empty; pass at least one example.")
  shape = model_shape(forward, params, data.device_part())
  cfg.validate(shape[0] + 2)
  bs = min(cfg.batch_size, n)
  per_epoch = n // bs
  valid = (valid.device_part() if valid is not None else data.device_part()).take(
      slice(0, cfg.eval_size))
  root = jax.random.key(cfg.seed, impl=cfg.prng_impl)
  k_init, k_data, k_steps, k_eval = (jax.random.fold_in(root, i) for i in range(4))
  take = lambda idx: jax.tree.map(lambda x: jnp.asarray(x[idx]), host)

  first = take(np.arange(bs))
  gates0 = _initial_gates(forward, params, first, cfg, shape, mask_token_id, k_init)
  state = init_state(gates0, cfg)
  record = {"history": [], "evaluations": [], "best": None}
  manager = None
  signature = {"variant": cfg.variant, "margin": cfg.margin, "penalty": cfg.penalty,
               "batch_size": cfg.batch_size, "seed": cfg.seed, "baseline": cfg.baseline,
               "model_shape": list(shape), "examples": n}
  if out_dir is not None:
    out_dir = os.path.abspath(os.fspath(out_dir))
    try:
      os.makedirs(out_dir, exist_ok=True)
      probe = os.path.join(out_dir, ".write_test")
      open(probe, "w").close()
      os.remove(probe)
    except OSError as e:
      raise InputError(f"cannot write to the DiffMask output directory {out_dir} "
                       f"({e.strerror or e}); choose a writable directory.") from None
    manager = ckpt.checkpoint_manager(os.path.join(out_dir, "checkpoints"), cfg.keep_checkpoints)
    restored = ckpt.restore_state(manager, state)
    if restored is not None:
      _, state, record = restored
      if record.get("signature") != signature:
        raise InputError(f"{out_dir} holds a DiffMask run for another model or configuration "
                         f"({record.get('signature')}); use a new out_dir or delete it.")
  record["signature"] = signature
  record["config"] = dataclasses.asdict(cfg)

  step_fn = make_train_step(forward, cfg)
  start = int(state.step)
  end = cfg.steps if stop_after is None else min(cfg.steps, stop_after)
  bar = _progress(progress, cfg.steps, start)
  perm_cache: dict[int, np.ndarray] = {}

  def batch_at(step):
    epoch, i = divmod(step, per_epoch)
    if epoch not in perm_cache:
      perm_cache.clear()
      perm_cache[epoch] = np.asarray(jax.random.permutation(jax.random.fold_in(k_data, epoch), n))
    return take(perm_cache[epoch][i * bs:(i + 1) * bs])

  def save(step):
    if manager is not None:
      ckpt.save_state(manager, step, state, record)

  def evaluate(step):
    g = state.gates.fast
    res = evaluate_gates(forward, params, g, valid, cfg, jax.random.fold_in(k_eval, step))
    ks = list(cfg.layers) if cfg.layers is not None else list(range(g.num_states))
    summary = {m: float(np.mean([res[m][k] for k in ks])) for m in res}
    entry = {"step": step, **summary, "per_layer": res,
             "lambda": [float(x) for x in jax.device_get(state.lam.fast)]}
    record["evaluations"].append(entry)
    ok = summary["kl"] <= cfg.eps_valid and summary["agreement"] >= cfg.acc_valid
    if ok and (record["best"] is None or summary["l0"] < record["best"]["l0"]):
      record["best"] = {k: v for k, v in entry.items() if k != "per_layer"}
      if out_dir is not None:
        ckpt.save_gates(os.path.join(out_dir, "gates"), g)
      record["_best_gates_in_memory"] = True
    return entry

  best_gates = None
  try:
    for step in range(start, end):
      state, metrics = step_fn(state, params, batch_at(step), jax.random.fold_in(k_steps, step))
      done = step + 1
      if done % cfg.log_every == 0 or done == end:
        m = {k: float(v) for k, v in jax.device_get(metrics).items()}
        record["history"].append({"step": done, **m})
        if bar is not None:
          bar.update(bar.task_ids[0], completed=done, info=(
              f"l{int(m['layer'])} L0 {m['l0']:.2f} KL {m['kl']:.3f} agree {m['agreement']:.2f} "
              f"lam {m['lambda']:.2f}"))
      if done % cfg.eval_every == 0 or done == cfg.steps:
        evaluate(done)
        if record["best"] is not None and record["best"]["step"] == done:
          best_gates = state.gates.fast
      if done % cfg.checkpoint_every == 0 or done == end:
        save(done)
  except KeyboardInterrupt:
    save(int(state.step))
    raise
  finally:
    if bar is not None:
      bar.stop()
  record.pop("_best_gates_in_memory", None)
  last = state.gates.fast
  if best_gates is None:
    if record["best"] is not None and out_dir is not None:
      best_gates = ckpt.load_gates(os.path.join(out_dir, "gates"))
    else:
      best_gates = last
      if out_dir is not None and int(state.step) >= cfg.steps:
        ckpt.save_gates(os.path.join(out_dir, "gates"), last)
  if out_dir is not None and int(state.step) >= cfg.steps:
    ckpt.save_gates(os.path.join(out_dir, "last_gates"), last)
  return TrainResult(best_gates, last, state, record["history"], record["evaluations"],
                     record["best"], out_dir)
