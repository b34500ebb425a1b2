"""tools/make_figure.py: a labelled README figure from a photo scene (HDR) and from a demo test scene (GDSR), at most
FIGURE_WIDTH wide; an existing file is never replaced and a checkpoint of another task is refused."""
import sys

import numpy as np
import pytest
from PIL import Image

from configs import gdsr
from configs import hdr
from configs import mef
from mgdn_jax import model as model_lib
from mgdn_jax import weights
from tools import make_figure


def _export(config, path):
  weights.export(path, model_lib.create_model(config.model, seed=0), config, {'trained_by': 'test'})
  return str(path)


@pytest.mark.parametrize('get_config', [hdr.get_config, gdsr.get_config], ids=['hdr_photo', 'gdsr_demo'])
def test_figure_is_written_once(get_config, tmp_path, capsys):
  config = get_config('tiny')
  config.data.data_dir = str(tmp_path / 'tfds')
  ckpt, out = _export(config, tmp_path / 'w.npz'), tmp_path / 'figures' / 'f.png'
  make_figure.main([f'--task={config.task}', f'--checkpoint={ckpt}', f'--out={out}'])
  assert f'wrote {out}' in capsys.readouterr().out
  figure = np.asarray(Image.open(out))
  assert figure.ndim == 3 and figure.shape[1] <= make_figure.FIGURE_WIDTH and figure.shape[0] > 50
  before = out.read_bytes()
  with pytest.raises(SystemExit, match='f.png exists'):
    make_figure.main([f'--task={config.task}', f'--checkpoint={ckpt}', f'--out={out}'])
  assert out.read_bytes() == before


def test_checkpoint_of_another_task_is_refused(tmp_path):
  ckpt, out = _export(mef.get_config('tiny'), tmp_path / 'w.npz'), tmp_path / 'f.png'
  with pytest.raises(SystemExit, match='is a mef model, not mff'):
    make_figure.main(['--task=mff', f'--checkpoint={ckpt}', f'--out={out}'])
  assert not out.exists()
