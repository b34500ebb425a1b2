"""What a training run tells its user: one progress line per log interval and, at the end, where its outputs are."""
import os
import time

from absl import logging
import ml_collections

from mgdn_jax import evaluation


class Progress:
  """One readable line per log interval: step, loss, images/s over the interval, ETA at that pace."""

  def __init__(self, config: ml_collections.ConfigDict, step: int):
    self._total, self._batch = config.num_train_steps, config.batch_size
    self._step, self._time = step, time.time()

  def line(self, step: int, loss: float) -> str:
    now = time.time()
    rate = (step - self._step) / max(now - self._time, 1e-9)
    self._step, self._time = step, now
    eta = (self._total - step) / rate if rate > 0 else float('inf')
    hours, rest = divmod(int(eta), 3600) if eta != float('inf') else (0, 0)
    eta_text = f'{hours}h{rest // 60:02d}m' if hours else f'{rest // 60}m{rest % 60:02d}s'
    return (f'step {step}/{self._total}  loss {loss:.4f}  {rate * self._batch:.1f} images/s  '
            f'ETA {eta_text if eta != float("inf") else "?"}')


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
