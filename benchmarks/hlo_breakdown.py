"""Where an optimised HLO module's kernels and bytes come from, by the project's source function that emitted them.

XLA's `cost_analysis()` gives one 'bytes accessed' for a whole step and the fusion count says how many kernels it
launches; neither says which layer to change. Every instruction of a compiled module carries a `stack_frame_id`
into the module's FileNames / FunctionNames / FileLocations / StackFrames tables (the Python traceback of the op
that produced it, kept through fusion); this walks that traceback to the innermost frame in one of `owners`
(default: the model's layers, the model, the losses and the training step) and charges the instruction to it.

What an instruction is charged (`Kernel`): the kernels XLA launches, the way `aot_tpu.hlo_stats` counts them
(instructions of ENTRY and of loop bodies, a body once, never those inside fused computations), minus the ones that
move no data (parameters, constants, tuples, bitcasts, control flow); bytes are the logical sizes of its operands
and results (a fusion's: its fused computation's parameters and result), tiles padded (`shape_bytes`); an asynchronous
pair (copy-start/copy-done, slice-start/slice-done) is charged once, at its start, twice the size it copies. The total is therefore close to,
but not the same as, XLA's own 'bytes accessed'; both are printed. Instructions whose traceback never enters an
owner (memory-space copies and layout changes XLA inserts, the optimiser's per-array updates outside any named
frame) are charged to '(no project frame)'.
"""
import collections
import dataclasses
import re

OWNERS = ('mgdn_jax/layers/', 'mgdn_jax/model.py', 'mgdn_jax/losses.py', 'mgdn_jax/train.py',
          'mgdn_jax/train_state.py', 'mgdn_jax/microbatch.py')
_NO_FRAME = '(no project frame)'
_DTYPE_BYTES = {'pred': 1, 's8': 1, 'u8': 1, 'f8e4m3fn': 1, 'f8e5m2': 1, 'bf16': 2, 'f16': 2, 's16': 2, 'u16': 2,
                'f32': 4, 's32': 4, 'u32': 4, 'f64': 8, 's64': 8, 'u64': 8, 'c64': 8, 'c128': 16}
_SHAPE = re.compile(r'\b(' + '|'.join(_DTYPE_BYTES) + r')\[([\d,]*)\](?:\{([\d,]*)(?::T\(([\d,]+)\))?[^}]*\})?')
_INSTRUCTION = re.compile(r'\s*(?:ROOT )?%([\w.\-]+) = (\(.*?\)|\S+) ([\w\-]+)\((.*)$')
_MOVES_NOTHING = frozenset({'parameter', 'constant', 'get-tuple-element', 'tuple', 'bitcast', 'after-all',
                            'partition-id', 'replica-id', 'while', 'conditional', 'call', 'copy-done', 'slice-done',
                            'all-reduce-done', 'all-gather-done', 'collective-permute-done', 'opt-barrier'})
_TABLES = ('FileNames', 'FunctionNames', 'FileLocations', 'StackFrames')


