"""main.py and the task configs: variants, overrides, and one-line errors for bad input (asserted by message)."""

import os
import pathlib
import subprocess
import sys

import pytest

from configs import gdsr
from configs import hdr
from configs import mef
from configs import mff
from mgdn_jax import run_config
from mgdn_jax import train

REPO = pathlib.Path(__file__).resolve().parents[1]


def _main(*args, devices=8):
  env = dict(os.environ, JAX_PLATFORMS='cpu', JAX_NUM_CPU_DEVICES=str(devices))
  return subprocess.run([sys.executable, 'main.py', *args], cwd=REPO, env=env, capture_output=True, text=True,
                        timeout=600)


@pytest.mark.parametrize('module, variant, task, train_set, eval_sets, metric', [
    (mef, None, 'mef', 'sice', ('mefb:test',), 'mefb/MEF_SSIM'),
    (mff, None, 'mff', 'drpl_mff', ('lytro:test', 'mffw:test'), 'lytro/Qabf'),
    (hdr, None, 'hdr', 'kalantari', ('kalantari:test',), 'kalantari/psnr_mu'),
    (gdsr, 'x8', 'gdsr', 'nyu_gdsr', ('nyu_gdsr:test',), 'nyu_gdsr/rmse_cm'),
    (mef, 'demo', 'mef', 'mgdn_demo/mef', ('mgdn_demo/mef:test',), 'mgdn_demo/mef/PSNR_gt'),
    (gdsr, 'x16,tiny', 'gdsr', 'mgdn_demo/gdsr', ('mgdn_demo/gdsr:test',), 'mgdn_demo/gdsr/rmse_cm'),
    (mff, 'demo', 'mff', 'mgdn_demo/mff', ('mgdn_demo/mff:test',), 'mgdn_demo/mff/PSNR_gt'),
    (mff, 'tiny', 'mff', 'mgdn_demo/mff', ('mgdn_demo/mff:test',), 'mgdn_demo/mff/PSNR_gt'),
    (hdr, 'tiny', 'hdr', 'mgdn_demo/hdr', ('mgdn_demo/hdr:test',), 'mgdn_demo/hdr/psnr_mu'),
])
def test_task_configs(module, variant, task, train_set, eval_sets, metric):
  config = module.get_config(variant)
  train.validate_config(config)
  assert (config.task, config.model.task) == (task, task)
  assert config.data.train_dataset == train_set and tuple(config.data.eval_datasets) == eval_sets
  assert config.best_metric == metric
  for field in ('seed', 'batch_size', 'num_train_steps', 'log_every_steps', 'eval_every_steps',
                'checkpoint_every_steps', 'learning_rate', 'mi_weight'):
    assert field in config


def test_paper_settings():
  assert (mef.get_config().learning_rate, mef.get_config().batch_size, mef.get_config().patch_size) == (2e-4, 8, 128)
  assert mef.get_config().ema_decay == 0.999
  h = hdr.get_config()
  assert (h.learning_rate, h.batch_size, h.patch_size, h.recon_loss) == (1e-4, 4, 128, 'mu_law_l1')
  for scale in (4, 8, 16):
    g = gdsr.get_config(f'x{scale}')
    assert (g.data.gdsr_scale, g.model_name, g.batch_size, g.patch_size) == (scale, f'gdsr_x{scale}', 4, 256)


def test_bad_variants():
  with pytest.raises(ValueError, match="unknown variant 'fast'"):
    mef.get_config('fast')
  with pytest.raises(ValueError, match='give one scale'):
    gdsr.get_config('x4,x8')


def test_batch_not_divisible_by_devices(tmp_path):
  config = mef.get_config('tiny')
  config.batch_size = 6
  with pytest.raises(ValueError, match=r'config.batch_size=6 is not divisible by the 8 devices'):
    train.train_and_evaluate(config, str(tmp_path))


def test_missing_dataset_says_how_to_prepare(tmp_path):
  config = mef.get_config()  # SICE, no manual_dir
  config.data.data_dir = str(tmp_path / 'tfds')
  with pytest.raises(ValueError, match='sice'):
    train.train_and_evaluate(config, str(tmp_path / 'run'))


def test_incompatible_workdir(tmp_path):
  old = mef.get_config('tiny')
  run_config.write_config(str(tmp_path), old)
  new = mef.get_config('tiny')
  new.model.embed_dim = 24
  with pytest.raises(ValueError, match=r'trained with another config: model.embed_dim: 12 -> 24 \(workdir -> yours\)'):
    train.train_and_evaluate(new, str(tmp_path))


def test_bad_task_fields():
  config = gdsr.get_config('tiny')
  config.data.gdsr_scale = 3
  with pytest.raises(ValueError, match='config.data.gdsr_scale=3: must be 4, 8 or 16'):
    train.validate_config(config)
  config = mef.get_config('tiny')
  config.best_metric = 'lytro/Qabf'
  with pytest.raises(ValueError, match="config.best_metric='lytro/Qabf' does not name an eval set"):
    train.validate_config(config)


def test_main_unknown_override_field(tmp_path):
  proc = _main('--config=configs/mef.py:tiny', f'--workdir={tmp_path}', '--config.learning_rat=1e-3')
  assert proc.returncode != 0
  assert 'learning_rat' in proc.stderr


def test_main_errors_are_one_line(tmp_path):
  proc = _main('--config=configs/mef.py:tiny', f'--workdir={tmp_path}', '--config.batch_size=12')
  assert proc.returncode == 1
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith('main.py: error: ValueError: config.batch_size=12 is not divisible by the 8 devices')
  assert 'Traceback' not in proc.stderr
