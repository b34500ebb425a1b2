"""Official MGDN PyTorch weights → MGDN-JAX.

Python API:
  model = from_official(state_dict, official_kwargs, task)   # task: 'mef' | 'mff' | 'hdr' | 'gdsr'
CLI:
  python -m mgdn_jax.convert --task=mff --official=62000_E.pth|.npz --out=DIR [--scale=4]
writes an exported checkpoint (mgdn_jax.checkpoint.save_model) that evaluation, inference and fine-tuning load.

The name table follows MGDN_REFERENCE §8–9: OIHW convs → HWIO, Linear (out, in) → (in, out), temperature
(6, 1, 1) → (6,). Buffers (`relative_position_index`, `attn_mask`) are recomputed by the model, and the official
unused parameters (`patch_embed.norm.*`, `norm.*`, `adjust_channel_03.*` of 2-stream nets) are skipped.
"""
import os
import re
from collections.abc import Mapping

import numpy as np
from absl import flags
from flax import nnx

from mgdn_jax import cli
from mgdn_jax import model as model_lib
from mgdn_jax import tasks

_SKIPPED = re.compile(r"^(patch_embed\.norm|norm)\.(weight|bias)$|\.relative_position_index$|\.attn_mask$")

# (official regex without the trailing .weight/.bias, our path as a function of the groups, kind).
# kind: conv | linear | norm | plain | temperature.
_B = r"layers\.(\d+)\.residual_group\.blocks\.(\d+)\."
_RULES = [
    (r"inconv(\d)", lambda g: f"input_convs.{int(g[0]) - 1}", "conv"),
    (r"conv1", lambda g: "input_convs.0", "conv"),
    (r"conv_after_body\.0", lambda g: "conv_after_body", "conv"),
    (r"conv_last\.0", lambda g: "conv_last", "conv"),
    (r"layers\.(\d+)\.MGF\.TCA\.temperature", lambda g: f"stages.{g[0]}.mgdf.mgca.temperature", "temperature"),
    (r"layers\.(\d+)\.MGF\.TCA\.(q|q_dwconv|kv|kv_dwconv|project_out)",
     lambda g: f"stages.{g[0]}.mgdf.mgca.{g[1]}", "conv"),
    (r"layers\.(\d+)\.MGF\.kernel_predictor_(ref|ext|under|over)\.(\d)(?:\.0)?",
     lambda g: f"stages.{g[0]}.mgdf.predictors.{_PREDICTOR_INDEX[g[1]]}.conv{g[2]}", "conv"),
    (r"layers\.(\d+)\.MGF\.conv_out_(\d)\.0", lambda g: f"stages.{g[0]}.mgdf.conv_out.{int(g[1]) - 1}", "conv"),
    (r"layers\.(\d+)\.MGF\.conv_ref\.(\d)\.0", lambda g: f"stages.{g[0]}.mgdf.conv_ref{g[1]}", "conv"),
    (_B + r"(norm1|norm2)", lambda g: f"stages.{g[0]}.blocks.{g[1]}.{g[2]}", "norm"),
    (_B + r"attn\.relative_position_bias_table",
     lambda g: f"stages.{g[0]}.blocks.{g[1]}.attn.relative_position_bias_table", "plain"),
    (_B + r"(attn\.qkv|attn\.proj|mlp\.fc1|mlp\.fc2)", lambda g: f"stages.{g[0]}.blocks.{g[1]}.{g[2]}", "linear"),
    (_B + r"lce\.conv\.(\d)", lambda g: f"stages.{g[0]}.blocks.{g[1]}.lce.conv{g[2]}", "conv"),
    (_B + r"lce\.fc\.(\d)", lambda g: f"stages.{g[0]}.blocks.{g[1]}.lce.fc{g[2]}", "linear"),
    (r"layers\.(\d+)\.(dilated_conv|adjust_channel)", lambda g: f"stages.{g[0]}.{g[1]}", "conv"),
    (r"layers\.(\d+)\.adjust_channel_0(\d)", lambda g: f"stages.{g[0]}.adjust_out.{int(g[1]) - 1}", "conv"),
]
_PREDICTOR_INDEX = {"ref": 0, "ext": 1, "under": 0, "over": 1}
_SUFFIX = {"conv": {"weight": "kernel", "bias": "bias"}, "linear": {"weight": "kernel", "bias": "bias"},
           "norm": {"weight": "scale", "bias": "bias"}}