def shape_bytes(text: str) -> int:
  """Bytes of every array shape written in `text` ('f32[4,60]{1,0:T(8,128)}', tuples summed), each dimension
  rounded up to its layout's tile where one is written: XLA:TPU stores (8, 128) tiles, so a 60-wide minor
  dimension takes 128 lanes."""
  total = 0
  for dtype, dims, minor_to_major, tile in _SHAPE.findall(text):
    sizes = [int(d) for d in dims.split(',') if d]
    if tile and minor_to_major:
      order = [int(d) for d in minor_to_major.split(',')]
      for dim, t in zip(order, reversed([int(x) for x in tile.split(',')])):
        sizes[dim] = -(-sizes[dim] // t) * t
    n = 1
    for d in sizes:
      n *= d
    total += n * _DTYPE_BYTES[dtype]
  return total


def _shape_texts(text: str) -> list[str]:
  return [m.group(0) for m in _SHAPE.finditer(text)]


@dataclasses.dataclass
class Kernel:
  name: str
  op: str          # 'fusion', 'convolution', 'copy-start', …
  bytes: int
  frames: list     # [(file, function, line)] innermost first; [] without a stack_frame_id


def _frame_tables(lines):
  """{frame id: (file location id, parent frame id)}, {location id: (file, function, line)} of the module."""
  names, section = {t: {} for t in _TABLES[:2]}, None
  locations, frames = {}, {}
  for line in lines:
    if line in _TABLES:
      section = line
      continue
    if line.startswith(('%', 'ENTRY')):
      break
    m = re.match(r'(\d+) (.*)$', line)
    if not m or section is None:
      continue
    i, rest = int(m.group(1)), m.group(2)
    if section in names:
      names[section][i] = rest.strip('"')
      continue
    fields = {k: int(v) for k, v in re.findall(r'(\w+)=(\d+)', rest)}
    if section == 'FileLocations':
      locations[i] = (names['FileNames'][fields['file_name_id']], names['FunctionNames'][fields['function_name_id']],
                      fields['line'])
    else:  # a frame's parent is written 1-based, 0 for none (the ids themselves are printed 1-based too)
      frames[i] = (fields['file_location_id'], fields['parent_frame_id'] - 1)
  return frames, locations


def _traceback(frame_id, frames, locations):
  out, seen = [], set()
  while frame_id in frames and frame_id not in seen:
    seen.add(frame_id)
    location, frame_id = frames[frame_id]
    out.append(locations[location])
  return out


def kernels(text: str) -> list[Kernel]:
  """Every data-moving kernel of an optimised HLO module's text (module docstring), with bytes and traceback."""
  lines = text.splitlines()
  frames, locations = _frame_tables(lines)
  bodies, signatures, current = {}, {}, None
  for line in lines:
    if line.endswith('{') and not line.startswith((' ', 'HloModule')):  # a computation's header
      words = line.split()
      current = (words[1] if words[0] == 'ENTRY' else words[0]).lstrip('%')
      bodies[current] = []
      m = re.search(r'\((.*)\) -> (.*) \{$', line)
      if m:
        signatures[current] = shape_bytes(m.group(1)) + shape_bytes(m.group(2))
    elif line.startswith('}'):
      current = None
    elif current is not None:
      bodies[current].append(line)
  is_fusion = lambda line: ', kind=k' in line
  fused = {m.group(1) for body in bodies.values() for line in body if is_fusion(line)
           for m in [re.search(r'calls=%?([\w.\-]+)', line)] if m}
  out = []
  for name, body in bodies.items():
    if name in fused:
      continue
    sizes = {}
    parsed = []
    for line in body:
      m = _INSTRUCTION.match(line)
      if m:
        sizes[m.group(1)] = shape_bytes(m.group(2))
        parsed.append((m, line))
    frame_of, users = {}, collections.defaultdict(list)
    for m, line in parsed:
      frame = re.search(r'stack_frame_id=(\d+)', line)
      if frame:
        frame_of[m.group(1)] = int(frame.group(1))
      for operand in set(re.findall(r'%([\w.\-]+)', m.group(4).split('), ')[0])):
        users[operand].append(m.group(1))
    for m, line in parsed:
      op = m.group(3)
      if op in _MOVES_NOTHING:
        continue
      if is_fusion(line):
        nbytes = signatures.get(re.search(r'calls=%?([\w.\-]+)', line).group(1), 0)
      elif op.endswith('-start'):  # result (…, destination, context): read and write the destination's size once
        nbytes = 2 * max((shape_bytes(a) for a in _shape_texts(re.sub(r'^\(\(.*?\)\)?', '', m.group(2)))),
                         default=0)
      else:
        operands = re.findall(r'%([\w.\-]+)', m.group(4).split('), ')[0])
        nbytes = sizes[m.group(1)] + sum(sizes.get(o, 0) for o in operands)
      frame = frame_of.get(m.group(1)) or _user_frame(m.group(1), frame_of, users)
      out.append(Kernel(m.group(1), 'fusion' if is_fusion(line) else op, nbytes,
                        _traceback(frame, frames, locations) if frame else []))
  return out


def _user_frame(name, frame_of, users, limit=8):
  """The frame of the nearest user of `name` that has one (breadth first, `limit` hops): XLA's prefetches,
  async slices and layout copies carry no traceback of their own but serve the op that consumes them."""
  level = [name]
  for _ in range(limit):
    level = [u for n in level for u in users.get(n, ())]
    for u in level:
      if u in frame_of:
        return frame_of[u]
    if not level:
      return None
  return None


def owner(kernel: Kernel, owners=OWNERS) -> str:
  """'file:function' of the innermost traceback frame inside one of `owners` (path fragments), else _NO_FRAME."""
  for file, function, _ in kernel.frames:
    for prefix in owners:
      at = file.find(prefix)
      if at >= 0:
        return f'{file[at:]}:{function}'
  return _NO_FRAME


def breakdown(text: str, owners=OWNERS) -> list[dict]:
  """[{owner, kernels, fusions, bytes}] of a module's kernels grouped by `owner`, most bytes first."""
  groups = collections.defaultdict(lambda: dict(kernels=0, fusions=0, bytes=0))
  for k in kernels(text):
    g = groups[owner(k, owners)]
    g['kernels'] += 1
    g['fusions'] += k.op == 'fusion'
    g['bytes'] += k.bytes
  return sorted(({'owner': name, **g} for name, g in groups.items()), key=lambda r: -r['bytes'])


def table(rows: list[dict], xla_bytes: float | None = None, top: int = 25) -> str:
  """A markdown table of `breakdown` rows (the first `top`, the rest summed), with totals."""
  total = dict(kernels=sum(r['kernels'] for r in rows), fusions=sum(r['fusions'] for r in rows),
               bytes=sum(r['bytes'] for r in rows))
  shown = rows[:top]
  rest = rows[top:]
  if rest:
    shown = shown + [dict(owner=f'({len(rest)} more)', kernels=sum(r['kernels'] for r in rest),
                          fusions=sum(r['fusions'] for r in rest), bytes=sum(r['bytes'] for r in rest))]
  out = ['| source | kernels | fusions | GB | share |', '|---|---|---|---|---|']
  out += [f"| {r['owner']} | {r['kernels']} | {r['fusions']} | {r['bytes'] / 1e9:.2f} | "
          f"{100 * r['bytes'] / max(total['bytes'], 1):.0f}% |" for r in shown]
  xla = f' (XLA: {xla_bytes / 1e9:.2f})' if xla_bytes else ''
  out.append(f"| total | {total['kernels']} | {total['fusions']} | {total['bytes'] / 1e9:.2f}{xla} | 100% |")
  return '\n'.join(out)
