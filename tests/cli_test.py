"""Every entry point follows mgdn_jax.cli's convention: absl flags, `--help`, `<prog>: error: …` on bad input; the
benchmark scripts too, whose `--help` loads none of JAX, torch or TensorFlow."""
import importlib
import pathlib
import subprocess
import sys

import pytest

from mgdn_jax import cli

ROOT = pathlib.Path(__file__).resolve().parents[1]
TOOLS = {'fuse': 'mgdn_jax.fuse', 'evaluate': 'mgdn_jax.evaluate', 'convert': 'mgdn_jax.convert',
         'weights': 'mgdn_jax.weights.__main__', 'prepare': 'data_pipelines.prepare',
         'sharp_photos': 'data_pipelines.sharp_photos', 'fit_check': 'tools.fit_check',
         'defocus_sweep': 'tools.defocus_sweep', 'pair_blur': 'tools.pair_blur'}
BENCHMARKS = ('aot_tpu', 'compare_official', 'host_memory_bench', 'inference_bench', 'input_bench', 'metrics_bench',
              'model_bench', 'pff_kernels_tpu', 'roofline', 'train_bench')
TOOLS.update({name: f'benchmarks.{name}' for name in BENCHMARKS})


def _run(module, argv, capsys) -> tuple[int, str, str]:
  with pytest.raises(SystemExit) as e:
    importlib.import_module(module).main(argv)
  out, err = capsys.readouterr()
  return e.value.code, out, err


@pytest.mark.parametrize('prog', sorted(TOOLS))
def test_help_lists_the_flags_and_exits_zero(prog, capsys):
  code, out, _ = _run(TOOLS[prog], ['--help'], capsys)
  assert code == 0 and '\nflags:\n' in out and '  --' in out


@pytest.mark.parametrize('prog', sorted(TOOLS))
def test_a_bad_flag_is_a_usage_error_naming_the_tool(prog, capsys):
  code, _, err = _run(TOOLS[prog], ['--no_such_flag=1'], capsys)
  assert code == cli.USAGE_STATUS
  assert err.splitlines() == [f"{prog}: error: Unknown command line flag 'no_such_flag'",
                              'Pass --help to see the flags.']


# A value that parses but cannot be used is a usage error too, before any trace, compile or subprocess.
BAD_VALUES = [('host_memory_bench', '--gaps=1,x', 'flag --gaps=1,x: every item must be a number'),
              ('host_memory_bench', '--gb=0', 'flag --gb=0.0: must be > 0'),
              ('host_memory_bench', '--gaps=-1', 'flag --gaps=-1: every item must be >= 0'),
              ('roofline', '--sizes=128,x', 'flag --sizes=128,x: every item must be an integer'),
              ('roofline', '--tasks=sr', "flag --tasks=sr: unknown 'sr'"),
              ('roofline', '--hbm_tb_s=0', 'flag --hbm_tb_s=0.0: must be > 0'),
              ('aot_tpu', '--tasks=mff,sr', "flag --tasks=mff,sr: unknown 'sr'"),
              ('aot_tpu', '--batch_per_chip=1,x', 'flag --batch_per_chip=1,x: every item must be an integer'),
              ('aot_tpu', '--image=1000', 'flag --image=1000: must be HxW'),
              ('defocus_sweep', '--sigmas=1,-1', 'flag --sigmas=1,-1: every item must be >= 0'),
              ('pair_blur', '--tile=4', 'flag --tile=4: 4 is not integer >= 8')]


@pytest.mark.parametrize('prog, flag, message', BAD_VALUES)
def test_a_bad_value_is_a_usage_error_naming_the_flag(prog, flag, message, capsys):
  code, _, err = _run(TOOLS[prog], [flag], capsys)
  assert code == cli.USAGE_STATUS and err.startswith(f'{prog}: error: {message}'), err


def test_booleans_take_the_absl_negation(capsys):
  from mgdn_jax import fuse
  args = fuse.parse_args(['--task=mff', '--checkpoint=c', '--output=o.png', 'a.png', 'b.png', '--noauto_tile',
                          '--exposures=-2,0,2'])
  assert args.inputs == ['a.png', 'b.png'] and args.auto_tile is False and args.exposures == [-2., 0., 2.]
  code, _, err = _run('mgdn_jax.fuse', ['--task=hdr', '--checkpoint=c', '--output=o', 'a', '--exposures=1,x'], capsys)
  assert code == cli.USAGE_STATUS and 'comma-separated numbers' in err


def test_main_py_follows_the_same_convention():
  run = lambda *a: subprocess.run([sys.executable, 'main.py', *a], cwd=ROOT, capture_output=True, text=True,
                                  check=False)
  bad = run('--no_such_flag=1')
  assert bad.returncode == cli.USAGE_STATUS
  assert bad.stderr.splitlines()[-2:] == ["main.py: error: Unknown command line flag 'no_such_flag'",
                                          'Pass --help to see the flags.']
  stray = run('--workdir=/tmp/x', 'positional')
  assert stray.returncode == cli.USAGE_STATUS and 'unexpected arguments positional' in stray.stderr


def test_benchmark_help_loads_no_framework():
  # One interpreter runs every script as `python benchmarks/<name>.py --help` would (its __main__ block included),
  # then reports which heavy frameworks it imported: none may be, so --help stays instant.
  code = (
      'import runpy, sys\n'
      f'for name in {BENCHMARKS!r}:\n'
      '  sys.argv = [f"benchmarks/{name}.py", "--help"]\n'
      '  try:\n'
      '    runpy.run_path(sys.argv[0], run_name="__main__")\n'
      '  except SystemExit as e:\n'
      '    assert e.code == 0, (name, e.code)\n'
      'print(sorted(m for m in ("jax", "torch", "tensorflow") if m in sys.modules))\n')
  res = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, check=False)
  assert res.returncode == 0, res.stderr
  assert res.stdout.count('\nflags:\n') == len(BENCHMARKS) and res.stdout.splitlines()[-1] == '[]'
