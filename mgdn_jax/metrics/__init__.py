"""The paper's evaluation metrics, computed as the reference toolkits compute them (numpy / scipy, host side).

  * MEF / MFF (`evaluate_fusion`): MEFB and VIFB MATLAB conventions, checked against Octave golden values.
  * HDR (`hdr_metrics`): PSNR / SSIM linear and mu-law, as the official scikit-image validation.
  * GDSR (`gdsr_rmse_cm`): RMSE in centimetres after de-normalisation, 6-pixel border crop.
  * `psnr`, `ssim`: plain image-quality metrics for tasks with a ground truth (training-time validation).
"""
from mgdn_jax.metrics.common import matlab_round
from mgdn_jax.metrics.common import quantize_uint8
from mgdn_jax.metrics.common import rgb2gray
from mgdn_jax.metrics.fusion import evaluate_fusion
from mgdn_jax.metrics.fusion import HIGHER_IS_BETTER
from mgdn_jax.metrics.fusion import METRIC_KEYS
from mgdn_jax.metrics.gdsr import gdsr_rmse_cm
from mgdn_jax.metrics.gdsr import mean_rmse_cm
from mgdn_jax.metrics.hdr import hdr_metrics
from mgdn_jax.metrics.hdr import mu_tonemap
from mgdn_jax.metrics.hdr import psnr
from mgdn_jax.metrics.hdr import ssim

__all__ = [
    'evaluate_fusion', 'gdsr_rmse_cm', 'hdr_metrics', 'HIGHER_IS_BETTER', 'matlab_round', 'mean_rmse_cm',
    'METRIC_KEYS', 'mu_tonemap', 'psnr', 'quantize_uint8', 'rgb2gray', 'ssim',
]
