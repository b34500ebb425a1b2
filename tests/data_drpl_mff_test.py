"""`drpl_mff` builder: DRPL recipe (mask, 7×7 blur, complementary pair), determinism, mask folder, bad input."""
import numpy as np
from PIL import Image
import pytest

from data_pipelines import common
from data_pipelines import loader
from data_pipelines import synth


def write_images(folder, n, h=260, w=300):
  folder.mkdir(parents=True, exist_ok=True)
  for i in range(n):
    arr = np.random.default_rng(i).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(arr).save(folder / f'img_{i}.png')


def prepare(tmp_path, sub):
  builder = loader.prepare('drpl_mff', manual_dir=tmp_path / 'manual', data_dir=tmp_path / sub)
  return {e['name'].decode(): e for e in builder.as_data_source('train')}


def test_recipe_and_determinism(tmp_path):
  write_images(tmp_path / 'manual' / 'drpl_mff' / 'images', 2)
  ex = prepare(tmp_path, 'a')
  assert sorted(ex) == ['img_0', 'img_1']
  e = ex['img_1']
  sharp, near, far = (e[k].astype(np.float32) for k in ('target', 'image_0', 'image_1'))
  assert sharp.shape == near.shape == far.shape == (256, 256, 3)
  # Complementary: each pixel is sharp in exactly one source; the other holds the 7×7 blur.
  blur = synth.gaussian_blur(e['target'])
  near_sharp = np.all(near == sharp, axis=-1)
  far_sharp = np.all(far == sharp, axis=-1)
  assert np.all(near_sharp | far_sharp) and 0.2 < near_sharp.mean() < 0.8
  np.testing.assert_allclose(near[~near_sharp], blur[~near_sharp], atol=0.5)
  np.testing.assert_allclose(far[~far_sharp], blur[~far_sharp], atol=0.5)
  again = prepare(tmp_path, 'b')
  for k in ('image_0', 'image_1', 'target'):
    np.testing.assert_array_equal(again['img_1'][k], e[k])


def test_mask_folder(tmp_path):
  root = tmp_path / 'manual' / 'drpl_mff'
  write_images(root, 1)
  mask = np.zeros((64, 64), np.uint8)
  mask[:, :16] = 255  # left quarter is foreground
  (root / 'masks').mkdir()
  Image.fromarray(mask).save(root / 'masks' / 'm.png')
  e = prepare(tmp_path, 'a')['img_0']
  near_sharp = np.all(e['image_0'] == e['target'], axis=-1)
  assert near_sharp[:, :64].all()


def test_gaussian_kernel_is_7x7():
  impulse = np.zeros((15, 15, 1), np.uint8)
  impulse[7, 7] = 255
  out = synth.gaussian_blur(impulse)[..., 0]
  assert np.count_nonzero(out > 1e-6) == 49 and abs(out.sum() - 255) < 1e-3


@pytest.mark.parametrize('case,message', [
    ('small', 'is smaller than the 256x256 crop'), ('empty', 'no sharp images'), ('corrupt', 'unreadable')])
def test_bad_input(tmp_path, case, message):
  root = tmp_path / 'manual' / 'drpl_mff'
  write_images(root, 1)
  if case == 'small':
    write_images(root / 'x', 1, h=100)
    (root / 'x' / 'img_0.png').rename(root / 'small.png')
  elif case == 'empty':
    (root / 'img_0.png').unlink()
    (root / 'readme.txt').write_text('no images here')
  else:
    (root / 'bad.jpg').write_bytes(b'\xff\xd8\xff\xe0 truncated')
  with pytest.raises(common.DataError, match=message):
    loader.prepare('drpl_mff', manual_dir=tmp_path / 'manual', data_dir=tmp_path / 'tfds')
  assert not (tmp_path / 'tfds' / 'drpl_mff').exists()
