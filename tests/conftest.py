"""Test setup: 8 virtual CPU devices so the ('data',) mesh and sharding are really exercised."""
import os

# Must happen before JAX initialises its backends.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)

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


OFFICIAL_MFF_WEIGHTS = "weights/mgdn_mff_official_62000_E.npz"
OFFICIAL_LYTRO_FIXTURE = "reference/fixtures/mff_official_lytro.npz"
