"""tools/defocus_sweep.py: the same crop and mask at every σ, PSNR that falls with the blur for a blind fuser, and
one-line errors for unusable photo folders."""
import numpy as np
from PIL import Image
import pytest

from data_pipelines import common
from tools import defocus_sweep


def _photos(folder, n=3, size=(150, 140)):
  folder.mkdir(parents=True)
  for i in range(n):
    Image.fromarray(np.random.default_rng(i).integers(0, 256, (*size, 3), dtype=np.uint8)).save(folder / f'p{i}.png')
  return folder


def test_pairs_keep_crop_and_mask_across_sigmas(tmp_path):
  photos = defocus_sweep.photos_of([str(_photos(tmp_path / 'a'))], per_folder=5)
  weak, strong = (defocus_sweep.pairs(photos, s, 64) for s in (0.7, 3.0))
  np.testing.assert_array_equal(weak['target'], strong['target'])
  for k in ('stream_0', 'stream_1'):
    in_focus = np.all(weak[k] == weak['target'], axis=-1)
    np.testing.assert_array_equal(in_focus, np.all(strong[k] == strong['target'], axis=-1))
    assert 0.2 < in_focus.mean() < 0.8
    err = lambda b: np.abs(b[k] - b['target'])[~in_focus].mean()
    assert err(strong) > err(weak) > 0
  assert np.all(np.all(weak['stream_0'] == weak['target'], -1) | np.all(weak['stream_1'] == weak['target'], -1))
  none = defocus_sweep.pairs(photos, 0.0, 64)  # σ = 0: both sources are the sharp crop itself
  np.testing.assert_array_equal(none['target'], weak['target'])
  for k in ('stream_0', 'stream_1'):
    np.testing.assert_array_equal(none[k], none['target'])


def test_sweep_scores_each_fuser_per_sigma(tmp_path):
  photos = defocus_sweep.photos_of([str(_photos(tmp_path / 'a')), str(_photos(tmp_path / 'b', n=5))], per_folder=2)
  assert [p.parent.name for p in photos] == ['a', 'a', 'b', 'b']
  rows = defocus_sweep.sweep({'oracle': lambda b: b['target'], 'near': lambda b: b['stream_0']}, photos,
                             (0.7, 2.0, 5.0), 64)
  assert [s for s, _ in rows] == [0.7, 2.0, 5.0]
  for _, psnr in rows:
    assert psnr['oracle'] == pytest.approx(120) and psnr['near'] < psnr['average'] < psnr['oracle']
  assert rows[0][1]['average'] > rows[1][1]['average'] > rows[2][1]['average']


def test_unusable_photos_are_one_line_errors(tmp_path):
  with pytest.raises(common.DataError, match='missing'):
    defocus_sweep.photos_of([str(tmp_path / 'missing')], 4)
  (tmp_path / 'empty').mkdir()
  with pytest.raises(common.DataError, match='empty: no images'):
    defocus_sweep.photos_of([str(tmp_path / 'empty')], 4)
  small = defocus_sweep.photos_of([str(_photos(tmp_path / 's', n=1, size=(40, 50)))], 4)
  with pytest.raises(common.DataError, match=r'p0.png: 40x50 is smaller than --patch=64'):
    defocus_sweep.pairs(small, 1.0, 64)


def test_a_missing_checkpoint_is_one_line(tmp_path):
  photos, missing = _photos(tmp_path / 'a'), tmp_path / 'none'
  with pytest.raises(SystemExit) as e:
    defocus_sweep.main([f'--photos={photos}', f'--checkpoint={missing}'])
  assert str(e.value) == (f'defocus_sweep: error: cannot load checkpoint {missing}: {missing}/config.json not '
                          f"found: '{missing}' is neither an exported model (save_model) nor a training workdir.")
