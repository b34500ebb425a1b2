"""Train or evaluate MGDN.

  python main.py --config=configs/mef.py:demo --workdir=/tmp/mef_demo            # built-in demo data, CPU
  python main.py --config=configs/mef.py --workdir=/tmp/mef --config.data.manual_dir=/data
  python main.py --config=configs/gdsr.py:x8 --workdir=/tmp/gdsr8 --config.batch_size=16
  python main.py --workdir=/tmp/mef --mode=eval          # best (else latest) checkpoint, with the workdir's config
  python main.py ... --distributed     # multi-host: jax.distributed.initialize() (coordinator from the cluster env)

A rerun with the same --workdir resumes from its latest checkpoint. Kept short on purpose: grain workers
re-import this module, so only light imports live at the top.
"""

import os

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

PROG = 'main.py'
FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    'config', None, 'Training config file, e.g. configs/mef.py, configs/mef.py:demo, configs/gdsr.py:x8.',
    lock_config=True)
flags.DEFINE_string('workdir', None, 'Directory for checkpoints, TensorBoard summaries and config.json.')
flags.DEFINE_enum('mode', 'train', ['train', 'eval'],
                  'train: train with periodic evaluation (resumes from --workdir); eval: evaluate the best '
                  '(else latest) checkpoint of --workdir.')
flags.DEFINE_bool('distributed', False, 'Call jax.distributed.initialize() (multi-host GPU/TPU jobs).')
flags.DEFINE_bool('traceback', False, 'Show the full traceback of configuration/data errors.')
flags.DEFINE_bool('verbose', False, "Also show the libraries' INFO logs (orbax, clu, tfds, ...).")
flags.mark_flags_as_required(['workdir'])

_PROJECT = tuple(os.path.join(os.path.dirname(os.path.abspath(__file__)), d) for d in ('mgdn_jax', 'data_pipelines',
                                                                                      'main.py'))

# Errors a user causes (bad config, missing dataset, incompatible or busy workdir, divergence, unreadable
# checkpoints): one line, no traceback.
_USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, FloatingPointError)


class _ProjectInfoOnly:
  """Logging filter: INFO records of this project and every WARNING or worse; the libraries' INFO is noise here.

  Also drops the checkpoint manager's warnings about its own set-up (a save without a metric: only evaluation steps
  have one; a read-only manager for evaluation): both are how this project uses it. Its failures raise instead.
  """

  def filter(self, record) -> bool:
    if record.pathname.startswith(_PROJECT):
      return True
    if record.pathname.endswith(os.path.join('orbax', 'checkpoint', 'checkpoint_manager.py')):
      return record.levelno >= logging.converter.STANDARD_ERROR
    return record.levelno >= logging.converter.STANDARD_WARNING


def _parse(argv):
  """absl's parsing with the project's usage-error format (mgdn_jax.cli)."""
  from mgdn_jax import cli  # pylint: disable=g-import-not-at-top
  try:
    rest = FLAGS(argv)
  except flags.Error as e:
    cli.usage_error(PROG, e)
  if len(rest) > 1:
    cli.usage_error(PROG, f'unexpected arguments {" ".join(rest[1:])} (every option is a --flag)')
  return rest


def main(argv):
  del argv
  if not FLAGS.verbose:
    logging.get_absl_handler().addFilter(_ProjectInfoOnly())
  import jax  # pylint: disable=g-import-not-at-top
  if FLAGS.distributed:
    jax.distributed.initialize()
  from mgdn_jax import run_config  # pylint: disable=g-import-not-at-top
  from mgdn_jax import train  # pylint: disable=g-import-not-at-top
  from mgdn_jax import workdir_lock  # pylint: disable=g-import-not-at-top
  logging.info('JAX process %d/%d, %d local / %d global devices (%s)', jax.process_index(), jax.process_count(),
               jax.local_device_count(), jax.device_count(), jax.devices()[0].platform)
  try:
    if FLAGS.mode == 'train':
      if FLAGS.config is None:
        raise ValueError('--config is required to train, e.g. --config=configs/mff.py (or configs/mff.py:demo).')
      train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
    else:
      from mgdn_jax import evaluation  # pylint: disable=g-import-not-at-top
      config = FLAGS.config if FLAGS.config is not None else run_config.workdir_config(FLAGS.workdir)
      print(evaluation.format_scalars(train.evaluate_workdir(config, FLAGS.workdir)), flush=True)
  except (*_USER_ERRORS, workdir_lock.WorkdirBusyError) as e:
    if FLAGS.traceback:
      raise
    from mgdn_jax import cli  # pylint: disable=g-import-not-at-top
    cli.fail(PROG, f'{type(e).__name__}: {e}')


if __name__ == '__main__':
  # TensorFlow is loaded only for clu's summary writers: silence its C++ start-up notes (oneDNN only affects TF ops).
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '0')
  from mgdn_jax import platform  # pylint: disable=g-import-not-at-top
  platform.tune_process()
  app.run(main, flags_parser=_parse)
