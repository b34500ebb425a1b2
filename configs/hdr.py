"""HDR deghosting (Kalantari et al. 2017): 3 LDR frames (6 channels each), reference in the middle.

Official settings: lr 1e-4, batch 4, 128² crops, μ-law (μ=5000) L1 ('mapped_L1'), step decay by epoch
(≤ 8000 → lr, ≤ 12000 → 0.5·lr, then 0.1·lr, of 50,000 epochs; 74 scenes / batch 4 ≈ 18.5 steps per epoch ⇒
925k steps, milestones at 16% and 24%). The optimiser is not in the code (the yaml's `Momentum: 0.9` reads as
Adam β1); MI pairs are (ref, under) and (ref, over).
Usage: `--config=configs/hdr.py` | `configs/hdr.py:demo` | `configs/hdr.py:tiny`.
"""

from configs import default
from mgdn_jax import tasks


def get_config(variant: str | None = None):
  c = default.get_config()
  c.task = 'hdr'
  c.model_name = tasks.HDR.preset()
  c.seed = 225
  c.batch_size = 4
  c.learning_rate = 1e-4
  c.num_train_steps = 925_000
  c.lr_milestones = (0.16, 0.24)
  c.lr_multipliers = (0.5, 0.1)
  c.recon_loss = 'mu_law_l1'
  c.data.train_dataset = 'kalantari'
  c.data.eval_datasets = ('kalantari:test',)
  c.eval_every_steps = 10_000
  c.checkpoint_every_steps = 10_000
  return default.finalize(c, variant)
