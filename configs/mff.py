"""MFF (multi-focus fusion): train on DRPL-style synthetic pairs, test on Lytro and MFFW (no ground truth).

Settings as MEF (KAIR framework): Adam lr 2e-4, batch 8, 128² patches, multi-step decay, EMA 0.999; the released
MFF checkpoint is at 62,000 iterations.
Usage: `--config=configs/mff.py` | `configs/mff.py:demo` | `configs/mff.py:tiny`.
"""

from configs import default
from mgdn_jax import tasks


def get_config(variant: str | None = None):
  c = default.get_config()
  c.task = 'mff'
  c.model_name = tasks.MFF.preset()
  c.num_train_steps = 62_000
  c.data.train_dataset = 'drpl_mff'
  c.data.eval_datasets = ('lytro:test', 'mffw:test')
  return default.finalize(c, variant)
