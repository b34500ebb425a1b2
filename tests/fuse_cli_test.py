"""End-to-end tests of `python -m mgdn_jax.fuse`: scene discovery, formats, bad input, official MFF parity."""
import os
import struct
import subprocess
import sys
import zlib

import ml_collections
import numpy as np
from PIL import Image
import pytest

from mgdn_jax import checkpoint
from mgdn_jax import convert
from mgdn_jax import fuse
from mgdn_jax import image_io
from mgdn_jax import model as model_lib
from mgdn_jax import tonemap

H, W = 20, 28  # one size everywhere: a single compilation per tiny model


def _export(path, preset, task):
  cfg = model_lib.model_config(preset)
  model = model_lib.create_model(cfg, seed=0)
  config = ml_collections.ConfigDict({'task': task, 'model': cfg, 'data': {'gdsr_scale': 4}})
  checkpoint.save_model(str(path), model, config)
  return str(path)


@pytest.fixture(scope='module')
def ckpts(tmp_path_factory):
  root = tmp_path_factory.mktemp('ckpt')
  return {'mef': _export(root / 'mef', 'tiny_fusion', 'mef'), 'hdr': _export(root / 'hdr', 'tiny_hdr', 'hdr'),
          'gdsr': _export(root / 'gdsr', 'tiny_gdsr', 'gdsr')}


def _png(path, h=H, w=W, seed=0):
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
  return str(path)


def _fuse(*argv):
  return fuse.main([str(a) for a in argv])


def test_one_mef_pair_and_16bit_output(ckpts, tmp_path):
  a, b = _png(tmp_path / 'u.png', seed=1), _png(tmp_path / 'o.png', seed=2)
  _fuse('--task=mef', f'--checkpoint={ckpts["mef"]}', a, b, f'--output={tmp_path / "f.png"}')
  out, bits = image_io.read_image(tmp_path / 'f.png')
  assert out.shape == (H, W, 3) and bits == 8
  _fuse('--task=mef', f'--checkpoint={ckpts["mef"]}', a, b, f'--output={tmp_path / "f16.tif"}', '--bits=16')
  out16, bits = image_io.read_image(tmp_path / 'f16.tif')
  assert bits == 16 and np.abs(out16 - out).max() <= 0.5 / 255 + 1e-6
  (tmp_path / 'f.png').write_bytes(b'mine')
  with pytest.raises(SystemExit, match=r'output .*f.png exists: pass --overwrite to replace it'):
    _fuse('--task=mef', f'--checkpoint={ckpts["mef"]}', a, b, f'--output={tmp_path / "f.png"}')
  assert (tmp_path / 'f.png').read_bytes() == b'mine'
  _fuse('--task=mef', f'--checkpoint={ckpts["mef"]}', a, b, f'--output={tmp_path / "f.png"}', '--overwrite')
  assert image_io.read_image(tmp_path / 'f.png')[0].shape == (H, W, 3)


