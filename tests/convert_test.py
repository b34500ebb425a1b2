"""Official-weight import: Python API, CLI → checkpoint → fused Lytro crop, and the errors for bad state_dicts."""
import json
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mgdn_jax import checkpoint, convert
from conftest import OFFICIAL_LYTRO_FIXTURE, OFFICIAL_MFF_WEIGHTS, shared_file

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def _fixture(testdata_dir, name):
  path = (shared_file(OFFICIAL_LYTRO_FIXTURE) if name == "mff_official_lytro"
          else testdata_dir / "fixtures" / f"{name}.npz")
  z = np.load(path)
  return z, {k[len("param/"):]: z[k] for k in z.files if k.startswith("param/")}, json.loads(str(z["meta"]))


def test_infer_official_kwargs(testdata_dir):
  for name in ("mini_fusion", "mini_hdr", "mff_official_lytro"):
    _, sd, meta = _fixture(testdata_dir, name)
    got = convert.infer_official_kwargs(sd)
    want = meta["constructor_kwargs"]
    for key in ("embed_dim", "depths", "num_heads", "window_size", "mlp_ratio"):
      assert got[key] == want.get(key, 4.0), (name, key)


def test_module_prefix_accepted(testdata_dir):
  z, sd, meta = _fixture(testdata_dir, "mini_fusion")
  model = convert.from_official({f"module.{k}": v for k, v in sd.items()}, meta["constructor_kwargs"], "mef")
  out, _ = model(*(jnp.asarray(z[f"input/{i}"].transpose(0, 2, 3, 1)) for i in range(2)))
  np.testing.assert_allclose(np.asarray(out), z["output"].transpose(0, 2, 3, 1), atol=1e-5)


@pytest.mark.parametrize("edit,message", [
    (lambda sd: sd.update({"layers.0.MGF.extra.weight": np.zeros(3)}), "unknown keys: layers.0.MGF.extra.weight"),
    (lambda sd: sd.pop("conv_last.0.bias"), "missing parameters: conv_last.bias"),
    (lambda sd: sd.update({"inconv1.weight": np.zeros((12, 3, 5, 5))}), r"mis-shaped keys: inconv1.weight"),
])
def test_bad_state_dicts(testdata_dir, edit, message):
  _, sd, meta = _fixture(testdata_dir, "mini_fusion")
  edit(sd)
  with pytest.raises(ValueError, match=message):
    convert.from_official(sd, meta["constructor_kwargs"], "mef")


def test_bad_kwargs_and_task(testdata_dir):
  _, sd, meta = _fixture(testdata_dir, "mini_fusion")
  with pytest.raises(ValueError, match="GF_chans=30 must equal embed_dim=12"):
    convert.from_official(sd, dict(meta["constructor_kwargs"], GF_chans=30), "mef")
  with pytest.raises(ValueError, match="task must be one of"):
    convert.from_official(sd, meta["constructor_kwargs"], "sr")


def _cli(capsys, *argv):
  """(exit status, stdout, stderr) of the convert CLI's main, run in this process."""
  try:
    convert.main([str(a) for a in argv])
    code = 0
  except SystemExit as e:  # a failure carries its one-line message (mgdn_jax.cli.fail), a usage error prints it
    out, err = capsys.readouterr()
    return (1, out, str(e)) if isinstance(e.code, str) else (e.code, out, err)
  out, err = capsys.readouterr()
  return code, out, err


def test_cli_official_mff_weights_fuse_lytro_crop(tmp_path, capsys):
  """The released MFF weights, converted by the CLI and reloaded, fuse the Lytro crop to the official output."""
  out_dir = tmp_path / "mff_official"
  code, out, err = _cli(capsys, "--task=mff", f"--official={shared_file(OFFICIAL_MFF_WEIGHTS)}", f"--out={out_dir}")
  assert code == 0, err
  assert "178,975 parameters" in out
  model, config = checkpoint.load_model(str(out_dir))
  assert config.task == "mff" and config.model.embed_dim == 30
  z = np.load(shared_file(OFFICIAL_LYTRO_FIXTURE))
  graphdef, state = nnx.split(model)
  out, _ = nnx.merge(graphdef, state)(*(jnp.asarray(z[f"input/{i}"].transpose(0, 2, 3, 1)) for i in range(2)))
  np.testing.assert_allclose(np.asarray(out), z["output"].transpose(0, 2, 3, 1), atol=1e-5)


def test_cli_errors(tmp_path, capsys):
  # One run as `python -m`: the module's entry point and exit status; the other cases call its main here.
  missing = subprocess.run([sys.executable, "-m", "mgdn_jax.convert", "--task=mff",
                            f"--official={tmp_path / 'nope.npz'}", f"--out={tmp_path / 'o'}"],
                           cwd=ROOT, capture_output=True, text=True, check=False)
  assert missing.returncode == 1 and "no such file" in missing.stderr
  bad = tmp_path / "bad.npz"
  np.savez(bad, **{"inconv1.weight": np.zeros((30, 3, 3, 3), np.float32)})
  code, _, err = _cli(capsys, "--task=mff", f"--official={bad}", f"--out={tmp_path / 'o'}")
  assert code == 1 and "not an official MGDN checkpoint" in err
  assert not (tmp_path / "o").exists() and not (tmp_path / "o.partial").exists()
  code, _, err = _cli(capsys, "--task=mff", f"--official={tmp_path / 'weights.pth'}", f"--out={tmp_path / 'o'}")
  assert code == 1 and "no such file" in err


@pytest.mark.skipif(__import__("importlib").util.find_spec("torch") is None, reason="torch not installed")
def test_pth_equals_npz(shared_dir):
  pth = convert.read_state_dict(str(shared_dir / "weights" / "mgdn_mff_official_62000_E.pth"))
  npz = convert.read_state_dict(str(shared_dir / "weights" / "mgdn_mff_official_62000_E.npz"))
  assert set(pth) == set(npz) and all(np.array_equal(pth[k], npz[k]) for k in npz)
