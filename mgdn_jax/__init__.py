"""MGDN-JAX: Mutual-Guided Dynamic Network for image fusion (Guan et al., ACM MM 2023) in JAX/Flax NNX."""
