"""`kalantari` builder on tiny scenes with real 16-bit TIFFs and Radiance .hdr files (the fuse CLI's codec); bad input."""
import pathlib

import numpy as np
import pytest
import tifffile

from data_pipelines import common
from data_pipelines import kalantari
from data_pipelines import loader
from mgdn_jax import image_io


def write_scene(folder: pathlib.Path, seed: int, h=9, w=12, evs=(0.0, 2.0, 4.0)):
  folder.mkdir(parents=True)
  rng = np.random.default_rng(seed)
  frames = [rng.integers(0, 65536, (h, w, 3), dtype=np.uint16) for _ in range(3)]
  for k, frame in enumerate(frames):
    tifffile.imwrite(folder / f'262A{seed:02d}{k:02d}.tif', frame, photometric='rgb')
  (folder / 'exposure.txt').write_text(''.join(f'{e:.6f}\n' for e in evs))
  target = rng.uniform(0, 1, (h, w, 3)).astype(np.float32)
  image_io.write_hdr(folder / 'HDRImg.hdr', target)
  return frames, target


def test_builder_reads_hdr_with_the_shared_codec(tmp_path):
  # One 8-pixel RLE scanline: R a run of 128, G literal bytes, B a run of 0, E a run of 129 (scale 2^-7).
  line = bytes((2, 2, 0, 8, 136, 128, 8)) + bytes(range(8)) + bytes((136, 0, 136, 129))
  path = tmp_path / 'HDRImg.hdr'
  path.write_bytes(b'#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 1 +X 8\n' + line)
  img = kalantari.read_target(path)
  np.testing.assert_array_equal(img[0, :, 0], 1.0)
  np.testing.assert_array_equal(img[0, :, 1], np.arange(8) / 128)
  np.testing.assert_array_equal(img[0, :, 2], 0.0)
  np.testing.assert_array_equal(img, image_io.read_hdr(path))
  path.write_bytes(path.read_bytes()[:-3])
  with pytest.raises(common.DataError, match=r'HDRImg.hdr: truncated pixel data'):
    kalantari.read_target(path)


def test_kalantari_layout(tmp_path):
  root = tmp_path / 'kalantari'
  train = {f'{i:03d}': write_scene(root / 'Training' / f'{i:03d}', i) for i in (1, 2)}
  test = write_scene(root / 'Test' / 'PAPER' / 'BarbequeDay', 7, evs=(0.0, 3.0, 6.0))
  builder = loader.prepare('kalantari', manual_dir=tmp_path, data_dir=tmp_path / 'tfds')
  assert builder.info.splits['train'].num_examples == 2
  ex = {e['name'].decode(): e for e in builder.as_data_source('train')}
  frames, target = train['002']
  for k in range(3):
    assert ex['002'][f'image_{k}'].dtype == np.uint16
    np.testing.assert_array_equal(ex['002'][f'image_{k}'], frames[k])
  np.testing.assert_allclose(ex['002']['target'], target, atol=1 / 128)
  assert ex['002']['target'].dtype == np.float32
  np.testing.assert_array_equal(ex['002']['exposures'], [0, 2, 4])
  (only,) = list(builder.as_data_source('test'))
  assert only['name'].decode() == 'PAPER/BarbequeDay'
  np.testing.assert_array_equal(only['exposures'], [0, 3, 6])
  np.testing.assert_array_equal(only['image_2'], test[0][2])


def _break(folder: pathlib.Path, case: str) -> str:
  """Damages a valid scene; returns a fragment the error must contain."""
  tiffs = sorted(folder.glob('*.tif'))
  if case == 'no_exposure':
    (folder / 'exposure.txt').unlink()
    return f'{folder / "exposure.txt"}: missing exposure file'
  if case == 'bad_exposure':
    (folder / 'exposure.txt').write_text('0\n2\n')
    return 'expected 3 EVs, found 2'
  if case == 'no_hdr':
    (folder / 'HDRImg.hdr').unlink()
    return 'HDRImg.hdr: missing ground-truth HDR image'
  if case == 'two_tiffs':
    tiffs[0].unlink()
    return 'expected 3 TIFF exposures, found 2'
  if case == 'eight_bit':
    tifffile.imwrite(tiffs[1], np.zeros((9, 12, 3), np.uint8), photometric='rgb')
    return f'{tiffs[1]}: wrong bit depth (uint8)'
  if case == 'sizes':
    tifffile.imwrite(tiffs[2], np.zeros((9, 10, 3), np.uint16), photometric='rgb')
    return 'streams of different sizes'
  if case == 'corrupt_tiff':
    tiffs[0].write_bytes(b'II*\x00garbage')
    return f'{tiffs[0]}: unreadable or corrupt TIFF'
  if case == 'corrupt_hdr':
    (folder / 'HDRImg.hdr').write_bytes(b'P6\n')
    return 'HDRImg.hdr: not a Radiance file'
  raise ValueError(case)


@pytest.mark.parametrize('case', ['no_exposure', 'bad_exposure', 'no_hdr', 'two_tiffs', 'eight_bit', 'sizes',
                                  'corrupt_tiff', 'corrupt_hdr'])
def test_bad_scene(tmp_path, case):
  root = tmp_path / 'kalantari'
  write_scene(root / 'Training' / '001', 1)
  write_scene(root / 'Training' / '002', 2)
  fragment = _break(root / 'Training' / '002', case)
  with pytest.raises(common.DataError) as e:
    loader.prepare('kalantari', manual_dir=tmp_path, data_dir=tmp_path / 'tfds')
  assert fragment in str(e.value) and '\n' not in str(e.value), str(e.value)
  assert not (tmp_path / 'tfds' / 'kalantari').exists()


def test_wrong_manual_dir(tmp_path):
  (tmp_path / 'kalantari' / 'stuff').mkdir(parents=True)
  with pytest.raises(common.DataError, match='no Training/ or Test/ folder'):
    loader.prepare('kalantari', manual_dir=tmp_path, data_dir=tmp_path / 'tfds')
  assert not (tmp_path / 'tfds' / 'kalantari').exists()
