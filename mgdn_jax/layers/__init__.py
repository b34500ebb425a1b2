"""MGDN layers (Flax NNX, NHWC): MGCA, dynamic filter predictor, MGDF, PFF blocks and stages."""
from mgdn_jax.layers.mgca import MGCA
from mgdn_jax.layers.mgdf import MGDF, KernelPredictor
from mgdn_jax.layers.pff import LocalContextExtractor, PFFBlock, WindowAttention
from mgdn_jax.layers.stage import Stage
