"""Which backward passes the dense, conv and depthwise ops use: the XLA:CPU-tuned custom VJPs or plain autodiff.

The custom VJPs of `ops.dense`, `ops.conv` and `ops.depthwise` exist because XLA:CPU runs the autodiff form of
those gradients on slow kernels (see each module). On GPUs cuDNN/cuBLAS run the autodiff forms directly; the CPU
workarounds (optimization barriers, tap-by-tap loops) are not needed there, and add kernel launches to a step that
is launch-bound (benchmarks/README.md, "Results on one H100"). Exception: dilated convs keep their custom VJP on
every backend, because cuDNN's autodiff weight gradient of them took 3.3 ms per call (see `ops.conv.conv2d`).

`MGDN_OPS_GRADIENTS`: `auto` (default: custom on CPU, autodiff elsewhere), `custom` or `autodiff` (for A/B
benchmarks). Read at trace time, so it must be set before the first jit of a model. The dynamic filter, window
attention and GELU keep their custom VJPs everywhere: those save memory (no k²-sized or T×T residuals), not
just CPU time.
"""
import os

import jax

_ENV = 'MGDN_OPS_GRADIENTS'
_MODES = ('auto', 'custom', 'autodiff')


def use_custom_gradients() -> bool:
  """True when the dense/conv/depthwise ops should use their custom (XLA:CPU-tuned) VJPs."""
  mode = os.environ.get(_ENV, 'auto')
  if mode not in _MODES:
    raise ValueError(f'{_ENV}={mode!r}: must be one of {_MODES}')
  if mode == 'auto':
    return jax.default_backend() == 'cpu'
  return mode == 'custom'