def _our_name(name: str):
  """Official state_dict name → (our flat path, kind), or None when it has no counterpart."""
  stem, _, leaf = name.rpartition(".")
  for pattern, to_path, kind in _RULES:
    if kind in _SUFFIX:
      m = re.fullmatch(pattern, stem)
      if m and leaf in _SUFFIX[kind]:
        return f"{to_path(m.groups())}.{_SUFFIX[kind][leaf]}", kind
    elif m := re.fullmatch(pattern, name):
      return to_path(m.groups()), kind
  return None


def _to_ours(value: np.ndarray, kind: str) -> np.ndarray:
  if kind == "conv" and value.ndim == 4:
    return value.transpose(2, 3, 1, 0)
  if kind == "linear" and value.ndim == 2:
    return value.T
  if kind == "temperature":
    return value.reshape(-1)
  return value


def _unwrap(obj):
  """KAIR can save `{'params': …}` / `{'params_ema': …}`; the EMA weights are the ones to use."""
  if isinstance(obj, Mapping) and obj and set(obj) <= {"params", "params_ema"}:
    return obj.get("params_ema", obj.get("params"))
  return obj


def strip_prefix(state_dict: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Drops DataParallel's `module.` prefix and KAIR's `params`/`params_ema` wrapper."""
  state_dict = _unwrap(state_dict)
  return {k[len("module."):] if k.startswith("module.") else k: np.asarray(v) for k, v in state_dict.items()}


def _dimensions(cfg: Mapping) -> tuple:
  return (int(cfg["embed_dim"]), tuple(int(d) for d in cfg["depths"]), tuple(int(h) for h in cfg["num_heads"]),
          int(cfg.get("window_size", 8)), float(cfg.get("mlp_ratio", 4.0)))


def check_task(official_kwargs: Mapping, task: str) -> None:
  """Refuses weights with exactly another task's official dimensions (MEF and MFF share one network class, so
  MFF weights would otherwise load silently as an MEF model); other dimensions are custom models and pass."""
  dims = _dimensions(official_kwargs)
  if dims == _dimensions(model_lib.model_config(tasks.get(task).preset())):
    return
  for other in tasks.NAMES:
    if other != task and dims == _dimensions(model_lib.model_config(tasks.get(other).preset())):
      raise ValueError(f"the weights have the official {other} network's dimensions (embed_dim {dims[0]}, depths "
                       f"{list(dims[1])}), not {task}'s: pass --task={other}")


def model_config_from_official(official_kwargs: Mapping, task: str):
  """Our model config for the official constructor arguments (MGDN_REFERENCE §1)."""
  if task not in tasks.NAMES:
    raise ValueError(f"task must be one of {sorted(tasks.NAMES)}, got {task!r}")
  kw = dict(official_kwargs)
  check_task(kw, task)
  embed_dim = int(kw.get("embed_dim", 96))
  gf = int(kw.get("GF_chans", tasks.get(task).official_gf_chans))
  if gf != embed_dim:
    raise ValueError(f"official GF_chans={gf} must equal embed_dim={embed_dim} (the official filter repeats the "
                     f"kernel GF_chans times)")
  return model_lib.model_config(
      tasks.get(task).preset(), embed_dim=embed_dim, depths=tuple(int(d) for d in kw["depths"]),
      num_heads=tuple(int(h) for h in kw["num_heads"]), window_size=int(kw.get("window_size", 8)),
      mlp_ratio=float(kw.get("mlp_ratio", 4.0)))


def _entry(sd: Mapping[str, np.ndarray], key: str, ndim: int) -> np.ndarray:
  if key not in sd:
    raise ValueError(f"state_dict has no {key}: not a complete official MGDN checkpoint")
  if np.ndim(sd[key]) != ndim:
    raise ValueError(f"{key} has shape {np.shape(sd[key])}, expected {ndim} dimensions")
  return sd[key]


def infer_official_kwargs(state_dict: Mapping[str, np.ndarray]) -> dict:
  """Reads embed_dim, depths, num_heads, window_size and mlp_ratio off an official state_dict."""
  sd = strip_prefix(state_dict)
  first = sd.get("inconv1.weight", sd.get("conv1.weight"))
  if first is None:
    raise ValueError("state_dict has neither inconv1.weight nor conv1.weight: not an official MGDN checkpoint")
  if np.ndim(first) != 4:
    raise ValueError(f"its first convolution has shape {np.shape(first)}, expected 4 dimensions")
  embed_dim = first.shape[0]
  depths, heads = [], []
  i = 0
  while f"layers.{i}.adjust_channel.weight" in sd:
    blocks = {int(m.group(1)) for k in sd
              if (m := re.match(rf"layers\.{i}\.residual_group\.blocks\.(\d+)\.", k))}
    depths.append(len(blocks))
    heads.append(_entry(sd, f"layers.{i}.residual_group.blocks.0.attn.relative_position_bias_table", 2).shape[1])
    i += 1
  if not depths:
    raise ValueError("state_dict has no layers.0.*: not an official MGDN checkpoint")
  table = _entry(sd, "layers.0.residual_group.blocks.0.attn.relative_position_bias_table", 2).shape[0]
  window = (int(round(np.sqrt(table))) + 1) // 2
  hidden = _entry(sd, "layers.0.residual_group.blocks.0.mlp.fc1.weight", 2).shape[0]
  return dict(GF_chans=embed_dim, embed_dim=embed_dim, depths=depths, num_heads=heads, window_size=window,
              mlp_ratio=hidden / embed_dim)


def load_official_params(model: nnx.Module, state_dict: Mapping[str, np.ndarray]) -> None:
  """Copies an official state_dict into `model` in place; raises listing unknown, missing, mis-shaped keys."""
  sd = strip_prefix(state_dict)
  ours = dict(nnx.to_flat_state(nnx.state(model, nnx.Param)))
  ours = {".".join(map(str, k)): v for k, v in ours.items()}
  two_stream = "stages.0.mgdf.conv_ref0.kernel" not in ours
  unknown, misshaped, seen = [], [], set()
  for name, value in sd.items():
    if _SKIPPED.search(name) or (two_stream and re.fullmatch(r"layers\.\d+\.adjust_channel_03\.(weight|bias)",
                                                               name)):
      continue
    mapped = _our_name(name)
    if mapped is None or mapped[0] not in ours:
      unknown.append(name)
      continue
    path, kind = mapped
    converted = _to_ours(np.asarray(value, np.float32), kind)
    if converted.shape != ours[path].shape:
      misshaped.append(f"{name} {tuple(value.shape)} (expected {ours[path].shape} as {path})")
      continue
    ours[path][...] = converted
    seen.add(path)
  missing = sorted(set(ours) - seen)
  problems = []
  if unknown:
    problems.append(f"unknown keys: {', '.join(sorted(unknown))}")
  if missing:
    problems.append(f"missing parameters: {', '.join(missing)}")
  if misshaped:
    problems.append(f"mis-shaped keys: {'; '.join(misshaped)}")
  if problems:
    raise ValueError("official state_dict does not fit the model — " + " | ".join(problems))


def from_official(state_dict: Mapping[str, np.ndarray], official_kwargs: Mapping | None, task: str):
  """A ready MGDN model holding the official weights.

  Args:
    state_dict: official parameter names (an optional `module.` prefix is accepted) → numpy arrays.
    official_kwargs: the official constructor arguments (GF_chans, embed_dim, depths, num_heads, window_size,
      mlp_ratio); None reads them off the state_dict.
    task: 'mef', 'mff', 'hdr' or 'gdsr'.
  """
  kwargs = official_kwargs if official_kwargs is not None else infer_official_kwargs(state_dict)
  model = model_lib.create_model(model_config_from_official(kwargs, task))
  load_official_params(model, state_dict)
  return model


def read_state_dict(path: str) -> dict[str, np.ndarray]:
  """Reads an official checkpoint: `.npz` (no torch needed) or `.pth`/`.pt` (needs torch)."""
  if path.endswith(".npz"):
    try:
      with open(path, "rb") as f:
        if f.read(4) != b"PK\x03\x04":
          raise ValueError("not an .npz archive (a zip file of .npy arrays)")
      with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}
    except Exception as e:  # pylint: disable=broad-except  (zipfile, zlib and numpy raise many kinds of errors)
      reason = (e.strerror if isinstance(e, OSError) and e.strerror else str(e).splitlines()[0] if str(e)
                else type(e).__name__)
      raise ValueError(f"cannot read {path}: {reason}") from None
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise ValueError(f"reading {path} needs torch (pip install torch), or convert it to .npz first") from None
  try:
    obj = torch.load(path, map_location="cpu", weights_only=True)
  except Exception as e:  # torch raises many kinds of errors for a bad file
    raise ValueError(f"cannot read {path}: {e}") from None
  return {k: v.detach().cpu().numpy() if hasattr(v, "detach") else v for k, v in _unwrap(obj).items()}


def export_config(task: str, model_cfg, scale: int | None = None):
  """The task's training config (configs/<task>.py) with the converted model's config in `model`."""
  import importlib  # pylint: disable=g-import-not-at-top
  variant = f"x{scale}" if scale and tasks.get(task).guided_depth else None
  config = importlib.import_module(f"configs.{task}").get_config(variant)
  config.model = model_cfg
  config.model_name = tasks.get(task).preset(scale)
  return config


def _publish(out: str, model, config) -> None:
  """Saves into a private staging folder beside `out`, then renames it onto `out` (absent or empty) in one step,
  so `out` is never half-written and nothing of the user's is removed."""
  import shutil  # pylint: disable=g-import-not-at-top
  import tempfile  # pylint: disable=g-import-not-at-top
  from mgdn_jax import checkpoint  # pylint: disable=g-import-not-at-top
  staging = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.", dir=os.path.dirname(out))
  try:
    checkpoint.save_model(os.path.join(staging, "model"), model, config)
    os.rename(os.path.join(staging, "model"), out)  # replaces an empty folder; refuses one that is not
  finally:
    shutil.rmtree(staging, ignore_errors=True)


