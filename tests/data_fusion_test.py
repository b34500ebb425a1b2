"""Builders of the fusion test sets (lytro, mffw, mefb) on tiny layouts written here, and on ../shared/data."""
import pathlib
import struct
import zlib

import numpy as np
from PIL import Image
import pytest

from data_pipelines import common
from data_pipelines import loader


def write(path: pathlib.Path, arr: np.ndarray, **kwargs) -> pathlib.Path:
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(arr).save(path, **kwargs)
  return path


def write_png16_rgb(path: pathlib.Path, arr: np.ndarray) -> None:
  """A 16-bit RGB PNG written by hand (PIL cannot write one, and reads it silently as 8-bit)."""
  h, w, _ = arr.shape
  chunk = lambda tag, data: struct.pack('>I', len(data)) + tag + data + struct.pack('>I', zlib.crc32(tag + data))
  raw = b''.join(b'\x00' + arr[y].astype('>u2').tobytes() for y in range(h))
  path.write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 16, 2, 0, 0, 0)) +
                   chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b''))


def img(seed, h=12, w=16, c=3):
  shape = (h, w, c) if c else (h, w)
  return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def by_name(source):
  return {ex['name'].decode(): ex for ex in source}


def prepare(name, manual, tmp_path, split='test'):
  builder = loader.prepare(name, manual_dir=manual, data_dir=tmp_path / 'tfds')
  return by_name(builder.as_data_source(split))


def assert_nothing_written(tmp_path, name):
  data_dir = tmp_path / 'tfds'
  assert not data_dir.exists() or not list(data_dir.iterdir()), list(data_dir.rglob('*'))


def test_lytro_ab_folders(tmp_path):
  root = tmp_path / 'manual'
  for i in (1, 2):
    write(root / 'lytro' / 'A' / f'lytro_0{i}.png', img(i))
    write(root / 'lytro' / 'B' / f'lytro_0{i}.png', img(10 + i))
  ex = prepare('lytro', root, tmp_path)  # root holds lytro/
  assert sorted(ex) == ['lytro_01', 'lytro_02']
  np.testing.assert_array_equal(ex['lytro_02']['image_0'], img(2))
  np.testing.assert_array_equal(ex['lytro_02']['image_1'], img(12))
  assert 'target' not in ex['lytro_01']


def test_lytro_single_folder_naming(tmp_path):
  folder = tmp_path / 'Lytro'
  for i in (1, 2, 3):
    write(folder / f'lytro-0{i}-A.jpg', img(i), quality=95)
    write(folder / f'lytro-0{i}-B.jpg', img(10 + i), quality=95)
  write(folder / 'lytro-04-A.jpg', img(4))  # a three-source series: skipped
  write(folder / 'lytro-04-B.jpg', img(5))
  write(folder / 'lytro-04-C.jpg', img(6))
  ex = prepare('lytro', folder, tmp_path)
  assert sorted(ex) == ['lytro_01', 'lytro_02', 'lytro_03']
  # JPEG bytes are stored as they are: decoding gives exactly what PIL gives on the file.
  np.testing.assert_array_equal(ex['lytro_03']['image_1'], np.asarray(Image.open(folder / 'lytro-03-B.jpg')))


def test_mffw_suffixed_and_grey(tmp_path):
  folder = tmp_path / 'mffw'
  write(folder / 'MFFW_01_A.png', img(1, c=0))  # grey becomes RGB
  write(folder / 'MFFW_01_B.png', img(2, c=0))
  write(folder / 'MFFW_02_a.bmp', img(3))
  write(folder / 'MFFW_02_b.bmp', img(4))
  ex = prepare('mffw', folder, tmp_path)
  assert sorted(ex) == ['MFFW_01', 'MFFW_02']
  np.testing.assert_array_equal(ex['MFFW_01']['image_0'], np.repeat(img(1, c=0)[..., None], 3, -1))
  np.testing.assert_array_equal(ex['MFFW_02']['image_1'], img(4))


