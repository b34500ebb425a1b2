"""The backend choices of `kernels`: XLA:CPU-tuned backward passes or plain autodiff; the PFF kernels.

The custom VJPs of `kernels.dense`, `kernels.conv` and `kernels.depthwise` exist because XLA:CPU runs the autodiff
form of those gradients on slow kernels (see each module). On GPUs cuDNN/cuBLAS run the autodiff forms directly;
the CPU workarounds (optimization barriers, tap-by-tap loops) are not needed there, and add kernel launches to a
step that is launch-bound (benchmarks/README.md, "Results on one H100"). Exception: dilated convs keep their custom
VJP under both choices, because cuDNN's autodiff weight gradient of them took 3.3 ms per call (`kernels.conv`).

The choice is a value, never read from the environment: layers hold it (`KernelConv.gradients`), the training
step sets it from `config.gradients`, whose 'auto' `mgdn_jax.platform` resolves from the platform of the mesh the
step is compiled for. Forward values do not depend on it.

`PFF_KERNELS`: how the PFF block's window attention, MLP branch and LCE run, 'xla' (the layers' own JAX ops) or
'pallas_tpu' (`kernels.attention_tpu`, `kernels.mlp_tpu`, `kernels.lce_tpu`), held by the layers as `pff_kernels`
and set by the training step from `config.pff_kernels` in the same way.
"""
from typing import Callable

TUNED_CPU = 'tuned_cpu'
AUTODIFF = 'autodiff'
GRADIENTS = (TUNED_CPU, AUTODIFF)

XLA = 'xla'
PALLAS_TPU = 'pallas_tpu'
PFF_KERNELS = (XLA, PALLAS_TPU)


def select(gradients: str, tuned: Callable, autodiff: Callable) -> Callable:
  """`tuned` (a custom-VJP function) for 'tuned_cpu', `autodiff` (the same forward, JAX's gradient) for 'autodiff'."""
  if gradients not in GRADIENTS:
    raise ValueError(f'gradients={gradients!r}: must be one of {GRADIENTS}')
  return tuned if gradients == TUNED_CPU else autodiff
