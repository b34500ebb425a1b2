"""One evaluation path: for one trained checkpoint, the training-time evaluation, `main.py --mode=eval`
(`train.evaluate_workdir`) and `python -m mgdn_jax.evaluate --checkpoint=WORKDIR` report equal numbers under
equal names; and the protocol value they share."""

import json

import pytest

from configs import mef
from mgdn_jax import evaluate
from mgdn_jax import evaluation
from mgdn_jax import train


def _printed_scalars(text: str) -> dict[str, float]:
  """The 'name value' lines `evaluation.format_scalars` prints (table lines start with '|' or '**')."""
  out = {}
  for line in text.splitlines():
    parts = line.split(' ')
    if len(parts) == 2 and '/' in parts[0] and not line.startswith(('|', '**')):
      out[parts[0]] = float(parts[1])
  return out


def test_training_mode_eval_and_cli_report_the_same_numbers(mef_demo_data_dir, tmp_path, capsys):
  config = mef.get_config('tiny')             # 6 steps, one evaluation at step 6 on one demo image
  config.data.data_dir = mef_demo_data_dir
  config.no_reference_metrics = True          # every MEF metric, not only those against the demo target
  workdir = tmp_path / 'run'
  train.train_and_evaluate(config, str(workdir))
  during_training = json.loads((workdir / 'eval_summary.json').read_text())
  assert during_training['step'] == 6
  trained = during_training['metrics']

  mode_eval = train.evaluate_workdir(config, str(workdir))
  capsys.readouterr()
  rc = evaluate.main([f'--checkpoint={workdir}', f'--output_dir={tmp_path / "cli"}', '--nosave_images'])
  assert rc == 0
  cli = _printed_scalars(capsys.readouterr().out)

  names = {'mgdn_demo/mef/' + m for m in ('CE', 'MEF_SSIM', 'Qcb', 'VIF', 'PSNR_gt', 'SSIM_gt')}
  assert set(trained) == names
  assert mode_eval == trained
  assert cli == trained
  print('equal evaluation:', evaluation.format_scalars(trained).replace('\n', '; '))


def test_official_protocol_per_task_and_config_limits():
  assert evaluation.Protocol.official('mef', 'mefb') == evaluation.Protocol(padding='official', modes=('rgb',))
  assert evaluation.Protocol.official('mff', 'lytro').modes == ('rgb', 'gray')
  hdr = evaluation.Protocol.official('hdr', 'kalantari')
  assert (hdr.padding, hdr.tile, hdr.overlap) == ('reflect', 500, 0)
  assert evaluation.Protocol.official('gdsr', 'nyu_gdsr').crop == 6
  assert evaluation.Protocol.official('gdsr', 'mgdn_demo/gdsr').crop == 0
  tiny = evaluation.Protocol.from_config(mef.get_config('tiny'), 'mgdn_demo/mef')
  assert (tiny.max_examples, tiny.no_reference) == (1, False)
  assert evaluation.Protocol.from_config(mef.get_config(), 'mefb') == evaluation.Protocol.official('mef', 'mefb')
  assert tiny.replace(tile=0, padding=None, modes=()) == tiny
  with pytest.raises(ValueError, match=r"unknown modes \['-'\]"):
    evaluation.Protocol.official('hdr', 'x').replace(padding='reflect').check('mef')
  with pytest.raises(ValueError, match="unknown task 'sr'"):
    evaluation.Protocol.official('sr', 'x')


def test_scalar_names():
  from mgdn_jax.metrics import report  # pylint: disable=g-import-not-at-top
  results = report.Results('mff', 'lytro')
  results.add('MGDN', 'rgb', 'a', {'Qabf': 0.5})
  results.add('MGDN', 'gray', 'a', {'Qabf': 0.25})
  results.add('average', 'rgb', 'a', {'Qabf': 0.125})
  assert evaluation.Evaluation('lytro', results, []).scalars() == {
      'lytro/Qabf': 0.5, 'lytro/gray/Qabf': 0.25, 'lytro/average/rgb/Qabf': 0.125}
