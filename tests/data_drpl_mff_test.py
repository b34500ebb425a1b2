"""`drpl_mff` builder: DRPL recipe (mask, 7×7 blur, complementary pair), the varied-defocus config, determinism,
mask folder, bad input."""
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


def test_pairs_per_image_config(tmp_path):
  write_images(tmp_path / 'manual' / 'drpl_mff' / 'images', 2)
  single = prepare(tmp_path, 'a')
  builder = loader.prepare('drpl_mff/x8', manual_dir=tmp_path / 'manual', data_dir=tmp_path / 'b')
  many = {e['name'].decode(): e for e in builder.as_data_source('train')}
  assert sorted(many) == sorted(f'img_{i}' + (f'-p{k}' if k else '') for i in range(2) for k in range(8))
  for k in ('image_0', 'image_1', 'target'):  # pair 0 is the one-pair recipe's pair
    np.testing.assert_array_equal(many['img_1'][k], single['img_1'][k])
  masks = [np.all(many[n]['image_0'] == many[n]['target'], axis=-1) for n in ('img_1', 'img_1-p1', 'img_1-p2')]
  assert not np.array_equal(masks[0], masks[1]) and not np.array_equal(masks[1], masks[2])


@pytest.mark.parametrize('config, sigma_range', [('x8_defocus', synth.DEFOCUS_SIGMAS),
                                                 ('x8_defocus_strong', synth.STRONG_DEFOCUS_SIGMAS)])
def test_defocus_config_varies_each_sides_blur(tmp_path, config, sigma_range):
  write_images(tmp_path / 'manual' / 'drpl_mff' / 'images', 2)
  fixed = {e['name'].decode(): e for e in loader.prepare(
      'drpl_mff/x8', manual_dir=tmp_path / 'manual', data_dir=tmp_path / 'a').as_data_source('train')}
  varied = {e['name'].decode(): e for e in loader.prepare(
      f'drpl_mff/{config}', manual_dir=tmp_path / 'manual', data_dir=tmp_path / 'b').as_data_source('train')}
  assert sorted(varied) == sorted(fixed)
  errors, best = [], []
  for name, e in varied.items():
    np.testing.assert_array_equal(e['target'], fixed[name]['target'])  # the same crops and masks as x8
    sharp = [np.all(e[k] == e['target'], axis=-1) for k in ('image_0', 'image_1')]
    np.testing.assert_array_equal(sharp[0], np.all(fixed[name]['image_0'] == e['target'], axis=-1))
    for k, in_focus in zip(('image_0', 'image_1'), sharp):
      # the blurred part is a Gaussian blur of the target with a σ in this config's range, and not DRPL's σ = 2
      sigmas = np.geomspace(0.3, 8, 60)
      fits = [np.abs(synth.defocus_blur(e['target'], s)[~in_focus] - e[k][~in_focus]).max() for s in sigmas]
      errors.append(min(fits))
      best.append(sigmas[np.argmin(fits)])
      assert min(fits) < 12 and not np.array_equal(e[k], fixed[name][k])
  assert np.median(errors) < 3
  assert sigma_range[0] / 1.15 < min(best) and max(best) < sigma_range[1] * 1.15, (min(best), max(best))


def test_overlap_config_leaves_a_region_sharp_in_both(tmp_path):
  write_images(tmp_path / 'manual' / 'drpl_mff' / 'images', 2)
  strong = {e['name'].decode(): e for e in loader.prepare(
      'drpl_mff/x8_defocus_strong', manual_dir=tmp_path / 'manual', data_dir=tmp_path / 'a').as_data_source('train')}
  overlap = {e['name'].decode(): e for e in loader.prepare(
      'drpl_mff/x8_defocus_overlap', manual_dir=tmp_path / 'manual', data_dir=tmp_path / 'b').as_data_source('train')}
  assert sorted(overlap) == sorted(strong)
  shares = []
  for name, e in overlap.items():
    np.testing.assert_array_equal(e['target'], strong[name]['target'])
    sharp = [np.all(e[k] == e['target'], axis=-1) for k in ('image_0', 'image_1')]
    was = [np.all(strong[name][k] == e['target'], axis=-1) for k in ('image_0', 'image_1')]
    both = sharp[0] & sharp[1]
    shares.append(both.mean() - (was[0] & was[1]).mean())  # beyond pixels a blur leaves unchanged by chance
    for k, s, w in zip(('image_0', 'image_1'), sharp, was):
      assert np.all(s >= w)  # only sharper: the same mask and σ, plus the overlap
      np.testing.assert_array_equal(e[k][~s], strong[name][k][~s])
  shares = np.array(shares)
  assert shares.max() <= synth.OVERLAP_MAX + 0.02 and np.median(shares) > 0.05 and shares.min() >= 0


