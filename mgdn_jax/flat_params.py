"""Parameter-shaped trees as one flat vector each, for the elementwise end of a training step.

Adam, the EMA and the non-finite guard are elementwise over the parameters. Written per parameter array they
compile to a kernel or two per array on an accelerator, hundreds per step for the paper networks (measured in
benchmarks/README.md, "Where the HDR step's kernels and bytes go"); over one concatenated vector per tree they are a
handful. Every element goes through the same operations, only the arrays it lives in differ.

`Flattener(*likes)` knows the structures of the `likes` (e.g. the model's and the MI loss's Params); `ravel(tree)`
replaces every subtree of `tree` that has one of those structures (params, gradients, Adam's μ and ν, the EMA) by
the concatenation of its leaves, `unravel(flat, like)` undoes it given the original `like` tree.
"""
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


class Flattener:
  """Flat vectors for the subtrees of a training state that have the structure of one of `likes`."""

  def __init__(self, *likes: Any):
    self._layouts = {}
    for like in likes:
      leaves, treedef = jax.tree.flatten(like)
      if treedef.num_nodes == 1:  # a bare array (or an empty tree) is flat already, and would match every leaf
        continue
      dtypes = {jnp.dtype(x.dtype) for x in leaves}
      if len(dtypes) > 1:
        raise ValueError(f'Flattener: one dtype per structure, got {sorted(map(str, dtypes))}')
      self._layouts[treedef] = [tuple(x.shape) for x in leaves]

  def _is_like(self, subtree: Any) -> bool:
    return jax.tree.structure(subtree) in self._layouts

  def ravel(self, tree: Any) -> Any:
    """`tree` with each subtree of a known structure replaced by its leaves raveled and concatenated, (n,)."""
    def flat(subtree):
      if not self._is_like(subtree):
        return subtree
      return jnp.concatenate([jnp.ravel(x) for x in jax.tree.leaves(subtree)])
    return jax.tree.map(flat, tree, is_leaf=self._is_like)

  def unravel(self, flat: Any, like: Any) -> Any:
    """The inverse of `ravel` for a `flat` tree made from a tree of `like`'s structure."""
    def split(like_subtree, vector):
      if not self._is_like(like_subtree):
        return vector
      treedef = jax.tree.structure(like_subtree)
      shapes = self._layouts[treedef]
      ends = np.cumsum([int(np.prod(s)) for s in shapes])
      pieces = [vector[end - int(np.prod(s)):end].reshape(s) for s, end in zip(shapes, ends)]
      return jax.tree.unflatten(treedef, pieces)
    return jax.tree.map(split, like, flat, is_leaf=self._is_like)
