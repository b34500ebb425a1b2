"""GDSR (guided depth super-resolution) on NYU-v2: RGB guide + bicubic-upsampled depth, ×4 / ×8 / ×16.

Official script defaults: lr 1e-4, batch 4, 256² HR patches, milestones at epochs 1000 and 1100 of 1200 (γ 0.5);
1000 training images / batch 4 = 250 steps per epoch ⇒ 300k steps. Metric: RMSE in cm (lower is better).
Usage: `--config=configs/gdsr.py:x4` (default scale) | `:x8` | `:x16`, combinable: `:x8,demo`, `:tiny`.
"""

from configs import default
from mgdn_jax import tasks


def get_config(variant: str | None = None):
  c = default.get_config()
  tokens = [t for t in (variant or '').split(',') if t]
  scales = [t for t in tokens if t in [f'x{n}' for n in tasks.GDSR.scales]]
  if len(scales) > 1:
    raise ValueError(f'configs/gdsr.py: give one scale, got {scales}.')
  scale = int(scales[0][1:]) if scales else 4
  c.task = 'gdsr'
  c.model_name = tasks.GDSR.preset(scale)
  c.seed = 1
  c.batch_size = 4
  c.patch_size = 256
  c.learning_rate = 1e-4
  c.num_train_steps = 300_000
  c.lr_milestones = (1000 / 1200, 1100 / 1200)
  c.lr_multipliers = (0.5, 0.25)
  c.data.train_dataset = 'nyu_gdsr'
  c.data.eval_datasets = ('nyu_gdsr:test',)
  c.data.gdsr_scale = scale
  return default.finalize(c, variant)
