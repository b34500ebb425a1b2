"""Guided depth super-resolution metric: RMSE in centimetres, as the official MGDN NYU v2 evaluation computes it.

The network sees min-max normalised depth; both prediction and ground truth are mapped back to metres with the
image's own (min, max) in float32, a 6-pixel border is cropped (NYU only), values are scaled to centimetres and
the RMSE is taken in float64.  The test-set number is the mean of the per-image RMSEs.
"""
import numpy as np


def _plane(x: np.ndarray, name: str) -> np.ndarray:
  """(H, W), (H, W, 1), (1, H, W) or (1, H, W, 1) -> (H, W)."""
  x = np.asarray(x)
  squeezed = np.squeeze(x)
  if squeezed.ndim != 2:
    raise ValueError(f'{name} must be a single depth map (H, W) (size-1 axes allowed), got shape {x.shape}')
  return squeezed


def gdsr_rmse_cm(pred: np.ndarray, gt: np.ndarray, depth_min: float, depth_max: float, crop: int = 6) -> float:
  """RMSE (cm) of a normalised depth prediction against the normalised ground truth.

  Args:
    pred: (H, W) network output in normalised units; clamped to [0, 1] first as the official code does.
    gt: (H, W) normalised ground-truth depth (d - min) / (max - min).
    depth_min, depth_max: the image's depth range in metres (undo the normalisation).
    crop: border pixels removed on every side (6 for NYU v2, 0 for none).
  """
  pred, gt = _plane(pred, 'pred'), _plane(gt, 'gt')
  if pred.shape != gt.shape:
    raise ValueError(f'shape mismatch: pred {pred.shape} vs gt {gt.shape}')
  if crop < 0 or 2 * crop >= min(pred.shape):
    raise ValueError(f'crop={crop} leaves nothing of a {pred.shape} map')
  lo = np.float32(np.asarray(depth_min).reshape(()))
  span = np.float32(np.asarray(depth_max).reshape(())) - lo
  pred_m = np.clip(pred.astype(np.float32), 0, 1) * span + lo
  gt_m = gt.astype(np.float32) * span + lo
  if crop:
    pred_m, gt_m = pred_m[crop:-crop, crop:-crop], gt_m[crop:-crop, crop:-crop]
  diff = (pred_m * np.float32(100)).astype(np.float64) - (gt_m * np.float32(100)).astype(np.float64)
  return float(np.sqrt(np.mean(diff * diff)))


def mean_rmse_cm(values) -> float:
  """Test-set RMSE: the mean of the per-image values."""
  values = list(values)
  if not values:
    raise ValueError('mean_rmse_cm got no per-image values')
  return float(np.mean(values))
