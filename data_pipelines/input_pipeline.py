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
from mgdn_jax import tasks


def _text(value) -> str:
  return value.decode('utf-8') if isinstance(value, bytes) else str(value)


def encode_example(example: dict[str, Any], task: str, gdsr_scale: int) -> dict[str, np.ndarray]:
  """Task encoding of one (already cropped) example: raw dataset features → stream_k / target (no batch axis)."""
  return tasks.get(task).encode(example, gdsr_scale)


class TrainTransform(grain.transforms.RandomMap):
  """Random aligned crop + dihedral augmentation + task encoding of one training example.

  A module-level class (not a closure) so that grain can pickle it into mp_prefetch worker processes.
  """

  def __init__(self, task: str, patch_size: int, augment: bool, gdsr_scale: int):
    self.task = tasks.get(task)
    self.patch_size, self.augment, self.gdsr_scale = patch_size, augment, gdsr_scale

  def random_map(self, element, rng: np.random.Generator):
    keys = self.task.spatial_keys(element)
    modes = self.task.augment_modes() if self.augment else (0,)
    try:
      cropped = transforms.random_crop_and_augment({k: element[k] for k in keys}, rng, self.patch_size, modes)
    except ValueError as e:
      raise ValueError(f'example {_text(element.get("name", "?"))!r}: {e}') from None
    if 'exposures' in element:  # per-frame values, not pixels: kept as they are
      cropped['exposures'] = element['exposures']
    out = self.task.encode(cropped, self.gdsr_scale)
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
