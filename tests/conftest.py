"""Test setup: 8 virtual CPU devices so the ('data',) mesh and sharding are really exercised."""
import os

# Must happen before JAX initialises its backends.
os.environ.setdefault("JAX_PLATFORMS", "cpu")


def _session_compilation_cache() -> None:
  """One persistent compilation cache for the session, inherited by the processes the tests start.

  Several processes compile the same programs (the tiny training step in-process, then in main.py runs): each is
  compiled once. A fresh folder per session, removed at exit, so no run depends on what an earlier one left.
  Every program is kept, however fast its compile: creating a model state op by op compiles some 200 small
  programs, again in every process and in every test file (the per-file release below drops them), and reading
  them back costs a fifth of compiling them.
  """
  if "JAX_COMPILATION_CACHE_DIR" in os.environ:
    return
  import atexit  # pylint: disable=g-import-not-at-top
  import shutil  # pylint: disable=g-import-not-at-top
  import tempfile  # pylint: disable=g-import-not-at-top
  folder = tempfile.mkdtemp(prefix="mgdn_tests_jax_cache_")
  owner = os.getpid()  # a forked child must not remove the folder its parent still uses
  atexit.register(lambda: os.getpid() == owner and shutil.rmtree(folder, ignore_errors=True))
  os.environ["JAX_COMPILATION_CACHE_DIR"] = folder
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")


def _patient_cpu_collectives() -> None:
  """No abort of a slow collective: the 8 virtual devices' threads share 2 cores with the other test worker and the
  runs the tests start, so one collective can wait long for a core. XLA:CPU aborts a collective that waits longer
  than its terminate timeout as stuck; a loaded machine is not a deadlock. Subprocesses inherit the flag."""
  flag = "--xla_cpu_collective_call_terminate_timeout_seconds"
  if flag not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flag}=600".strip()


def _quick_cpu_codegen() -> None:
  """LLVM at -O0 for XLA:CPU's kernels: the suite's time is compiling many small programs that each run a few
  times, and -O0 compiles the tiny training step about twice as fast for about twice its run time. Results can
  differ from -O2's in the last bits (no fused multiply-adds), far inside every tolerance the tests check against
  fixtures; tests that compare two runs bit for bit run both with the same flags. Subprocesses inherit the flag."""
  flag = "--xla_backend_optimization_level"
  if flag not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flag}=0".strip()


_session_compilation_cache()
_patient_cpu_collectives()
_quick_cpu_codegen()
import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)

import ctypes  # noqa: E402
import gc  # noqa: E402
import pathlib  # noqa: E402

import pytest  # noqa: E402

TESTDATA = pathlib.Path(__file__).parent / "testdata"
SHARED = pathlib.Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def testdata_dir() -> pathlib.Path:
  return TESTDATA


@pytest.fixture(scope="session")
def shared_dir() -> pathlib.Path:
  """`../shared` beside the checkout; tests that need it skip when it is absent."""
  if not SHARED.is_dir():
    pytest.skip("../shared is absent")
  return SHARED


def shared_file(relative: str) -> pathlib.Path:
  """`../shared/<relative>`: third-party data (benchmark images, official weights) that the repo does not carry.

  Skips the calling test, naming the file, when it is absent.
  """
  path = SHARED / relative
  if not path.exists():
    pytest.skip(f"{path} is absent (third-party data, not in the repo: see README, 'Datasets')")
  return path


@pytest.fixture(scope="session")
def mef_demo_data_dir(tmp_path_factory) -> str:
  """A data_dir with mgdn_demo/mef prepared (train and test), for the tests that train `configs/mef.py:tiny`.

  Prepared once per worker process; the tests only read it, and several processes may read it at once.
  """
  from configs import mef  # pylint: disable=g-import-not-at-top
  from data_pipelines import input_pipeline  # pylint: disable=g-import-not-at-top
  config = mef.get_config("tiny")
  config.data.data_dir = str(tmp_path_factory.mktemp("tfds"))
  next(input_pipeline.create_train_iter(config))
  next(input_pipeline.create_eval_iter(config, config.data.eval_datasets[0]))
  return config.data.data_dir


OFFICIAL_MFF_WEIGHTS = "weights/mgdn_mff_official_62000_E.npz"
OFFICIAL_LYTRO_FIXTURE = "reference/fixtures/mff_official_lytro.npz"


@pytest.fixture(scope="module", autouse=True)
def _release_compiled_programs():
  """After each test file: drop JAX's compiled executables and hand the freed heap back to the OS.

  A session otherwise keeps every executable it compiled and its process grows by GBs over the suite. A later file
  that needs one again mostly finds it in the session's persistent compilation cache.
  """
  yield
  jax.clear_caches()
  gc.collect()
  if _LIBC is not None:
    _LIBC.malloc_trim(0)


def _libc():
  try:
    libc = ctypes.CDLL("libc.so.6")
    return libc if hasattr(libc, "malloc_trim") else None
  except OSError:  # not glibc
    return None


_LIBC = _libc()


# The longest files (in seconds of one worker), started first: a long file that started last would leave the other
# worker of pytest.ini idle until it ends. The two-process training file leads: its two JAX processes (about 1.8 GB
# each) then run beside a worker that has not yet grown, which lowers the suite's peak combined memory.
_LONGEST_FILES = ("distributed_test.py", "model_parity_test.py", "train_test.py", "model_test.py",
                  "reliability_test.py", "microbatch_test.py", "fuse_cli_test.py")


def pytest_collection_modifyitems(items):
  rank = {name: i for i, name in enumerate(_LONGEST_FILES)}
  items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: every file keeps its own order
