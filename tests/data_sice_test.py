"""`sice` builder: SICE part/sequence/Label layout, the frame-selection rule, bad input."""
import pathlib

import numpy as np
from PIL import Image
import pytest

from data_pipelines import common
from data_pipelines import loader


def frame(level, h=10, w=14):
  rng = np.random.default_rng(level)
  return np.clip(level + rng.integers(-5, 6, (h, w, 3)), 0, 255).astype(np.uint8)


def write_sequence(part: pathlib.Path, seq: str, levels, label_ext='.png', h=10, w=14):
  folder = part / seq
  folder.mkdir(parents=True)
  # File names deliberately not in brightness order: the rule orders frames by brightness.
  for i, level in enumerate(levels):
    Image.fromarray(frame(level, h, w)).save(folder / f'{len(levels) - i}.png')
  (part / 'Label').mkdir(exist_ok=True)
  Image.fromarray(frame(128, h, w)).save(part / 'Label' / f'{seq}{label_ext}')


def test_sice_layout_and_rule(tmp_path):
  root = tmp_path / 'sice'
  write_sequence(root / 'Dataset_Part1', '1', [20, 50, 90, 130, 170, 210, 240])  # N = 7: 2nd darkest/brightest
  write_sequence(root / 'Dataset_Part1', '2', [30, 220, 120])  # N = 3: extremes
  write_sequence(root / 'Dataset_Part2', '1', [60, 200], label_ext='.JPG')
  builder = loader.prepare('sice', manual_dir=tmp_path, data_dir=tmp_path / 'tfds')
  ex = {e['name'].decode(): e for e in builder.as_data_source('train')}
  assert sorted(ex) == ['Dataset_Part1/1', 'Dataset_Part1/2', 'Dataset_Part2/1']
  np.testing.assert_array_equal(ex['Dataset_Part1/1']['image_0'], frame(50))
  np.testing.assert_array_equal(ex['Dataset_Part1/1']['image_1'], frame(210))
  np.testing.assert_array_equal(ex['Dataset_Part1/1']['target'], frame(128))
  np.testing.assert_array_equal(ex['Dataset_Part1/2']['image_0'], frame(30))
  np.testing.assert_array_equal(ex['Dataset_Part1/2']['image_1'], frame(220))
  assert ex['Dataset_Part2/1']['target'].shape == (10, 14, 3)


@pytest.mark.parametrize('case,message', [
    ('no_label', 'no label image 2.<ext>'), ('one_frame', 'a sequence needs at least 2 exposures'),
    ('label_size', 'streams of different sizes'), ('corrupt', 'unreadable or corrupt image'),
    ('no_part', 'no SICE part folder')])
def test_bad_input(tmp_path, case, message):
  part = tmp_path / 'sice' / 'Dataset_Part1'
  write_sequence(part, '1', [40, 200])
  if case == 'no_label':
    write_sequence(part, '2', [40, 200])
    (part / 'Label' / '2.png').unlink()
  elif case == 'one_frame':
    write_sequence(part, '2', [40])
  elif case == 'label_size':
    write_sequence(part, '2', [40, 200])
    Image.fromarray(frame(128, h=12)).save(part / 'Label' / '2.png')
  elif case == 'corrupt':
    write_sequence(part, '2', [40, 200])
    (part / '2' / '1.png').write_bytes(b'\x89PNG\r\n\x1a\nxx')
    message = f'{part / "2" / "1.png"}: unreadable or corrupt image'
  else:
    (part / 'Label').rename(part / 'Labels')
  with pytest.raises(common.DataError) as e:
    loader.prepare('sice', manual_dir=tmp_path, data_dir=tmp_path / 'tfds')
  assert message in str(e.value) and '\n' not in str(e.value), str(e.value)
  assert not (tmp_path / 'tfds' / 'sice').exists()