PROG = "convert"
DESCRIPTION = ("Convert official MGDN PyTorch weights (.pth needs torch; .npz does not) into an MGDN-JAX "
               "checkpoint that evaluation, inference and fine-tuning load.")


def define_flags(f: flags.FlagValues) -> None:
  """convert's flags on `f` (cli.parse)."""
  flags.DEFINE_enum("task", None, sorted(tasks.NAMES), "the task the weights are for", required=True, flag_values=f)
  flags.DEFINE_string("official", None, "official checkpoint (.pth/.pt or .npz)", required=True, flag_values=f)
  flags.DEFINE_string("out", None, "output directory (must not exist or be empty)", required=True, flag_values=f)
  flags.DEFINE_enum("scale", None, [str(s) for s in tasks.GDSR_SCALES],
                    "GDSR scale the weights were trained for (stored in the exported config)", flag_values=f)


def main(argv=None) -> None:
  args, _ = cli.parse(PROG, DESCRIPTION, define_flags, argv)
  out = os.path.abspath(args.out)
  parent = os.path.dirname(out)
  if not os.path.isfile(args.official):
    cli.fail(PROG, f"--official {args.official}: no such file")
  if os.path.exists(out) and not (os.path.isdir(out) and not os.listdir(out)):
    cli.fail(PROG, f"--out {args.out} exists and is not an empty folder")
  if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
    cli.fail(PROG, f"--out {args.out}: folder {parent} does not exist or is not writable")
  try:
    state_dict = read_state_dict(args.official)
  except ValueError as e:
    cli.fail(PROG, e)  # names the file
  try:
    kwargs = infer_official_kwargs(state_dict)
    model = from_official(state_dict, kwargs, args.task)
  except ValueError as e:
    cli.fail(PROG, f"{args.official}: {e}")
  scale = int(args.scale) if args.scale else None
  try:
    _publish(out, model, export_config(args.task, model_config_from_official(kwargs, args.task), scale))
  except OSError as e:
    cli.fail(PROG, f"--out {args.out}: {e.strerror or e}")
  print(f"wrote {args.out}: task={args.task}, official kwargs {kwargs}, "
        f"{model_lib.count_params(model):,} parameters")


if __name__ == "__main__":
  main()