def write_mefb(root: pathlib.Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  files = {'Farmhouse': ('Farmhouse_A.png', 'FarmHouse_B.png'), 'Lighthouse': ('Lighthouse_a.png', 'Lighthouse_B.png'),
           'Sky': ('sKY_a.png', 'Sky_B.png'), 'garage': ('Garage_A.jpg', 'Garage_B.jpg'),
           'ICCV_15': ('ICCV_15_A.JPG', 'ICCV_15_B.jpg'), 'Arno': ('Arno_A.tif', 'Arno_B.tif')}
  arrays = {}
  for i, (scene, names) in enumerate(files.items()):
    pair = img(2 * i, h=10 + i), img(2 * i + 1, h=10 + i)
    for name, arr in zip(names, pair):
      write(root / scene / name, arr, **({'quality': 100} if name.lower().endswith('jpg') else {}))
    arrays[scene] = pair
  write(root / 'Arno' / 'Arno_1.tif', img(99))  # a bracket frame, ignored
  return arrays


def test_mefb_name_quirks(tmp_path):
  arrays = write_mefb(tmp_path / 'mefb')
  ex = prepare('mefb', tmp_path / 'mefb', tmp_path)
  assert sorted(ex) == sorted(arrays)
  for scene in ('Farmhouse', 'Lighthouse', 'Sky', 'Arno'):  # lossless files: exact
    np.testing.assert_array_equal(ex[scene]['image_0'], arrays[scene][0])
    np.testing.assert_array_equal(ex[scene]['image_1'], arrays[scene][1])
  assert ex['garage']['image_0'].shape == (13, 16, 3)  # JPEG: lossy, compare the shape only


@pytest.mark.parametrize('case,message', [
    ('missing_b', 'unmatched pair'),
    ('corrupt', 'unreadable or corrupt image'),
    ('sizes', 'streams of different sizes'),
    ('bit_depth', 'wrong bit depth'),
    ('rgb16', 'wrong bit depth'),
    ('empty', 'is empty'),
    ('absent', 'does not exist'),
])
def test_bad_lytro_input(tmp_path, case, message):
  folder = tmp_path / 'lytro'
  bad = folder / 'B' / 'lytro_02.png'
  named = {'missing_b': 'lytro_03.png', 'corrupt': str(bad), 'sizes': 'lytro_02', 'bit_depth': str(bad),
           'rgb16': str(bad),
           'empty': str(folder), 'absent': str(folder)}[case]
  if case not in ('empty', 'absent'):
    for i in (1, 2):
      write(folder / 'A' / f'lytro_0{i}.png', img(i))
      write(folder / 'B' / f'lytro_0{i}.png', img(10 + i))
  if case == 'missing_b':
    write(folder / 'A' / 'lytro_03.png', img(3))
  elif case == 'corrupt':
    bad.write_bytes(b'\x89PNG\r\n\x1a\n garbage')
  elif case == 'sizes':
    write(bad, img(4, h=20))
  elif case == 'bit_depth':
    write(bad, img(4)[..., 0].astype(np.uint16) * 257)
  elif case == 'rgb16':
    write_png16_rgb(bad, img(4).astype(np.uint16) * 257)
  elif case == 'empty':
    folder.mkdir()
  with pytest.raises(common.DataError) as e:
    loader.prepare('lytro', manual_dir=folder, data_dir=tmp_path / 'tfds')
  assert '\n' not in str(e.value) and message in str(e.value) and named in str(e.value), str(e.value)
  assert_nothing_written(tmp_path, 'lytro')


def test_bad_mefb_input(tmp_path):
  write_mefb(tmp_path / 'mefb')
  (tmp_path / 'mefb' / 'Sky' / 'Sky_B.png').unlink()
  with pytest.raises(common.DataError, match=r'Sky: no \*_B\.<ext> source image\(s\) \(unmatched pair\)'):
    loader.prepare('mefb', manual_dir=tmp_path / 'mefb', data_dir=tmp_path / 'tfds')
  assert_nothing_written(tmp_path, 'mefb')


def test_shared_lytro(shared_dir, tmp_path):
  ex = prepare('lytro', shared_dir / 'data', tmp_path)
  assert len(ex) == 20 and sorted(ex)[0] == 'lytro_01'
  a = np.asarray(Image.open(shared_dir / 'data/lytro/A/lytro_07.jpg'))
  b = np.asarray(Image.open(shared_dir / 'data/lytro/B/lytro_07.jpg'))
  np.testing.assert_array_equal(ex['lytro_07']['image_0'], a)
  np.testing.assert_array_equal(ex['lytro_07']['image_1'], b)
  assert all(e['image_0'].shape == (520, 520, 3) == e['image_1'].shape for e in ex.values())


@pytest.fixture(scope='module')
def shared_mefb(shared_dir, tmp_path_factory):
  """MEFB (45 MB) is prepared once per module."""
  data_dir = tmp_path_factory.mktemp('tfds_mefb')
  builder = loader.prepare('mefb', manual_dir=shared_dir / 'data', data_dir=data_dir)
  return builder.as_data_source('test')


def test_shared_mefb(shared_mefb, shared_dir):
  assert len(shared_mefb) == 100
  names = set()
  for ex in shared_mefb:
    name = ex['name'].decode()
    names.add(name)
    assert ex['image_0'].shape == ex['image_1'].shape and ex['image_0'].shape[-1] == 3
    if name == 'Farmhouse':
      want = np.asarray(Image.open(shared_dir / 'data/mefb/Farmhouse/FarmHouse_B.png').convert('RGB'))
      np.testing.assert_array_equal(ex['image_1'], want)
  assert {'Farmhouse', 'Lighthouse', 'Sky', 'garage', 'ICCV_15', 'hongkong_02', '507'} <= names
