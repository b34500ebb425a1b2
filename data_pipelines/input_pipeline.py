"""grain input pipelines: batches of model inputs for training, full-size examples for evaluation.

Batches are dicts of numpy arrays with a leading batch axis (contract.md):
  stream_0 … stream_{K-1}  float32 (B, h, w, C_k)   the model inputs, in the task's stream order
  target                   float32 (B, h, w, C_out) when the dataset has a ground truth
  eval only: name (B,) str; GDSR eval: depth_min, depth_max float32 (B,)
Config fields read: task, seed, batch_size, patch_size, data.train_dataset, data.train_split, data.manual_dir,
data.data_dir, data.gdsr_scale, data.num_workers, data.augment.
"""
import os
from typing import Any, Iterator

import grain
import numpy as np

from data_pipelines import loader
from data_pipelines import transforms
from mgdn_jax import image_io

TASKS = ('mef', 'mff', 'hdr', 'gdsr')


def _text(value) -> str:
  return value.decode('utf-8') if isinstance(value, bytes) else str(value)


def _stream_keys(example) -> list[str]:
  keys = sorted((k for k in example if k.startswith('image_')), key=lambda k: int(k.split('_')[1]))
  if not keys:
    raise ValueError(f'example {_text(example.get("name", "?"))!r} has no image_k features')
  return keys


def encode_example(example: dict[str, Any], task: str, gdsr_scale: int) -> dict[str, np.ndarray]:
  """Task encoding of one (already cropped) example: raw dataset features → stream_k / target (no batch axis)."""
  if task == 'gdsr':
    return transforms.gdsr_example(example['rgb'], example['depth'], gdsr_scale)
  out = {}
  for k, key in enumerate(_stream_keys(example)):
    if task == 'hdr':
      out[f'stream_{k}'] = transforms.hdr_stream(example[key], float(example['exposures'][k]))
    else:
      out[f'stream_{k}'] = image_io.to_float32(example[key])
  if 'target' in example:
    out['target'] = image_io.to_float32(example['target'])
  return out


class TrainTransform(grain.transforms.RandomMap):
  """Random aligned crop + dihedral augmentation + task encoding of one training example.

  A module-level class (not a closure) so that grain can pickle it into mp_prefetch worker processes.
  """

  def __init__(self, task: str, patch_size: int, augment: bool, gdsr_scale: int):
    if task not in TASKS:
      raise ValueError(f'config.task {task!r}: expected one of {TASKS}')
    self.task, self.patch_size, self.augment, self.gdsr_scale = task, patch_size, augment, gdsr_scale

  def random_map(self, element, rng: np.random.Generator):
    if self.task == 'gdsr':
      spatial = {'rgb': element['rgb'], 'depth': element['depth']}
      modes = transforms.FLIP_MODES
    else:
      spatial = {k: element[k] for k in _stream_keys(element)}
      if 'target' in element:
        spatial['target'] = element['target']
      modes = transforms.ALL_MODES
    try:
      cropped = transforms.random_crop_and_augment(spatial, rng, self.patch_size, modes if self.augment else (0,))
    except ValueError as e:
      raise ValueError(f'example {_text(element.get("name", "?"))!r}: {e}') from None
    if self.task == 'hdr':
      cropped['exposures'] = element['exposures']
    out = encode_example(cropped, self.task, self.gdsr_scale)
    out.pop('depth_min', None)
    out.pop('depth_max', None)
    return out


def _data(config):
  data = config.data
  return dict(manual_dir=data.get('manual_dir', None), data_dir=data.get('data_dir', None))


def train_dataset(config, process_index: int = 0, process_count: int = 1) -> grain.IterDataset:
  """The training IterDataset of this process: its shard, shuffled per epoch, repeated, cropped, batched."""
  if config.batch_size % process_count:
    raise ValueError(f'config.batch_size {config.batch_size} is not divisible by process_count {process_count}')
  local_batch = config.batch_size // process_count
  name = config.data.train_dataset
  source = loader.data_source(name, config.data.get('train_split', 'train'), **_data(config))
  ds = grain.MapDataset.source(source)
  if process_count > 1:
    ds = ds[process_index::process_count]  # each host reads a disjoint slice
  if len(ds) == 0:
    raise ValueError(f'dataset {name}: no training examples for process {process_index} of {process_count}')
  transform = TrainTransform(config.task, config.patch_size, bool(config.data.get('augment', True)),
                             int(config.data.get('gdsr_scale', 4)))
  # Different seeds per host, so hosts never draw the same crops in lockstep.
  ds = ds.seed(config.seed * 1_000_003 + process_index).shuffle().repeat().random_map(transform)
  num_workers = int(config.data.get('num_workers', 0))
  threads = max(1, min(4, os.cpu_count() or 1))
  it_ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=threads, prefetch_buffer_size=2 * local_batch))
  it_ds = it_ds.batch(local_batch, drop_remainder=True)
  if num_workers > 0:
    it_ds = it_ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=num_workers))
  return it_ds


def create_train_iter(config, process_index: int = 0, process_count: int = 1) -> grain.DatasetIterator:
  """Checkpointable iterator of host-local training batches (batch_size // process_count examples each).

  Save/restore its position with `grain.checkpoint.CheckpointSave(it)` / `CheckpointRestore(it)` (orbax) or
  `it.get_state()` / `it.set_state(state)`.
  """
  return iter(train_dataset(config, process_index, process_count))


def create_eval_iter(config, dataset: str) -> Iterator[dict[str, np.ndarray]]:
  """Full-size examples of `dataset` ('name[/config]:split', e.g. 'mefb:test'), one at a time (batch dim 1)."""
  name, split = loader.split_name(dataset)
  source = loader.data_source(name, split, **_data(config))
  scale = int(config.data.get('gdsr_scale', 4))
  for i in range(len(source)):
    example = source[i]
    out = encode_example(example, config.task, scale)
    batch = {k: np.asarray(v)[None] for k, v in out.items()}
    batch['name'] = np.array([_text(example['name'])])
    yield batch
