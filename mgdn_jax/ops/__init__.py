"""The paper's operations as pure, parameter-free functions (NHWC): dynamic filter, channel attention, window
attention, window partition and padding. Backend-tuned generic layers live in `mgdn_jax.kernels`."""
from mgdn_jax.ops.dynamic_filter import dynamic_filter
from mgdn_jax.ops.attention import window_attention
from mgdn_jax.ops.channel_attention import channel_attention
from mgdn_jax.ops.window import (relative_position_index, shift_attention_mask, window_partition,
                                 window_reverse)
from mgdn_jax.ops.padding import pad_to_multiple, pad_bottom_right
