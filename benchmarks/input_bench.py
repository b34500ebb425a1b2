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

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # the repo, when run as a script

PROG = 'input_bench'
_SHARED = pathlib.Path(__file__).resolve().parents[2] / 'shared' / 'data'


def _config(args, task, dataset, split, data_dir, manual_dir=None):
  import ml_collections  # pylint: disable=g-import-not-at-top
  config = ml_collections.ConfigDict()
  config.task, config.seed, config.batch_size, config.patch_size = task, 0, args.batch_size, args.patch_size
  config.data = ml_collections.ConfigDict(dict(
      train_dataset=dataset, train_split=split, eval_datasets=(), manual_dir=manual_dir, data_dir=data_dir,
      gdsr_scale=4, num_workers=args.num_workers, augment=True))
  return config


def _throughput(config, batches: int) -> float:
  """Examples/s of the train iterator of `config` over `batches` batches, after 2 warm-up batches."""
  from data_pipelines import input_pipeline  # pylint: disable=g-import-not-at-top
  it = input_pipeline.create_train_iter(config)
  for _ in range(2):
    next(it)
  start = time.perf_counter()
  for _ in range(batches):
    next(it)
  return batches * config.batch_size / (time.perf_counter() - start)


def define_flags(f) -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_integer('batch_size', 8, 'Global batch size.', lower_bound=1, flag_values=f)
  flags.DEFINE_integer('patch_size', 128, 'Training crop size.', lower_bound=1, flag_values=f)
  flags.DEFINE_integer('num_batches', 30, 'Timed batches per task (after 2 warm-up batches).', lower_bound=1,
                       flag_values=f)
  flags.DEFINE_integer('num_workers', 0, 'grain mp_prefetch workers.', lower_bound=0, flag_values=f)
  flags.DEFINE_string('data_dir', None, 'TFDS data_dir (default: a temporary folder).', flag_values=f)


def main(argv=None) -> None:
  from mgdn_jax import cli  # pylint: disable=g-import-not-at-top
  args, _ = cli.parse(PROG, __doc__, define_flags, argv)
  from absl import logging  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from mgdn_jax import tasks  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.ERROR)
  tfds.disable_progress_bar()
  data_dir = args.data_dir or tempfile.mkdtemp(prefix='input_bench_')
  cases = [(f'{t} (mgdn_demo/{t}, 144x192)', _config(args, t, f'mgdn_demo/{t}', 'train', data_dir))
           for t in tasks.NAMES]
  if _SHARED.is_dir():
    manual = str(_SHARED)
    cases += [('mef (mefb, up to 1200x800, no target)', _config(args, 'mef', 'mefb', 'test', data_dir, manual)),
              ('mff (lytro, 520x520, no target)', _config(args, 'mff', 'lytro', 'test', data_dir, manual)),
              ('gdsr x4 (nyu_gdsr, 480x640)', _config(args, 'gdsr', 'nyu_gdsr', 'test', data_dir, manual))]
  print(f'batch_size={args.batch_size} patch_size={args.patch_size} num_workers={args.num_workers} '
        f'batches={args.num_batches}')
  for label, config in cases:
    print(f'{label:42s} {_throughput(config, args.num_batches):8.1f} examples/s', flush=True)


if __name__ == '__main__':
  main()