def test_batch_pairs_by_scene_name_not_by_index(ckpts, tmp_path):
  # Stream folders whose case-sensitive sorted orders differ (index pairing would match x1 with y2).
  _png(tmp_path / 'A' / 'x1.png', seed=1), _png(tmp_path / 'A' / 'Y2.png', seed=2)
  _png(tmp_path / 'B' / 'y2.png', seed=3), _png(tmp_path / 'B' / 'X1.jpg', seed=4)
  _fuse('--task=mff', f'--checkpoint={ckpts["mef"]}', tmp_path / 'A', tmp_path / 'B', f'--output={tmp_path / "out"}')
  assert sorted(os.listdir(tmp_path / 'out')) == ['Y2.png', 'x1.png']
  _fuse('--task=mff', f'--checkpoint={ckpts["mef"]}', tmp_path / 'A' / 'x1.png', tmp_path / 'B' / 'X1.jpg',
        f'--output={tmp_path / "x1.png"}')
  assert (tmp_path / 'x1.png').read_bytes() == (tmp_path / 'out' / 'x1.png').read_bytes()
  # Scene folders (MEFB layout, tag case varies) through a glob, and a flat folder of tagged files.
  _png(tmp_path / 'mefb' / 'Sky' / 'sKY_a.png', seed=5), _png(tmp_path / 'mefb' / 'Sky' / 'Sky_B.png', seed=6)
  _png(tmp_path / 'mefb' / 'Arno' / 'Arno_A.png', seed=7), _png(tmp_path / 'mefb' / 'Arno' / 'Arno_B.png', seed=8)
  _fuse('--task=mef', f'--checkpoint={ckpts["mef"]}', f'{tmp_path}/mefb/*', f'--output={tmp_path / "o2"}',
        '--format=tif')
  assert sorted(os.listdir(tmp_path / 'o2')) == ['Arno.tif', 'Sky.tif']
  scenes = fuse.find_scenes('mef', [tmp_path / 'mefb' / 'Sky'])
  assert [f.name for f in scenes[0].files] == ['sKY_a.png', 'Sky_B.png']


def test_padding_tiling_and_dtype_options(ckpts, tmp_path):
  a, b = _png(tmp_path / 'a.png', seed=1), _png(tmp_path / 'b.png', seed=2)
  for extra, name in [('--padding=official', 'p.png'), ('--tile=16', 't.png'), ('--dtype=bfloat16', 'bf.png')]:
    _fuse('--task=mef', f'--checkpoint={ckpts["mef"]}', a, b, f'--output={tmp_path / name}', extra, '--overlap=4')
    assert image_io.read_image(tmp_path / name)[0].shape == (H, W, 3)


def test_hdr_scene_folder_writes_radiance_and_preview(ckpts, tmp_path):
  scene = tmp_path / 'scene'
  scene.mkdir()
  rng = np.random.default_rng(0)
  for i in range(3):
    image_io.write_image(scene / f'262A{i}.tif', rng.random((H, W, 3)), bits=16)
  (scene / 'exposure.txt').write_text('0\n2\n4\n')
  _fuse('--task=hdr', f'--checkpoint={ckpts["hdr"]}', scene, f'--output={tmp_path / "x.hdr"}')
  hdr = image_io.read_hdr(tmp_path / 'x.hdr')
  preview, bits = image_io.read_image(tmp_path / 'x_tonemapped.png')
  assert hdr.shape == preview.shape == (H, W, 3) and bits == 8
  assert np.abs(preview - tonemap.mu_law(hdr)).mean() < 0.01  # preview = μ-law of the (unquantised) output
  frames = sorted(str(p) for p in scene.glob('*.tif'))
  _fuse('--task=hdr', f'--checkpoint={ckpts["hdr"]}', *frames, '--exposures=0,2,4', f'--output={tmp_path / "y.hdr"}')
  np.testing.assert_array_equal(image_io.read_hdr(tmp_path / 'y.hdr'), hdr)


def test_gdsr_npy_and_16bit_png_depth(ckpts, tmp_path):
  rgb = _png(tmp_path / 'rgb.png', h=4 * 6, w=4 * 7)
  depth = np.random.default_rng(0).uniform(0.7, 4., (6, 7)).astype(np.float32)
  np.save(tmp_path / 'd.npy', depth)
  _fuse('--task=gdsr', f'--checkpoint={ckpts["gdsr"]}', rgb, tmp_path / 'd.npy', f'--output={tmp_path / "o.npy"}')
  out = np.load(tmp_path / 'o.npy')
  assert out.shape == (24, 28) and out.dtype == np.float32
  assert depth.min() - 1e-5 <= out.min() and out.max() <= depth.max() + 1e-5
  image_io.write_depth(tmp_path / 'd.png', depth)
  _fuse('--task=gdsr', f'--checkpoint={ckpts["gdsr"]}', rgb, tmp_path / 'd.png', f'--output={tmp_path / "o.png"}')
  np.testing.assert_allclose(image_io.read_depth(tmp_path / 'o.png'), out, atol=2e-3)


