"""Round trips of every file format the fuse command reads or writes, and the one-line read/write errors."""
import os
import struct
import tracemalloc
import zlib

import numpy as np
from PIL import Image
import pytest
import tifffile

from mgdn_jax import image_io, png16
from mgdn_jax.image_io import InputError


@pytest.fixture
def rng():
  return np.random.default_rng(0)


@pytest.mark.parametrize('suffix', ['.png', '.tif'])
@pytest.mark.parametrize('shape', [(7, 9, 3), (7, 9), (5, 6, 4)])
def test_16bit_round_trip_is_exact(tmp_path, rng, suffix, shape):
  ints = rng.integers(0, 65536, shape).astype(np.uint16)
  path = tmp_path / f'x{suffix}'
  image_io.write_image(path, ints / 65535., bits=16)
  np.testing.assert_array_equal(image_io.read_array(path), ints)
  img, bits = image_io.read_image(path, channels=None)
  assert bits == 16 and img.dtype == np.float32
  np.testing.assert_allclose(img.reshape(ints.shape), ints / 65535., atol=1e-7)


@pytest.mark.parametrize('suffix', ['.png', '.tif'])
def test_8bit_round_trip_is_exact(tmp_path, rng, suffix):
  ints = rng.integers(0, 256, (6, 11, 3)).astype(np.uint8)
  path = tmp_path / f'x{suffix}'
  image_io.write_image(path, ints / 255., bits=8)
  img, bits = image_io.read_image(path)
  assert bits == 8
  np.testing.assert_array_equal(image_io.quantize(img, 8), ints)


def test_16bit_png_is_readable_by_pillow_as_16bit_grey(tmp_path, rng):
  ints = rng.integers(0, 65536, (5, 8)).astype(np.uint16)
  image_io.write_image(tmp_path / 'g.png', ints / 65535., bits=16)
  with Image.open(tmp_path / 'g.png') as im:
    np.testing.assert_array_equal(np.asarray(im).astype(np.uint16), ints)


def test_jpeg_and_grey_to_rgb(tmp_path, rng):
  grey = rng.integers(0, 256, (8, 8)).astype(np.uint8)
  Image.fromarray(grey).save(tmp_path / 'g.jpg', quality=100)
  img, bits = image_io.read_image(tmp_path / 'g.jpg')
  assert img.shape == (8, 8, 3) and bits == 8
  np.testing.assert_array_equal(img[..., 0], img[..., 2])
  with pytest.raises(InputError, match='JPEG holds 8 bits only'):
    image_io.write_image(tmp_path / 'x.jpg', img, bits=16)


@pytest.mark.parametrize('dtype', [np.uint8, np.uint16])
def test_to_float32_matches_the_official_float64_division(dtype):
  every = np.arange(np.iinfo(dtype).max + 1).astype(dtype)
  got = image_io.to_float32(every)
  assert got.dtype == np.float32
  official = (every / float(np.iinfo(dtype).max)).astype(np.float32)  # float32(img / 255.)
  np.testing.assert_array_equal(got.view(np.uint32), official.view(np.uint32))  # bit for bit


def test_to_float32_keeps_float32_without_a_copy():
  x = np.ones((2, 2), np.float32)
  assert image_io.to_float32(x) is x
  with pytest.raises(TypeError, match='int32'):
    image_io.to_float32(np.ones(2, np.int32))


def test_quantize_rounds_half_to_even_and_clamps():
  x = np.array([-0.1, 0.5 / 255, 1.5 / 255, 2.5 / 255, 1.2], np.float64)
  np.testing.assert_array_equal(image_io.quantize(x, 8), [0, 0, 2, 2, 255])


def test_hdr_round_trip_within_rgbe_precision(tmp_path, rng):
  img = np.exp(rng.normal(0., 3., (6, 300, 3))).astype(np.float32)  # RLE path (8 ≤ width ≤ 32767)
  img[0, 0] = 0.
  img[1, 1] = (1e-3, 0., 5.)
  image_io.write_hdr(tmp_path / 'x.hdr', img)
  back = image_io.read_hdr(tmp_path / 'x.hdr')
  # RGBE keeps 8 mantissa bits of the largest channel, truncated: error < one step ≤ max channel / 128.
  assert np.all(np.abs(back - img) <= img.max(-1, keepdims=True) / 128 + 1e-30)
  assert np.all(back <= img)
  assert np.all(back[0, 0] == 0)
  narrow = img[:, :5]  # flat scanlines (width < 8)
  image_io.write_hdr(tmp_path / 'y.hdr', narrow)
  back = image_io.read_hdr(tmp_path / 'y.hdr')
  assert np.all(np.abs(back - narrow) <= narrow.max(-1, keepdims=True) / 128 + 1e-30)


def _hdr_file(path, pixels, width):
  """A flat-scanline Radiance file holding the given RGBE byte quadruples."""
  rows = len(pixels) // width
  path.write_bytes(f'#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y {rows} +X {width}\n'.encode()
                   + bytes(v for px in pixels for v in px))
  return path


