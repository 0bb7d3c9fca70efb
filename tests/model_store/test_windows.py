"""Sliding windows: the pairing rule shared by training and serving."""

from __future__ import annotations

import numpy as np
import pytest

from model_store import prediction_windows, sliding_windows


def test_each_window_is_paired_with_the_next_value() -> None:
    values = np.arange(1.0, 8.0)  # 1..7
    inputs, targets = sliding_windows(values, 3)
    assert inputs.tolist() == [[1, 2, 3], [2, 3, 4], [3, 4, 5], [4, 5, 6]]
    assert targets.tolist() == [4, 5, 6, 7]


def test_windows_are_copies_not_views() -> None:
    values = np.arange(1.0, 6.0)
    inputs, targets = sliding_windows(values, 2)
    inputs[0, 0] = targets[0] = -1.0
    assert values.tolist() == [1, 2, 3, 4, 5]


def test_series_no_longer_than_the_window_has_no_pairs() -> None:
    inputs, targets = sliding_windows(np.arange(1.0, 4.0), 3)
    assert inputs.shape == (0, 3) and targets.shape == (0,)


def test_prediction_windows_include_the_last_window() -> None:
    values = np.arange(1.0, 6.0)
    assert prediction_windows(values, 3).tolist() == [[1, 2, 3], [2, 3, 4], [3, 4, 5]]
    assert prediction_windows(values, 6).shape == (0, 6)


@pytest.mark.parametrize(("values", "window"), [(np.ones((3, 3)), 2), (np.ones(5), 0)])
def test_bad_arguments_are_refused(values: np.ndarray, window: int) -> None:
    with pytest.raises(ValueError):
        sliding_windows(values, window)
