"""What a training run tells its user: one progress line per log interval and, at the end, where its outputs are."""
import os
import time

from absl import logging
import ml_collections

from mgdn_jax import evaluation


class Progress:
  """One readable line per log interval: step, loss, images/s over the interval, ETA at that pace.

  The pace is timed from the end of the first step (`compiled`), so the compile does not count as training time.
  """

  def __init__(self, config: ml_collections.ConfigDict, step: int):
    self._total, self._batch = config.num_train_steps, config.batch_size
    self._step, self._time = step, time.time()

  def compiled(self, step: int) -> None:
    """`step`, the run's first, has finished (compile included): time the pace from here."""
    self._step, self._time = step, time.time()

  def line(self, step: int, loss: float) -> str:
    head = f'step {step}/{self._total}  loss {loss:.4f}'
    if step <= self._step:
      return f'{head}  (the first step, compile included)'
    now = time.time()
    rate = (step - self._step) / max(now - self._time, 1e-9)
    self._step, self._time = step, now
    hours, rest = divmod(int((self._total - step) / rate), 3600)
    eta = f'{hours}h{rest // 60:02d}m' if hours else f'{rest // 60}m{rest % 60:02d}s'
    images = rate * self._batch
    return f'{head}  {images:.{1 if images >= 1 else 2}f} images/s  ETA {eta}'


def log_outputs(workdir: str, manager) -> None:
  """Where the run's results are: checkpoints, TensorBoard, evaluation summary."""
  steps = sorted(manager.all_steps())
  summary = os.path.join(workdir, evaluation.SUMMARY_FILE)
  lines = [f'checkpoints: {manager.directory} (steps {", ".join(map(str, steps)) or "none"})',
           f'TensorBoard: tensorboard --logdir={workdir}',
           f'weights for fuse/evaluate: --checkpoint={workdir} (best EMA), or export one file with '
           f'`python -m mgdn_jax.weights export --workdir={workdir} --out=FILE.npz`']
  if os.path.exists(summary):
    lines.insert(2, f'evaluation: {summary}')
  logging.info('Outputs of %s:\n  %s', workdir, '\n  '.join(lines))
