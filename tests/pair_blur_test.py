"""tools/pair_blur.py: the σ of a known synthetic defocus is recovered (also across an exposure difference), an
unblurred pair has no explained tile, and bad folders are one-line errors naming the file."""
import numpy as np
from PIL import Image
import pytest
from scipy import ndimage

from data_pipelines import common
from data_pipelines import synth
from tools import pair_blur


def _texture(seed: int, size: int = 128) -> np.ndarray:
  """A sharp-edged uint8 (size, size, 3) image: blocks of random gray levels, so every tile has texture."""
  blocks = np.random.default_rng(seed).integers(0, 256, (size // 8, size // 8, 3))
  return np.kron(blocks, np.ones((8, 8, 1))).astype(np.uint8)


def _gray(img: np.ndarray) -> np.ndarray:
  return img.astype(np.float64).mean(-1) / 255


@pytest.mark.parametrize('sigma', [1.0, 2.5, 5.0])
def test_the_sigma_of_a_synthetic_defocus_is_recovered(sigma):
  sharp = _texture(0)
  mask = np.zeros(sharp.shape[:2], bool)
  mask[:, :64] = True
  near, far = synth.drpl_pair(sharp, mask, (sigma, sigma))
  fits = pair_blur.estimate(_gray(near), _gray(far))
  assert len(fits) >= 12  # 16 tiles, each sharp in one source and blurred in the other (but the seam column)
  assert abs(np.log(np.median([t.sigma for t in fits]) / sigma)) < 0.13  # within one step of the 12 % grid
  assert np.mean([t.gaussian_mse < t.disk_mse for t in fits]) > 0.8  # a Gaussian blur is told from a disk
  # an exposure difference between the sources (gain and offset) changes nothing
  dimmer = pair_blur.estimate(_gray(near), 0.7 * _gray(far) + 0.1)
  assert [t.sigma for t in dimmer] == [t.sigma for t in fits]


def test_a_disk_blur_is_told_from_a_gaussian():
  sharp = _gray(_texture(1))
  blurred = pair_blur._convolve(sharp, pair_blur._disk(4.0))
  fits = pair_blur.estimate(sharp, blurred)
  assert np.mean([t.disk_mse < t.gaussian_mse for t in fits]) > 0.8
  assert abs(np.log(np.median([t.radius for t in fits]) / 4.0)) < 0.13


def test_an_unblurred_pair_explains_no_tile():
  sharp = _gray(_texture(2))
  assert not pair_blur.estimate(sharp, sharp)
  noise = np.random.default_rng(3).uniform(0, 1, sharp.shape)
  assert not pair_blur.estimate(sharp, ndimage.gaussian_filter(noise, 1))  # unrelated content: no blur explains it


def _pair_dir(root, names=('p1',), b_names=None, b_size=(64, 64)):
  for sub, files, size in (('A', names, (64, 64)), ('B', names if b_names is None else b_names, b_size)):
    (root / sub).mkdir(parents=True, exist_ok=True)
    for n in files:
      Image.fromarray(np.zeros(size + (3,), np.uint8)).save(root / sub / f'{n}.png')
  return root


def test_bad_folders_are_one_line_errors_naming_the_file(tmp_path):
  with pytest.raises(common.DataError, match='unmatched pair'):
    pair_blur.scan(_pair_dir(tmp_path / 'a', b_names=()), 32)
  with pytest.raises(common.DataError, match='64x64'):
    pair_blur.scan(_pair_dir(tmp_path / 'b', b_size=(32, 64)), 32)
  (tmp_path / 'c' / 'A').mkdir(parents=True)
  (tmp_path / 'c' / 'B').mkdir()
  with pytest.raises(common.DataError, match='no image pairs'):
    pair_blur.scan(tmp_path / 'c', 32)
  with pytest.raises(SystemExit) as e:
    pair_blur.main([f'--sources_dir={tmp_path / "a"}'])
  a, b = tmp_path / 'a' / 'A' / 'p1.png', tmp_path / 'a' / 'B' / 'p1.png'
  assert str(e.value) == f'pair_blur: error: {a}: unmatched pair (no p1.* in {b.parent})'


def test_the_summary_of_a_blurred_pair(tmp_path, capsys):
  sharp = _texture(4)
  mask = np.zeros(sharp.shape[:2], bool)
  mask[:, 64:] = True
  near, far = synth.drpl_pair(sharp, mask, (3.0, 3.0))
  for sub, img in (('A', near), ('B', far)):
    (tmp_path / sub).mkdir()
    Image.fromarray(img).save(tmp_path / sub / 'x.png')
  pair_blur.main([f'--sources_dir={tmp_path}'])
  out = capsys.readouterr().out.splitlines()
  assert out[1].split()[0] == 'x' and 2.6 < float(out[1].split()[2]) < 3.4
  assert 'Gaussian σ at percentiles' in out[2] and '2–4: 100%' in out[3]
