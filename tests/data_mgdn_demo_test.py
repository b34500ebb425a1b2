"""`mgdn_demo`: built-in demo scenes for the four tasks — counts, shapes, task semantics, determinism, speed."""
import pathlib
import subprocess
import sys
import time

import numpy as np
import pytest

from data_pipelines import loader
from data_pipelines import transforms
from mgdn_jax import tasks


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
  data_dir = tmp_path_factory.mktemp('tfds')
  start = time.time()
  out = {}
  for task in tasks.NAMES:
    out[task] = {split: {e['name'].decode(): e for e in loader.data_source(f'mgdn_demo/{task}', split,
                                                                          data_dir=data_dir)}
                 for split in ('train', 'test')}
  out['seconds'] = time.time() - start
  return out


def test_counts_and_speed(demo):
  for task in [n for n in tasks.NAMES if not tasks.get(n).guided_depth]:  # photo-based; GDSR crops a stereo pair
    assert (len(demo[task]['train']), len(demo[task]['test'])) == (6, 2)
  assert (len(demo['gdsr']['train']), len(demo['gdsr']['test'])) == (7, 2)
  assert not set(demo['mef']['train']) & set(demo['mef']['test'])
  assert demo['seconds'] < 60


def test_mef_and_mff(demo):
  for ex in demo['mef']['train'].values():
    assert ex['image_0'].shape == ex['image_1'].shape == ex['target'].shape == (144, 192, 3)
    assert ex['image_0'].mean() < ex['target'].mean() < ex['image_1'].mean()  # under, target, over
  for ex in demo['mff']['test'].values():
    near_sharp = np.all(ex['image_0'] == ex['target'], axis=-1)
    far_sharp = np.all(ex['image_1'] == ex['target'], axis=-1)
    assert np.all(near_sharp | far_sharp)
    # Flat regions are equal in both; elsewhere each source is sharp where the other is blurred.
    assert (near_sharp & ~far_sharp).mean() > 0.05 and (far_sharp & ~near_sharp).mean() > 0.05


def test_hdr(demo):
  for ex in demo['hdr']['train'].values():
    assert all(ex[f'image_{k}'].dtype == np.uint16 and ex[f'image_{k}'].shape == (144, 192, 3) for k in range(3))
    assert ex['target'].dtype == np.float32 and 0 <= ex['target'].min() and ex['target'].max() <= 1
    evs = ex['exposures']
    assert evs[0] == 0 and evs[1] in (2, 3)
    # The reference frame, mapped to the HDR domain, is the target wherever it is not saturated.
    ref = transforms.hdr_stream(ex['image_1'], float(evs[1]))[..., 3:]
    ok = ex['image_1'] < 65000
    np.testing.assert_allclose(ref[ok], ex['target'][ok], atol=2e-4)
    # The under frame moved (motion), so it is not aligned with the target.
    under = transforms.hdr_stream(ex['image_0'], float(evs[0]))[..., 3:]
    assert np.abs(under - ex['target']).mean() > 1e-3


def test_gdsr(demo):
  for ex in demo['gdsr']['test'].values():
    assert ex['rgb'].shape == (144, 192, 3) and ex['depth'].shape == (144, 192)
    assert np.all(np.isfinite(ex['depth'])) and ex['depth'].min() > 0 and np.ptp(ex['depth']) > 10


def test_deterministic(demo, tmp_path):
  again = {e['name'].decode(): e for e in loader.data_source('mgdn_demo/hdr', 'test', data_dir=tmp_path)}
  for name, ex in demo['hdr']['test'].items():
    for key in ('image_0', 'image_2', 'target', 'exposures'):
      np.testing.assert_array_equal(again[name][key], ex[key])


def test_prepare_cli(tmp_path):
  repo = pathlib.Path(__file__).resolve().parents[1]
  run = subprocess.run([sys.executable, '-m', 'data_pipelines.prepare', '--dataset=mgdn_demo/gdsr',
                        f'--data_dir={tmp_path}'], cwd=repo, capture_output=True, text=True, check=True)
  assert 'mgdn_demo/gdsr/1.0.0 prepared' in run.stdout and '(test: 2, train: 7)' in run.stdout
  bad = subprocess.run([sys.executable, '-m', 'data_pipelines.prepare', '--dataset=lytro',
                        f'--manual_dir={tmp_path / "none"}', f'--data_dir={tmp_path}'], cwd=repo,
                       capture_output=True, text=True)
  assert bad.returncode == 1 and bad.stderr.strip().splitlines()[-1].startswith('prepare: error: dataset lytro: manual_dir')
