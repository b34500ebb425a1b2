"""MEF (multi-exposure fusion): train on SICE under/over pairs with the reference image as target, test on MEFB.

Paper/KAIR settings: Adam lr 2e-4, batch 8, 128² patches, multi-step decay (γ 0.5), EMA 0.999 (the official MEF
results come from the EMA weights; the released MEF checkpoint is at 5,500 iterations).
Usage: `--config=configs/mef.py` | `configs/mef.py:demo` | `configs/mef.py:tiny`.
"""

from configs import default
from mgdn_jax import tasks


def get_config(variant: str | None = None):
  c = default.get_config()
  c.task = 'mef'
  c.model_name = tasks.MEF.preset()
  c.num_train_steps = 5_500
  c.data.train_dataset = 'sice'
  c.data.eval_datasets = ('mefb:test',)
  return default.finalize(c, variant)
