"""Evaluation during training: full-size test images through the (EMA) model, task metrics, image panels.

Each eval example (batch 1, any size) runs on one local device (replicating it over the mesh would only repeat the
same work on every device); the model pads to its window size internally and crops back. Scalars per eval set are
means over its images, named '<dataset>/<metric>' (e.g. 'mefb/MEF_SSIM', 'kalantari/psnr_mu', 'nyu_gdsr/rmse_cm').
"""

import collections
import json
import os
from typing import Any, Callable

import jax
import ml_collections
import numpy as np
from flax import nnx

from mgdn_jax import tonemap

# ImageNet statistics of the GDSR RGB guide (data module's normalisation), to show it as a photo.
_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def dataset_name(spec: str) -> str:
  """'mefb:test' → 'mefb'; 'mgdn_demo/mef:test' → 'mgdn_demo/mef'."""
  return spec.split(':')[0]


def make_predict_fn(gd_model: Any, num_streams: int) -> Callable[..., jax.Array]:
  """Jitted `predict(params, batch) → fused (1, H, W, C_out)`; one compile per image size."""

  @jax.jit
  def predict(params, streams):
    model = nnx.merge(gd_model, params)
    fused, _ = model(*streams, train=False, rng=None)
    return fused

  def run(params, example):
    device = jax.tree.leaves(params)[0].devices().pop()
    streams = [jax.device_put(np.asarray(example[f'stream_{k}'], np.float32), device) for k in range(num_streams)]
    return np.asarray(predict(params, streams))

  return run


def local_copy(params: Any) -> Any:
  """One device's copy of replicated params (works for multi-process global arrays too)."""
  return jax.tree.map(lambda x: x.addressable_data(0), params)


def _to_uint8(x: np.ndarray) -> np.ndarray:
  return np.round(np.clip(x, 0., 1.) * 255.).astype(np.uint8)


def _rgb(x: np.ndarray) -> np.ndarray:
  return np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x[..., :3]


def display_panel(config: ml_collections.ConfigDict, example: dict, fused: np.ndarray) -> np.ndarray:
  """inputs | fused | target as one uint8 (H, W·n, 3) image (HDR: μ-law tonemapped; GDSR: depth as gray)."""
  views = []
  for k in range(config.model.num_streams):
    s = np.asarray(example[f'stream_{k}'][0], np.float32)
    if config.task == 'gdsr' and k == 0:
      s = s * _IMAGENET_STD + _IMAGENET_MEAN
    views.append(_rgb(s))
  out = [fused[0]] + ([np.asarray(example['target'][0], np.float32)] if 'target' in example else [])
  if config.task == 'hdr':
    out = [tonemap.mu_law(np.clip(o, 0., 1.), config.mu) for o in out]
  views += [_rgb(o) for o in out]
  return np.concatenate([_to_uint8(v) for v in views], axis=1)


def example_metrics(config: ml_collections.ConfigDict, example: dict, fused: np.ndarray) -> dict[str, float]:
  """Task metrics of one image (host numpy; the metrics module's functions)."""
  from mgdn_jax import metrics  # pylint: disable=g-import-not-at-top
  pred = fused[0].astype(np.float32)
  out = {}
  if 'target' in example:
    gt = np.asarray(example['target'][0], np.float32)
    if config.task == 'hdr':
      out.update({k: float(v) for k, v in metrics.hdr_metrics(np.clip(pred, 0, 1), gt).items()})
    elif config.task == 'gdsr':
      out['rmse_cm'] = float(metrics.gdsr_rmse_cm(pred[..., 0], gt[..., 0], float(example['depth_min'][0]),
                                                  float(example['depth_max'][0])))
    else:
      out['psnr'] = float(metrics.psnr(np.clip(pred, 0, 1), gt, data_range=1.))
      out['ssim'] = float(metrics.ssim(np.clip(pred, 0, 1), gt, data_range=1.))
  no_ref = config.task in ('mef', 'mff') and (config.no_reference_metrics or 'target' not in example)
  if no_ref:
    sources = [_to_uint8(np.asarray(example[f'stream_{k}'][0])) for k in range(config.model.num_streams)]
    scores = metrics.evaluate_fusion(sources, _to_uint8(pred), config.task)
    out.update({k: float(v) for k, v in scores.items()})
  return out


def evaluate(config: ml_collections.ConfigDict, params: Any, predict: Callable[..., np.ndarray],
             ) -> tuple[dict[str, float], dict[str, np.ndarray]]:
  """Means of the task metrics over each eval set, and up to `num_eval_images` panels per set."""
  from data_pipelines import input_pipeline  # pylint: disable=g-import-not-at-top
  scalars, images = {}, {}
  for spec in config.data.eval_datasets:
    name = dataset_name(spec)
    values = collections.defaultdict(list)
    for i, example in enumerate(input_pipeline.create_eval_iter(config, spec)):
      if config.eval_max_examples and i >= config.eval_max_examples:
        break
      fused = predict(params, example)
      if not np.all(np.isfinite(fused)):
        raise FloatingPointError(f'eval on {spec}: the model produced non-finite values for example {i}.')
      for k, v in example_metrics(config, example, fused).items():
        values[k].append(v)
      if i < config.num_eval_images:
        images[f'{name}/fused_{i}'] = display_panel(config, example, fused)[None]
    if not values:
      raise ValueError(f'eval set {spec!r} yielded no examples.')
    scalars.update({f'{name}/{k}': float(np.mean(v)) for k, v in values.items()})
  return scalars, images


def write_summary(workdir: str, step: int, scalars: dict[str, float], source: str) -> str:
  """`<workdir>/eval_summary.json` (latest evaluation: step, weights used, metrics); process 0 only."""
  path = os.path.join(workdir, 'eval_summary.json')
  if jax.process_index() == 0:
    with open(path + '.tmp', 'w') as f:
      json.dump({'step': step, 'weights': source, 'metrics': scalars}, f, indent=2, sort_keys=True)
    os.replace(path + '.tmp', path)
  return path