def test_hdr_decodes_as_the_official_evaluation_reads_it(tmp_path):
  """(r, g, b, e) is (r, g, b) · 2^(e − 136), as MATLAB's hdrread (which made the official H5 ground truth),
  OpenCV and FreeImage decode it; not Radiance's (r + 0.5) · 2^(e − 136)."""
  pixels = [(128, 64, 32, 129), (0, 0, 0, 0), (255, 1, 0, 136), (200, 100, 3, 120), (7, 0, 9, 0), (1, 2, 3, 140)]
  path = _hdr_file(tmp_path / 'known.hdr', pixels, width=3)
  got = image_io.read_hdr(path)
  assert got.dtype == np.float32 and got.shape == (2, 3, 3)
  want = np.array([[[1., .5, .25], [0., 0., 0.], [255., 1., 0.]],
                   [[200 / 2**16, 100 / 2**16, 3 / 2**16], [0., 0., 0.], [16., 32., 48.]]], np.float32)
  np.testing.assert_array_equal(got, want)  # exact: 8-bit integers times powers of two
  cv2 = pytest.importorskip('cv2')
  bgr = cv2.imread(str(path), cv2.IMREAD_ANYDEPTH | cv2.IMREAD_COLOR)
  np.testing.assert_array_equal(bgr[..., ::-1], want)
  image_io.write_hdr(tmp_path / 'again.hdr', got)
  assert image_io.read_hdr(tmp_path / 'again.hdr').tobytes() == got.tobytes()  # the encoder inverts the decoder


def test_hdr_written_bytes_are_known(tmp_path):
  img = np.array([[[1., .5, .25], [3., 0., 0.]]], np.float32)  # 1 = 0.5 · 2^1: mantissa 128, e = 129
  image_io.write_hdr(tmp_path / 'w.hdr', img)
  data = (tmp_path / 'w.hdr').read_bytes()
  assert data == b'#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 1 +X 2\n' + bytes((128, 64, 32, 129, 192, 0, 0, 130))


def test_exr_needs_the_openexr_package(tmp_path):
  try:
    import OpenEXR  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    with pytest.raises(InputError, match='needs the OpenEXR package'):
      image_io.write_radiance(tmp_path / 'x.exr', np.ones((4, 4, 3), np.float32))
    assert not os.listdir(tmp_path)
  else:
    img = np.random.default_rng(0).random((4, 5, 3)).astype(np.float32) * 3
    image_io.write_radiance(tmp_path / 'x.exr', img)
    with OpenEXR.File(str(tmp_path / 'x.exr')) as f:
      np.testing.assert_array_equal(f.channels()['RGB'].pixels, img)  # float32, lossless ZIP


def test_depth_npy_round_trip(tmp_path, rng):
  depth = rng.uniform(0.5, 8., (12, 16)).astype(np.float32)
  image_io.write_depth(tmp_path / 'd.npy', depth)
  np.testing.assert_array_equal(image_io.read_depth(tmp_path / 'd.npy'), depth)


@pytest.mark.parametrize('suffix', ['.png', '.tif'])
def test_depth_16bit_round_trip(tmp_path, rng, suffix):
  units = rng.integers(0, 65536, (12, 16)).astype(np.uint16)
  depth = units.astype(np.float32) / 5000.
  image_io.write_depth(tmp_path / f'd{suffix}', depth, depth_scale=5000.)
  np.testing.assert_array_equal(image_io.read_array(tmp_path / f'd{suffix}'), units)
  np.testing.assert_allclose(image_io.read_depth(tmp_path / f'd{suffix}', depth_scale=5000.), depth, rtol=1e-6)


def test_depth_16bit_written_by_others(tmp_path):
  tifffile.imwrite(tmp_path / 'd.tif', np.full((3, 4), 1500, np.uint16))
  np.testing.assert_allclose(image_io.read_depth(tmp_path / 'd.tif'), 1.5)  # default: millimetres


def test_depth_errors(tmp_path):
  with pytest.raises(InputError, match=r'exceeds 16 bits'):
    image_io.write_depth(tmp_path / 'd.png', np.full((2, 2), 70., np.float32))
  np.save(tmp_path / 'bad.npy', np.zeros((2, 3, 3), np.float32))
  with pytest.raises(InputError, match=r'bad.npy: expected one channel'):
    image_io.read_depth(tmp_path / 'bad.npy')
  assert sorted(os.listdir(tmp_path)) == ['bad.npy']