@pytest.mark.parametrize('case, pattern', [
    ('sizes', r'inputs differ in size: .*a.png 20x28, .*c.png 24x28 \(pass --resize_to_first'),
    ('count', r'task mef needs 2 inputs \(under-exposed, over-exposed\), got 3'),
    ('unreadable', r'cannot read image .*bad.png'),
    ('exposures', r'task hdr needs exposure values for .*: pass --exposures=-2,0,2 or put exposure.txt'),
    ('depth', r'depth .*big.npy \(40x40\) is larger than the RGB guide .*a.png \(20x28\)'),
    ('output', r'cannot write output .*: folder .*missing does not exist'),
    ('format', r'cannot write .*x.hdr: task mef writes .png'),
    ('missing', r'input .*nothere.png does not exist'),
    ('checkpoint', r'checkpoint .*nockpt is neither a folder'),
])
def test_bad_input_is_a_one_line_error(ckpts, tmp_path, case, pattern):
  a, b, c = _png(tmp_path / 'a.png'), _png(tmp_path / 'b.png'), _png(tmp_path / 'c.png', h=24)
  (tmp_path / 'bad.png').write_bytes(b'garbage')
  np.save(tmp_path / 'big.npy', np.ones((40, 40), np.float32))
  out = f'--output={tmp_path / "o.png"}'
  argv = {
      'sizes': ['--task=mef', a, c, out],
      'count': ['--task=mef', a, b, c, out],
      'unreadable': ['--task=mef', a, tmp_path / 'bad.png', out],
      'exposures': ['--task=hdr', a, b, b, f'--output={tmp_path / "x.hdr"}'],
      'depth': ['--task=gdsr', a, tmp_path / 'big.npy', f'--output={tmp_path / "o.npy"}'],
      'output': ['--task=mef', a, b, f'--output={tmp_path / "missing" / "o.png"}'],
      'format': ['--task=mef', a, b, f'--output={tmp_path / "x.hdr"}'],
      'missing': ['--task=mef', a, tmp_path / 'nothere.png', out],
      'checkpoint': ['--task=mef', a, b, out, f'--checkpoint={tmp_path / "nockpt"}'],
  }[case]
  task = argv[0].split('=')[1]
  if case != 'checkpoint':
    argv.append(f'--checkpoint={ckpts.get(task, ckpts["mef"])}')
  before = sorted(os.listdir(tmp_path))
  with pytest.raises(SystemExit, match=pattern) as e:
    _fuse(*argv)
  assert '\n' not in str(e.value)
  assert sorted(os.listdir(tmp_path)) == before  # no partial output


@pytest.mark.parametrize('overwrite', [False, True])
def test_an_input_is_never_replaced(ckpts, tmp_path, overwrite):
  a, b = _png(tmp_path / 'B' / 's1.png', seed=1), _png(tmp_path / 'B' / 's2.png', seed=2)
  os.symlink(a, tmp_path / 'link.png')
  before = {p: (tmp_path / 'B' / p).read_bytes() for p in ('s1.png', 's2.png')}
  for out in (a, tmp_path / 'link.png'):
    with pytest.raises(SystemExit, match=rf'output .*{os.path.basename(out)} is the input .*s1.png: choose another'):
      _fuse('--task=mff', f'--checkpoint={ckpts["mef"]}', a, b, f'--output={out}', *['--overwrite'] * overwrite)
  # a batch into an input folder: the outputs B/s1.png, B/s2.png would be the inputs of the stream B
  _png(tmp_path / 'A' / 's1.png', seed=3), _png(tmp_path / 'A' / 's2.png', seed=4)
  with pytest.raises(SystemExit, match=r'output .*B/s1.png is the input .*B/s1.png'):
    _fuse('--task=mff', f'--checkpoint={ckpts["mef"]}', tmp_path / 'A', tmp_path / 'B', f'--output={tmp_path / "B"}',
          *['--overwrite'] * overwrite)
  assert {p: (tmp_path / 'B' / p).read_bytes() for p in ('s1.png', 's2.png')} == before


