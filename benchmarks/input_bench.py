"""Training input-pipeline throughput (examples/s) per task.

  python benchmarks/input_bench.py [--batch_size=8 --patch_size=128 --num_batches=30 --num_workers=0]

Runs the real train pipeline (read → decode → aligned crop + augmentation → task encoding → batch) on the
built-in demo data (144×192 scenes) and, when ../shared/data exists, on full-size real images (MEFB pairs as a MEF
source without target, NYU v2 480×640 for GDSR ×4) to show the cost of decoding large images.
"""
import pathlib
import sys
import tempfile
import time

from absl import app
from absl import flags
from absl import logging
import ml_collections

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from data_pipelines import input_pipeline  # noqa: E402
from mgdn_jax import tasks  # noqa: E402

_BATCH = flags.DEFINE_integer('batch_size', 8, 'Global batch size.')
_PATCH = flags.DEFINE_integer('patch_size', 128, 'Training crop size.')
_BATCHES = flags.DEFINE_integer('num_batches', 30, 'Timed batches per task (after 2 warm-up batches).')
_WORKERS = flags.DEFINE_integer('num_workers', 0, 'grain mp_prefetch workers.')
_DATA_DIR = flags.DEFINE_string('data_dir', None, 'TFDS data_dir (default: a temporary folder).')
_SHARED = pathlib.Path(__file__).resolve().parents[2] / 'shared' / 'data'


def _config(task, dataset, split, data_dir, manual_dir=None):
  config = ml_collections.ConfigDict()
  config.task, config.seed, config.batch_size, config.patch_size = task, 0, _BATCH.value, _PATCH.value
  config.data = ml_collections.ConfigDict(dict(
      train_dataset=dataset, train_split=split, eval_datasets=(), manual_dir=manual_dir, data_dir=data_dir,
      gdsr_scale=4, num_workers=_WORKERS.value, augment=True))
  return config


def _throughput(config) -> float:
  it = input_pipeline.create_train_iter(config)
  for _ in range(2):
    next(it)
  start = time.perf_counter()
  for _ in range(_BATCHES.value):
    next(it)
  return _BATCHES.value * config.batch_size / (time.perf_counter() - start)


def main(argv):
  del argv
  logging.set_verbosity(logging.ERROR)
  import tensorflow_datasets as tfds
  tfds.disable_progress_bar()
  data_dir = _DATA_DIR.value or tempfile.mkdtemp(prefix='input_bench_')
  cases = [(f'{t} (mgdn_demo/{t}, 144x192)', _config(t, f'mgdn_demo/{t}', 'train', data_dir))
           for t in tasks.NAMES]
  if _SHARED.is_dir():
    manual = str(_SHARED)
    cases += [('mef (mefb, up to 1200x800, no target)', _config('mef', 'mefb', 'test', data_dir, manual)),
              ('mff (lytro, 520x520, no target)', _config('mff', 'lytro', 'test', data_dir, manual)),
              ('gdsr x4 (nyu_gdsr, 480x640)', _config('gdsr', 'nyu_gdsr', 'test', data_dir, manual))]
  print(f'batch_size={_BATCH.value} patch_size={_PATCH.value} num_workers={_WORKERS.value} '
        f'batches={_BATCHES.value}')
  for label, config in cases:
    print(f'{label:42s} {_throughput(config):8.1f} examples/s', flush=True)


if __name__ == '__main__':
  app.run(main)
