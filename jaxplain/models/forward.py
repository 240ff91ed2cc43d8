"""The pure model function: ``forward(params, batch, taps) -> Outputs``.

The encoder is authored in Flax NNX and split once into a static graph and a parameter pytree;
``make_forward(graphdef)`` returns the pure function the rest of the library calls. Forwards
compare and hash by their graph: the compiled programs that jaxplain caches per model (keyed by
``forward``; parameters are always arguments) are shared by every model of the same
architecture, so a model loaded again, or a fine-tuned copy, does not compile them again.
"""

from typing import Any

from flax import nnx

from jaxplain.contracts import Batch, Forward, Outputs, Params, Taps
from jaxplain.models.config import EncoderConfig
from jaxplain.models.encoder import Encoder


def _apply(graphdef: nnx.GraphDef, params: Params, batch: Batch, taps: Taps = Taps()) -> Outputs:
  return nnx.merge(graphdef, params)(batch, taps)


class _GraphForward:
  """``forward(params, batch, taps=Taps()) -> Outputs`` of one encoder graph.

  Equal to (and hashing as) any other forward of an equal graph: the same architecture, config
  and rules, whatever the parameters. A ``functools.partial`` would hash by identity, so each
  load of a model would be a new key of every jit cache and compile everything again (IG-50 on
  one text with the default model loaded again: 3.94 s, against 0.31 s now;
  ``experiments/benchmarks/results/bench_first_call.md``).
  """

  __slots__ = ("graphdef", "_hash", "__weakref__")
  __name__ = "forward"  # an instance's name: JAX names the programs it compiles after it

  def __init__(self, graphdef: nnx.GraphDef):
    self.graphdef = graphdef
    self._hash = hash((_GraphForward, graphdef))

  def __call__(self, params: Params, batch: Batch, taps: Taps = Taps()) -> Outputs:
    return _apply(self.graphdef, params, batch, taps)

  def __eq__(self, other: Any) -> bool:
    return (self is other or isinstance(other, _GraphForward)
            and self._hash == other._hash and self.graphdef == other.graphdef)

  def __hash__(self) -> int:
    return self._hash

  def __repr__(self) -> str:
    return "<jaxplain forward of an encoder graph (make_forward)>"


def make_forward(graphdef: nnx.GraphDef) -> Forward:
  """``forward(params, batch, taps=Taps()) -> Outputs`` for the encoder described by ``graphdef``.

  Forwards of equal graphs are equal, so jaxplain's compiled programs serve them all.
  """
  return _GraphForward(graphdef)


def init_encoder(config: EncoderConfig, seed: int = 0) -> tuple[Forward, Params]:
  """A randomly initialised encoder (tests, toy models): ``(forward, params)``."""
  graphdef, params = nnx.split(Encoder(config, rngs=nnx.Rngs(seed)))
  return make_forward(graphdef), params


def abstract_encoder(config: EncoderConfig) -> tuple[nnx.GraphDef, Params]:
  """The encoder's graph and parameter shapes, without allocating parameters."""
  return nnx.split(nnx.eval_shape(lambda: Encoder(config, rngs=nnx.Rngs(0))))
