"""Test scenes for evaluation: from a tfds test set (through the data pipelines) or from a folder of sources.

A scene carries the model inputs exactly as the data pipelines encode them, the uint8 sources the MEF/MFF metrics
need (recovered exactly from the uint8 / 255 streams) and, when the dataset has one, the ground truth.
"""
import dataclasses
from typing import Iterator

import numpy as np

from mgdn_jax import image_io
from mgdn_jax import tasks
from mgdn_jax.metrics import common
from mgdn_jax.metrics import folders


@dataclasses.dataclass
class Scene:
  """One test example: model inputs, uint8 sources (MEF/MFF) and the ground truth when there is one."""
  name: str
  streams: list            # K float32 (H, W, C_k) model inputs
  sources: list | None     # MEF/MFF: the K uint8 (H, W, 3) source images
  target: np.ndarray | None = None
  depth_range: tuple | None = None


def dataset_spec(dataset: str) -> str:
  """'lytro' -> 'lytro:test'; 'mgdn_demo/mef:test' unchanged."""
  return dataset if ':' in dataset else f'{dataset}:test'


def data_config(task: str, config=None, manual_dir=None, data_dir=None, gdsr_scale=None):
  """The config fields `input_pipeline.create_eval_iter` reads (a checkpoint's own config when there is one)."""
  import ml_collections  # pylint: disable=g-import-not-at-top
  cfg = ml_collections.ConfigDict(config.to_dict()) if config is not None else ml_collections.ConfigDict()
  cfg.task = task
  if 'data' not in cfg:
    cfg.data = ml_collections.ConfigDict()
  if manual_dir is not None or 'manual_dir' not in cfg.data:
    cfg.data.manual_dir = None if manual_dir is None else str(manual_dir)
  if data_dir is not None or 'data_dir' not in cfg.data:
    cfg.data.data_dir = None if data_dir is None else str(data_dir)
  if gdsr_scale is not None or 'gdsr_scale' not in cfg.data:
    cfg.data.gdsr_scale = int(gdsr_scale or 4)
  return cfg


def dataset_scenes(task: str, spec: str, config=None, manual_dir=None, data_dir=None,
                   gdsr_scale=None) -> Iterator[Scene]:
  """Scenes of a tfds test set through `data_pipelines.input_pipeline.create_eval_iter`."""
  from data_pipelines import input_pipeline  # pylint: disable=g-import-not-at-top
  cfg = data_config(task, config, manual_dir, data_dir, gdsr_scale)
  is_fusion = tasks.get(task).is_fusion
  for ex in input_pipeline.create_eval_iter(cfg, spec):
    keys = sorted((k for k in ex if k.startswith('stream_')), key=lambda k: int(k.split('_')[1]))
    streams = [np.asarray(ex[k][0], np.float32) for k in keys]
    name = ex['name'][0]
    name = name.decode() if isinstance(name, bytes) else str(name)
    # The pipelines feed uint8 / 255, so x255 and rounding recovers the stored uint8 sources exactly.
    sources = [common.quantize_uint8(s) for s in streams] if is_fusion else None
    target = np.asarray(ex['target'][0], np.float32) if 'target' in ex else None
    depth_range = (float(ex['depth_min'][0]), float(ex['depth_max'][0])) if 'depth_min' in ex else None
    yield Scene(name, streams, sources, target, depth_range)


def dataset_size(spec: str, config=None, manual_dir=None, data_dir=None) -> int | None:
  """Number of examples of a tfds test set (for the progress bar); None when it cannot be told cheaply."""
  try:
    from data_pipelines import loader  # pylint: disable=g-import-not-at-top
    cfg = data_config('mef', config, manual_dir, data_dir)
    name, split = loader.split_name(spec)
    return len(loader.data_source(name, split, manual_dir=cfg.data.manual_dir, data_dir=cfg.data.data_dir))
  except Exception:  # pylint: disable=broad-except  (the evaluation itself reports dataset problems)
    return None


def folder_scenes(sources_dir) -> Iterator[Scene]:
  """MEF/MFF scenes from a folder of source pairs (see `metrics.folders`); inputs as the official uint8 / 255."""
  for name, sources in folders.source_scenes(sources_dir):
    streams = [image_io.to_float32(s) for s in sources]
    yield Scene(name, streams, sources)