@pytest.mark.parametrize('case', ['unreadable', 'sizes', 'bomb'])
def test_a_batch_checks_every_input_before_the_first_fusion(ckpts, tmp_path, case):
  for i in range(3):
    _png(tmp_path / 'A' / f's{i}.png', seed=i), _png(tmp_path / 'B' / f's{i}.png', seed=10 + i)
  bad = tmp_path / 'B' / 's2.png'  # the last scene
  if case == 'unreadable':
    bad.write_bytes(bad.read_bytes()[:60])
    pattern = r'cannot read image .*B/s2.png: '
  elif case == 'sizes':
    _png(bad, h=24)
    pattern = r'inputs differ in size: .*A/s2.png 20x28, .*B/s2.png 24x28'
  else:
    ihdr = b'IHDR' + struct.pack('>IIBBBBB', 14000, 14000, 16, 2, 0, 0, 0)
    bad.write_bytes(b'\x89PNG\r\n\x1a\n' + struct.pack('>I', 13) + ihdr + struct.pack('>I', zlib.crc32(ihdr)))
    pattern = r'cannot read image .*B/s2.png: 14000x14000 pixels exceeds the limit'
  with pytest.raises(SystemExit, match=pattern) as e:
    _fuse('--task=mff', f'--checkpoint={ckpts["mef"]}', tmp_path / 'A', tmp_path / 'B', f'--output={tmp_path / "out"}')
  assert '\n' not in str(e.value)
  assert not (tmp_path / 'out').exists()  # no scene was fused, and the folder this run made is gone


def test_resize_to_first(ckpts, tmp_path):
  a, c = _png(tmp_path / 'a.png'), _png(tmp_path / 'c.png', h=24)
  _fuse('--task=mef', f'--checkpoint={ckpts["mef"]}', a, c, f'--output={tmp_path / "o.png"}', '--resize_to_first')
  assert image_io.read_image(tmp_path / 'o.png')[0].shape == (H, W, 3)


def test_help_explains_tiling():
  text = subprocess.run([sys.executable, '-m', 'mgdn_jax.fuse', '--help'], capture_output=True, text=True,
                        check=True, cwd=os.path.dirname(os.path.dirname(__file__))).stdout
  assert 'tiled result differs from the untiled one' in ' '.join(text.split())
  assert '--padding' in text and '--exposures' in text


def test_official_mff_weights_reproduce_lytro_01(shared_dir, tmp_path):
  """Converted official MFF weights + the official padding protocol: within 1 uint8 level of the official PNG."""
  weights = shared_dir / 'weights' / 'mgdn_mff_official_62000_E.npz'
  expected = np.asarray(Image.open(shared_dir / 'reference' / 'official_outputs' / 'lytro_01.png'))
  convert.main(['--task=mff', f'--official={weights}', f'--out={tmp_path / "mff"}'])  # the converter's CLI
  lytro = shared_dir / 'data' / 'lytro'
  _fuse('--task=mff', f'--checkpoint={tmp_path / "mff"}', lytro / 'A' / 'lytro_01.jpg', lytro / 'B' / 'lytro_01.jpg',
        '--padding=official', '--noauto_tile', f'--output={tmp_path / "lytro_01.png"}')
  got = np.asarray(Image.open(tmp_path / 'lytro_01.png'))
  assert got.shape == expected.shape == (520, 520, 3)
  diff = np.abs(got.astype(int) - expected.astype(int))
  assert diff.max() <= 1, (diff.max(), (diff > 0).mean())