def test_unreadable_file_names_the_file(tmp_path):
  (tmp_path / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\nnot really')
  with pytest.raises(InputError, match=r'cannot read image .*broken.png'):
    image_io.read_image(tmp_path / 'broken.png')
  with pytest.raises(InputError, match=r'cannot read image .*missing.tif'):
    image_io.read_image(tmp_path / 'missing.tif')
  (tmp_path / 'x.hdr').write_bytes(b'P6 junk')
  with pytest.raises(InputError, match=r'cannot read HDR image .*x.hdr: .*not a Radiance file'):
    image_io.read_hdr(tmp_path / 'x.hdr')


def test_exposure_file(tmp_path):
  (tmp_path / 'exposure.txt').write_text('-2.0\n0\n2\n')
  assert image_io.read_exposures(tmp_path / 'exposure.txt') == [-2., 0., 2.]
  (tmp_path / 'bad.txt').write_text('0 two 4')
  with pytest.raises(InputError, match='cannot read exposures from .*bad.txt'):
    image_io.read_exposures(tmp_path / 'bad.txt')


def test_unwritable_output_is_reported_before_writing(tmp_path):
  with pytest.raises(InputError, match=r'cannot write output .*: folder .*nowhere does not exist'):
    image_io.write_image(tmp_path / 'nowhere' / 'x.png', np.zeros((2, 2, 3)))
  with pytest.raises(InputError, match='unsupported image format'):
    image_io.write_image(tmp_path / 'x.bmp', np.zeros((2, 2, 3)))


def test_failed_write_leaves_no_partial_file(tmp_path):
  (tmp_path / 'keep.png').write_bytes(b'old')
  with pytest.raises(RuntimeError):
    with image_io.atomic_write(tmp_path / 'keep.png') as f:
      f.write(b'half')
      raise RuntimeError('disk full')
  assert sorted(os.listdir(tmp_path)) == ['keep.png']
  assert (tmp_path / 'keep.png').read_bytes() == b'old'  # the old file is not touched either


def test_outputs_get_the_usual_permissions(tmp_path):
  umask = os.umask(0o022)
  try:
    image_io.write_image(tmp_path / 'x.png', np.zeros((2, 2, 3)))
  finally:
    os.umask(umask)
  assert (tmp_path / 'x.png').stat().st_mode & 0o777 == 0o644


# ---------------------------------------------------------------------------------------------- pixel limit


def _png_header_only(path, w, h, bit_depth, colour_type):
  """A PNG whose IHDR claims w × h; no pixel data follows (a decoder would fail, the header check must not)."""
  ihdr = struct.pack('>IIBBBBB', w, h, bit_depth, colour_type, 0, 0, 0)
  body = b'IHDR' + ihdr
  path.write_bytes(b'\x89PNG\r\n\x1a\n' + struct.pack('>I', 13) + body + struct.pack('>I', zlib.crc32(body)))
  return path


def test_16bit_colour_png_bomb_is_refused_from_its_header(tmp_path):
  path = _png_header_only(tmp_path / 'bomb.png', 14000, 14000, 16, 2)
  with pytest.raises(InputError, match=r'bomb.png: 14000x14000 pixels exceeds the limit of 178,956,970 pixels'):
    image_io.read_image(path)


def _small_files(folder, rng):
  img8 = rng.integers(0, 256, (11, 10, 3), dtype=np.uint8)
  img16 = rng.integers(0, 65536, (11, 10, 3), dtype=np.uint16)
  Image.fromarray(img8).save(folder / 'a.png')
  Image.fromarray(img8).save(folder / 'a.jpg')
  Image.fromarray(img8).save(folder / 'a.bmp')
  (folder / 'b.png').write_bytes(png16.encode(img16))
  tifffile.imwrite(folder / 'c.tif', img16, photometric='rgb')
  image_io.write_hdr(folder / 'd.hdr', img8 / 255.)
  np.save(folder / 'e.npy', np.ones((11, 10), np.float32))
  return ['a.png', 'a.jpg', 'a.bmp', 'b.png', 'c.tif', 'd.hdr', 'e.npy']


def test_one_pixel_limit_for_every_format_and_bit_depth(tmp_path, rng, monkeypatch):
  names = _small_files(tmp_path, rng)
  for name in names:
    assert image_io.image_size(tmp_path / name) == (11, 10), name
  monkeypatch.setattr(image_io, 'MAX_PIXELS', 109)
  readers = {'.hdr': image_io.read_hdr, '.npy': image_io.read_depth}
  for name in names:
    with pytest.raises(InputError, match=rf'{name}: 10x11 pixels exceeds the limit of 109 pixels'):
      readers.get(name[-4:], image_io.read_image)(tmp_path / name)


def test_decoding_holds_one_float_copy(tmp_path, rng):
  img16 = rng.integers(0, 65536, (300, 400, 3), dtype=np.uint16)
  tifffile.imwrite(tmp_path / 'c.tif', img16, photometric='rgb')
  tifffile.imwrite(tmp_path / 'g.tif', img16[..., 0], photometric='minisblack')
  for name, raw in (('c.tif', img16.nbytes), ('g.tif', img16.nbytes // 3)):
    tracemalloc.start()
    img, bits = image_io.read_image(tmp_path / name)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert img.shape == (300, 400, 3) and img.dtype == np.float32 and bits == 16
    # the decoded integers, then the float32 image once (a float64 step would add 2 × img.nbytes)
    assert peak < raw + img.nbytes * 1.1, (name, peak / img.nbytes)


def test_corrupt_image_message_names_the_reason(tmp_path):
  (tmp_path / 'text.jpg').write_text('hello')
  with pytest.raises(InputError) as e:
    image_io.read_image(tmp_path / 'text.jpg')
  assert str(e.value) == f'cannot read image {tmp_path / "text.jpg"}: not an image file of a known format'
