"""MGDN datasets (TFDS builders, prepared without TensorFlow) and grain input pipelines.

Importing the package registers the builders with TFDS: `tfds.builder('lytro')`, `tfds.builder('mgdn_demo/mef')`.
"""
from data_pipelines import drpl_mff  # noqa: F401
from data_pipelines import kalantari  # noqa: F401
from data_pipelines import lytro  # noqa: F401
from data_pipelines import mefb  # noqa: F401
from data_pipelines import mffw  # noqa: F401
from data_pipelines import mgdn_demo  # noqa: F401
from data_pipelines import nyu_gdsr  # noqa: F401
from data_pipelines import sice  # noqa: F401
