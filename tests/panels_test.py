"""Labelled panels: views placed side by side under a label bar, labels drawn, bad arguments refused."""
import numpy as np
import pytest

from mgdn_jax import panels


def test_layout_and_labels():
  views = [np.full((40, 30, 3), 100, np.uint8), np.full((40, 50, 3), 200, np.uint8)]
  out = panels.labelled_row(views, ['under', 'fused'])
  bar = out.shape[0] - 40
  assert out.dtype == np.uint8 and out.shape == (40 + bar, 30 + panels.GAP + 50, 3) and bar >= 14
  assert (out[bar:, :30] == 100).all() and (out[bar:, 30 + panels.GAP:] == 200).all()
  assert (out[bar:, 30:30 + panels.GAP] == 255).all()
  assert (out[:bar, :30] < 128).any() and (out[:bar, 30 + panels.GAP:] < 128).any()  # text in each bar
  blank = panels.labelled_row(views, ['', ''])
  assert (blank[:bar] == 255).all()


def test_label_count_must_match():
  with pytest.raises(ValueError, match='2 views but 1 labels'):
    panels.labelled_row([np.zeros((4, 4, 3), np.uint8)] * 2, ['a'])
