"""`nyu_gdsr` builder: tiny NYU layout (Depth/<id>.npy + RGB/<id>.jpg), split by id, bad input, shared samples."""
import numpy as np
from PIL import Image
import pytest

from data_pipelines import common
from data_pipelines import loader


def write_pair(root, idx, h=12, w=16, depth=None):
  (root / 'Depth').mkdir(parents=True, exist_ok=True)
  (root / 'RGB').mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(idx)
  if depth is None:
    depth = rng.uniform(0.5, 8.0, size=(h, w)).astype(np.float32)
  np.save(root / 'Depth' / f'{idx}.npy', depth)
  Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / 'RGB' / f'{idx}.jpg')
  return depth


def test_split_by_id(tmp_path):
  root = tmp_path / 'nyu_gdsr'
  depths = {i: write_pair(root, i) for i in (0, 5, 999, 1000, 1448)}
  builder = loader.prepare('nyu_gdsr', manual_dir=tmp_path, data_dir=tmp_path / 'tfds')
  assert builder.info.splits['train'].num_examples == 3
  assert builder.info.splits['test'].num_examples == 2
  test = {ex['name'].decode(): ex for ex in builder.as_data_source('test')}
  assert sorted(test) == ['1000', '1448']
  np.testing.assert_array_equal(test['1448']['depth'], depths[1448])
  assert test['1448']['depth'].dtype == np.float32 and test['1448']['rgb'].shape == (12, 16, 3)


@pytest.mark.parametrize('case,message', [
    ('no_rgb', 'unmatched pair'), ('sizes', 'streams of different sizes'), ('int_depth', 'expected a float (H, W)'),
    ('nan', 'non-finite'), ('bad_id', 'numeric id'), ('no_depth_dir', 'missing folder')])
def test_bad_input(tmp_path, case, message):
  root = tmp_path / 'nyu_gdsr'
  write_pair(root, 1000)
  if case == 'no_rgb':
    np.save(root / 'Depth' / '1001.npy', np.ones((12, 16), np.float32))
  elif case == 'sizes':
    write_pair(root, 1001, depth=np.ones((10, 16), np.float32))
  elif case == 'int_depth':
    write_pair(root, 1001, depth=np.ones((12, 16), np.uint16))
  elif case == 'nan':
    write_pair(root, 1001, depth=np.full((12, 16), np.nan, np.float32))
  elif case == 'bad_id':
    write_pair(root, 1001)
    (root / 'Depth' / '1001.npy').rename(root / 'Depth' / 'x1.npy')
    (root / 'RGB' / '1001.jpg').rename(root / 'RGB' / 'x1.jpg')
  else:
    for p in (root / 'Depth').iterdir():
      p.unlink()
    (root / 'Depth').rmdir()
  with pytest.raises(common.DataError) as e:
    loader.prepare('nyu_gdsr', manual_dir=root, data_dir=tmp_path / 'tfds')
  assert message in str(e.value) and '\n' not in str(e.value)
  assert not (tmp_path / 'tfds' / 'nyu_gdsr').exists()


def test_shared_nyu(shared_dir, tmp_path):
  builder = loader.prepare('nyu_gdsr', manual_dir=shared_dir / 'data', data_dir=tmp_path / 'tfds')
  assert 'train' not in builder.info.splits
  test = {ex['name'].decode(): ex for ex in builder.as_data_source('test')}
  assert sorted(test, key=int) == ['1000', '1001', '1002', '1444', '1445', '1446', '1447', '1448']
  for name, ex in test.items():
    assert ex['rgb'].shape == (480, 640, 3) and ex['depth'].shape == (480, 640)
    np.testing.assert_array_equal(ex['depth'], np.load(shared_dir / f'data/nyu_gdsr/Depth/{name}.npy'))
  assert abs(float(test['1444']['depth'].min()) - 0.956) < 1e-3
