"""NNX layers computed by the tuned kernels: `KernelConv` and `KernelLinear`.

They hold the parameters of `nnx.Conv` / `nnx.Linear` (same names, shapes and results, so checkpoints and the
PyTorch converter see stock layers) and compute them with `kernels.dense`, `kernels.conv2d` and
`kernels.depthwise_conv`, whose backward pass is chosen by the layer's `gradients` attribute ('tuned_cpu' |
'autodiff', see `kernels.dispatch`; `set_gradients` sets it on every such layer of a model).
"""
import jax
from flax import nnx

from mgdn_jax.kernels.conv import conv2d
from mgdn_jax.kernels.dense import dense
from mgdn_jax.kernels.depthwise import depthwise_conv
from mgdn_jax.kernels.dispatch import AUTODIFF, GRADIENTS


class KernelConv(nnx.Conv):
  """nnx.Conv computed by the kernels for plain (stride 1, 'same', biased) odd k×k convs.

  1×1 convs run as `kernels.dense` (token-wise matmul), depthwise ones (groups = in = out channels) as
  `kernels.depthwise_conv` (shift-accumulate), ungrouped k×k ones as `kernels.conv2d` (per-tap matmul kernel
  gradient). Any other conv (strided, otherwise grouped, unbiased, other padding) runs as nnx.Conv.
  """

  def __init__(self, *args, gradients: str = AUTODIFF, **kwargs):
    super().__init__(*args, **kwargs)
    self.gradients = gradients

  def __call__(self, x: jax.Array) -> jax.Array:
    kh, kw = self.kernel_size
    dil = self.kernel_dilation if isinstance(self.kernel_dilation, int) else self.kernel_dilation[0]
    same = dil * (kh - 1) // 2
    same_padding = ('SAME', ((same, same), (same, same))) + (('VALID',) if kh == 1 else ())
    plain = (kh == kw and kh % 2 == 1 and self.strides in (1, (1, 1)) and self.kernel_dilation in (dil, (dil, dil))
             and self.padding in same_padding and self.bias is not None)
    depthwise = self.feature_group_count == self.in_features == self.out_features and dil == 1
    if not plain or (self.feature_group_count != 1 and not depthwise):
      return super().__call__(x)
    dtype = self.dtype or x.dtype
    x, kernel, bias = x.astype(dtype), self.kernel[...].astype(dtype), self.bias[...].astype(dtype)
    if self.feature_group_count != 1:
      return depthwise_conv(x, kernel, bias, self.gradients)
    if kh == 1:
      return dense(x, kernel[0, 0], bias, self.gradients)
    return conv2d(x, kernel, bias, dil, self.gradients)


class KernelLinear(nnx.Linear):
  """nnx.Linear computed by `kernels.dense`."""

  def __init__(self, *args, gradients: str = AUTODIFF, **kwargs):
    super().__init__(*args, **kwargs)
    self.gradients = gradients

  def __call__(self, x: jax.Array) -> jax.Array:
    dtype = self.dtype or x.dtype
    bias = None if self.bias is None else self.bias[...].astype(dtype)
    return dense(x.astype(dtype), self.kernel[...].astype(dtype), bias, self.gradients)


def set_gradients(module: nnx.Module, gradients: str) -> None:
  """Sets the backward-pass choice of every KernelConv / KernelLinear in `module` (in place; a static attribute,
  so set it before tracing or on a module merged inside the traced function)."""
  if gradients not in GRADIENTS:
    raise ValueError(f'gradients={gradients!r}: must be one of {GRADIENTS}')
  module.set_attributes(KernelConv, KernelLinear, gradients=gradients, raise_if_not_found=False)