def test_drpl_pair_without_overlap_is_unchanged():
  rng = np.random.default_rng(0)
  sharp = rng.integers(0, 256, (64, 64, 3)).astype(np.uint8)
  mask = synth.random_mask(rng, 64, 64)
  none = np.zeros((64, 64), bool)
  for sigmas in (None, (1.0, 3.0)):
    for a, b in zip(synth.drpl_pair(sharp, mask, sigmas), synth.drpl_pair(sharp, mask, sigmas, none)):
      np.testing.assert_array_equal(a, b)
  both = synth.overlap_mask(rng, 64, 64)
  near, far = synth.drpl_pair(sharp, mask, (1.0, 3.0), both)
  assert 0 < both.mean() <= synth.OVERLAP_MAX
  for side in (near, far):
    np.testing.assert_array_equal(side[both], sharp[both])


@pytest.mark.parametrize('sigma_range', [synth.DEFOCUS_SIGMAS, synth.STRONG_DEFOCUS_SIGMAS])
def test_defocus_sigma_range_and_kernel(sigma_range):
  sigmas = np.array([synth.defocus_sigma(np.random.default_rng(i), sigma_range) for i in range(400)])
  lo, hi = sigma_range
  assert sigmas.min() >= lo and sigmas.max() <= hi and sigmas.max() > 0.9 * hi and sigmas.min() < 1.1 * lo
  assert 0.35 < np.mean(sigmas < np.sqrt(lo * hi)) < 0.65  # log-uniform: half below the geometric mean
  impulse = np.zeros((41, 41, 1), np.uint8)
  impulse[20, 20] = 255
  out = synth.defocus_blur(impulse, 3.0)[..., 0]
  assert np.count_nonzero(out) == 19 * 19 and abs(out.sum() - 255) < 1e-3


def test_sharp_photos_folder(tmp_path):
  from data_pipelines import sharp_photos
  rng = np.random.default_rng(0)
  big = rng.integers(0, 256, (300, 280, 3), dtype=np.uint8)
  small = rng.integers(0, 256, (300, 200, 3), dtype=np.uint8)
  out = tmp_path / 'drpl_mff'
  written, skipped = sharp_photos.write_photos(out, [('photo', [('big', big), ('small', small)])])
  assert (written, len(skipped)) == (1, 1) and 'photo_small' in skipped[0]
  np.testing.assert_array_equal(common.read_rgb8(out / 'images' / 'photo_big.png'), big)
  assert [p.name for p in out.iterdir()] == ['images']  # no staging folder left behind
  with pytest.raises(common.DataError, match='already holds files'):  # never replaces a user's photos
    sharp_photos.write_photos(out, [('photo', [('other', big)])])
  assert sorted(p.name for p in (out / 'images').iterdir()) == ['photo_big.png']


def test_sharp_photos_mefb_mertens(tmp_path):
  from data_pipelines import sharp_photos
  from mgdn_jax.metrics import baselines
  if baselines.import_cv2() is None:
    pytest.skip('OpenCV (opencv-python-headless) is not installed: the Mertens fusion needs it')
  scene = tmp_path / 'mefb' / 'Scene'
  scene.mkdir(parents=True)
  photo = np.random.default_rng(1).integers(0, 256, (64, 80, 3), dtype=np.uint8)
  under, over = synth.mef_pair(np.random.default_rng(2), photo)
  Image.fromarray(under).save(scene / 'Scene_A.png')
  Image.fromarray(over).save(scene / 'sCENE_b.png')  # MEFB's name quirks: matched by the _A/_B suffix
  (name, fused), = list(sharp_photos.mefb_photos(tmp_path / 'mefb'))
  assert name == 'Scene' and fused.shape == photo.shape and fused.dtype == np.uint8
  # The fusion is better exposed than either source: closer to the photo the pair was made from.
  err = lambda a: np.abs(a.astype(np.float32) - photo).mean()
  assert err(fused) < min(err(under), err(over))
