"""Evaluation results: per-image rows, means, and the paper-style table (markdown), CSV and JSON files.

A row is one scored image: `method` (e.g. 'MGDN', 'average', a --fused_dir method name), `mode` ('rgb' per
channel, 'gray' after rgb2gray, or '-' for HDR / GDSR), the scene `name` and a dict of metric values.
"""
import csv
import dataclasses
import json
import math
import pathlib

import numpy as np

from mgdn_jax import tasks


@dataclasses.dataclass
class Row:
  method: str
  mode: str
  name: str
  values: dict


def _clean(v: float):
  """JSON has no NaN / inf: write them as strings."""
  v = float(v)
  return v if math.isfinite(v) else str(v)


class Results:
  """Collects rows for one task and dataset and writes the report files."""

  def __init__(self, task: str, dataset: str, meta: dict | None = None):
    tasks.get(task)  # a clear error for an unknown task
    self.task, self.dataset = task, dataset
    self.meta = dict(meta or {})
    self.rows: list[Row] = []

  def add(self, method: str, mode: str, name: str, values: dict) -> None:
    self.rows.append(Row(method, mode, name, {k: float(v) for k, v in values.items()}))

  def sorted_rows(self) -> list[Row]:
    """Rows grouped by (method, mode) in first-seen order, scenes sorted by name within a group (datasets may
    yield them in any order)."""
    order = {g: i for i, g in enumerate(self.groups())}
    return sorted(self.rows, key=lambda r: (order[r.method, r.mode], r.name))

  def groups(self) -> list[tuple[str, str]]:
    """(method, mode) pairs in first-seen order."""
    seen = []
    for r in self.rows:
      if (r.method, r.mode) not in seen:
        seen.append((r.method, r.mode))
    return seen

  def columns(self) -> list[str]:
    cols = list(tasks.get(self.task).metric_names)
    for r in self.rows:
      cols += [k for k in r.values if k not in cols]
    return cols

  def means(self) -> dict[tuple[str, str], dict[str, float]]:
    """Mean of every metric over the images of each (method, mode)."""
    out = {}
    for group in self.groups():
      rows = [r for r in self.rows if (r.method, r.mode) == group]
      out[group] = {c: float(np.mean([r.values[c] for r in rows])) for c in self.columns()
                    if all(c in r.values for r in rows)}
      out[group]['images'] = len(rows)
    return out

  def markdown(self) -> str:
    """Paper-style table of the means: one row per method and mode, arrows give the better direction."""
    cols = self.columns()
    head = ['method', 'mode', 'images'] + [f'{c} {"↓" if tasks.lower_is_better(c) else "↑"}' for c in cols]
    lines = [f'**{self.task.upper()} — {self.dataset}**', '',
             '| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for (method, mode), m in self.means().items():
      cells = [method, mode, str(m['images'])] + [f'{m[c]:.4f}' if c in m else '–' for c in cols]
      lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)

  def write(self, output_dir) -> dict[str, pathlib.Path]:
    """Writes results.csv (per image + mean rows), results.json and table.md into `output_dir`."""
    out = pathlib.Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    cols = self.columns()
    paths = {'csv': out / 'results.csv', 'json': out / 'results.json', 'markdown': out / 'table.md'}
    with open(paths['csv'], 'w', newline='') as fh:
      writer = csv.writer(fh)
      writer.writerow(['method', 'mode', 'name'] + cols)
      for r in self.sorted_rows():
        writer.writerow([r.method, r.mode, r.name] + [repr(r.values[c]) if c in r.values else '' for c in cols])
      for (method, mode), m in self.means().items():
        writer.writerow([method, mode, 'MEAN'] + [repr(m[c]) if c in m else '' for c in cols])
    doc = {'task': self.task, 'dataset': self.dataset, **self.meta, 'results': []}
    for (method, mode), m in self.means().items():
      doc['results'].append({
          'method': method, 'mode': mode,
          'mean': {k: _clean(v) for k, v in m.items() if k != 'images'}, 'images': m['images'],
          'per_image': {r.name: {k: _clean(v) for k, v in r.values.items()} for r in self.sorted_rows()
                        if (r.method, r.mode) == (method, mode)},
      })
    paths['json'].write_text(json.dumps(doc, indent=1))
    paths['markdown'].write_text(self.markdown() + '\n')
    return paths

  def summary(self) -> dict:
    """{'method/mode': {metric: mean}} for callers (main.py --mode=eval logs these)."""
    return {f'{method}/{mode}': m for (method, mode), m in self.means().items()}
