"""Every value of reference/metrics_golden/golden.json (Octave running the MEFB / VIFB MATLAB files, scikit-image
for HDR, the official GDSR protocol), reproduced to <= 1e-4 (in practice ~1e-12)."""
import json
import pathlib

import numpy as np
from PIL import Image
import pytest

from mgdn_jax import metrics
from mgdn_jax.metrics import fusion
from mgdn_jax.metrics import mef
from mgdn_jax.metrics import mff

TOL = 1e-4
LOCAL = pathlib.Path(__file__).parent / 'testdata' / 'metrics_golden'
GOLDEN = json.loads((LOCAL / 'golden.json').read_text())
LOCAL_CASES = ('synthetic_64x80', 'mefb_507_mertens')
SHARED_CASES = tuple(c for c in GOLDEN['cases'] if c not in LOCAL_CASES)

# golden.json key -> function of the uint8 (A, B, F) arrays, per channel and averaged as the MEFB wrappers do.
METRICS = {
    'CE': lambda a, b, f: fusion.per_channel(mef.cross_entropy, a, b, f),
    'Qcb': lambda a, b, f: fusion.per_channel(mef.qcb, a, b, f),
    'VIF': lambda a, b, f: fusion.per_channel(mef.vif_fusion, a, b, f),
    'PSNR_MEFB': lambda a, b, f: fusion.per_channel(mff.psnr_mefb, a, b, f),
    'Qabf': lambda a, b, f: fusion.per_channel(mff.qabf, a, b, f),
    'EN': lambda a, b, f: fusion.per_channel(lambda x, y, z: mff.entropy(z), a, b, f),
    'SSIM_VIFB_sum': fusion.ssim_sum,
    'MEF_SSIM': lambda a, b, f: fusion.mef_ssim([a, b], f),
}


def _load(root: pathlib.Path, case: str, mode: str):
  files = GOLDEN['cases'][case]['files'][mode]
  return [np.array(Image.open(root / files[k])) for k in 'ABF']


def _check_case(root: pathlib.Path, case: str, mode: str):
  expected = GOLDEN['cases'][case][mode]
  images = _load(root, case, mode)
  # MEF-SSIM always works on rgb2gray of the RGB files; the 'gray' entry repeats the RGB value.
  rgb_images = _load(root, case, 'rgb')
  assert set(expected) == set(METRICS)
  for name, value in expected.items():
    got = METRICS[name](*(rgb_images if name == 'MEF_SSIM' else images))
    assert abs(got - value) <= TOL, f'{case}/{mode}/{name}: got {got}, golden {value}'


@pytest.mark.parametrize('mode', ['gray', 'rgb'])
@pytest.mark.parametrize('case', LOCAL_CASES)
def test_fusion_golden_local(case, mode):
  _check_case(LOCAL, case, mode)


@pytest.mark.parametrize('mode', ['gray', 'rgb'])
@pytest.mark.parametrize('case', SHARED_CASES)
def test_fusion_golden_shared(shared_dir, case, mode):
  _check_case(shared_dir / 'reference' / 'metrics_golden', case, mode)


@pytest.mark.parametrize('mode', ['gray', 'rgb'])
def test_evaluate_fusion_matches_golden(mode):
  """The public entry point: gray=True on RGB files equals the golden values of the rgb2gray files."""
  case = 'mefb_507_mertens'
  a, b, f = _load(LOCAL, case, 'rgb')
  g = GOLDEN['cases'][case][mode]
  gray = mode == 'gray'
  mef_vals = metrics.evaluate_fusion([a, b], f, 'mef', gray=gray)
  mff_vals = metrics.evaluate_fusion([a, b], f, 'mff', gray=gray)
  pairs = [(mef_vals['CE'], g['CE']), (mef_vals['MEF_SSIM'], g['MEF_SSIM']), (mef_vals['Qcb'], g['Qcb']),
           (mef_vals['VIF'], g['VIF']), (mff_vals['Qabf'], g['Qabf']), (mff_vals['EN'], g['EN']),
           (mff_vals['PSNR_mefb'], g['PSNR_MEFB']), (mff_vals['SSIM'], 0.5 * g['SSIM_VIFB_sum'])]
  for got, want in pairs:
    assert abs(got - want) <= TOL
  assert list(mef_vals) == list(metrics.METRIC_KEYS['mef'])
  assert list(mff_vals) == list(metrics.METRIC_KEYS['mff'])


def test_rgb2gray_matches_golden_gray_files():
  # (The synthetic case builds its RGB files from the gray one, so only the real case is an rgb2gray pair.)
  for case in ('mefb_507_mertens',):
    for k in 'ABF':
      rgb = np.array(Image.open(LOCAL / GOLDEN['cases'][case]['files']['rgb'][k]))
      gray = np.array(Image.open(LOCAL / GOLDEN['cases'][case]['files']['gray'][k]))
      np.testing.assert_array_equal(metrics.rgb2gray(rgb), gray)


def test_hdr_golden():
  gt = np.load(LOCAL / 'hdr' / 'gt.npy').transpose(1, 2, 0)      # stored (3, H, W) as the official code
  pred = np.load(LOCAL / 'hdr' / 'pred.npy').transpose(1, 2, 0)
  expected = GOLDEN['hdr']['values']
  got = metrics.hdr_metrics(pred, gt)
  for key, gkey in [('psnr_l', 'PSNR_L'), ('psnr_mu', 'PSNR_mu'), ('ssim_l', 'SSIM_L'), ('ssim_mu', 'SSIM_mu')]:
    assert abs(got[key] - expected[gkey]) <= TOL, key


def test_gdsr_golden_x4():
  depth = np.load(LOCAL / 'gdsr' / 'nyu1444_depth.npy')          # shared/data/nyu_gdsr/Depth/1444.npy
  up = np.load(LOCAL / 'gdsr' / 'nyu1444_x4_bicubic_up.npz')['up']
  lo, hi = np.float32(depth.min()), np.float32(depth.max())
  assert abs(lo - GOLDEN['gdsr']['depth_min_m']) < 1e-6 and abs(hi - GOLDEN['gdsr']['depth_max_m']) < 1e-6
  gt = ((depth - lo) / (hi - lo)).astype(np.float32)
  got = metrics.gdsr_rmse_cm(up, gt, lo, hi)
  assert abs(got - GOLDEN['gdsr']['rmse_cm']['x4']) <= TOL
  # Batch-shaped inputs (1, H, W, 1) as the eval pipeline yields them give the same number.
  assert metrics.gdsr_rmse_cm(up[None, ..., None], gt[None, ..., None], lo, hi) == got


@pytest.mark.parametrize('scale', [4, 8, 16])
def test_gdsr_golden_through_the_eval_encoding(scale):
  """The eval pipeline's GDSR encoding (PIL bicubic down, torch-style bicubic up) with the network replaced by the
  identity, scored by gdsr_rmse_cm: the golden bicubic RMSE of every scale."""
  transforms = pytest.importorskip('data_pipelines.transforms')
  depth = np.load(LOCAL / 'gdsr' / 'nyu1444_depth.npy')
  ex = transforms.gdsr_example(np.zeros(depth.shape + (3,), np.uint8), depth, scale)
  got = metrics.gdsr_rmse_cm(ex['stream_1'], ex['target'], ex['depth_min'], ex['depth_max'])
  assert abs(got - GOLDEN['gdsr']['rmse_cm'][f'x{scale}']) <= TOL
