"""Pure, parameter-free functions behind the MGDN layers (NHWC)."""
from mgdn_jax.ops.dynamic_filter import dynamic_filter, dynamic_filter_reference, dynamic_filter_patches
from mgdn_jax.ops.attention import window_attention
from mgdn_jax.ops.channel_attention import channel_attention
from mgdn_jax.ops.conv import conv2d
from mgdn_jax.ops.dense import dense
from mgdn_jax.ops.depthwise import depthwise_conv
from mgdn_jax.ops.gelu import gelu
from mgdn_jax.ops.window import (relative_position_index, shift_attention_mask, window_partition,
                                 window_reverse)
from mgdn_jax.ops.padding import pad_to_multiple, pad_bottom_right
