"""The default model's graph: sign-flipped training copies, members averaged in one graph, the
shrink folded into the bias-free output kernels, and the ONNX export of the whole ensemble."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model_store import RelativeEncoding, parse_price_csv

pytestmark = pytest.mark.slow


def test_ensemble_average_shrink_and_onnx_parity(shared_data: Path, tmp_path: Path) -> None:
    from training.export import check_parity, export_onnx, run_onnx, save_keras
    from training.fit import MemberSpec, train_members
    from training.model import build_member, combine, shrink_output
    from training.windows import training_set

    closes = parse_price_csv((shared_data / "FB_training_data.csv").read_bytes()).values[:300]
    inputs, targets = training_set(closes, 40, RelativeEncoding(), sign_flip=True)
    assert inputs.shape == (520, 40, 1)
    np.testing.assert_array_equal(inputs[260:], -inputs[:260])
    np.testing.assert_array_equal(targets[260:], -targets[:260])

    spec = MemberSpec(40, 4, 1, 0.0, False, 1, 32)
    members, fits = train_members(spec, [0, 1], inputs, targets, log_epochs=False)
    assert [fit.epochs_run for fit in fits] == [1, 1]
    windows = inputs[:50]
    each = [np.asarray(member(windows, training=False)) for member in members]
    assert not np.array_equal(each[0], each[1])  # different seeds, different members
    ensemble = combine(members, 40)
    unshrunk = np.asarray(ensemble(windows, training=False))
    np.testing.assert_allclose(unshrunk, np.mean(each, axis=0), rtol=1e-6, atol=1e-7)

    for member in members:
        shrink_output(member, 0.5)
    # The ensemble shares the members' layers; halving a bias-free kernel halves the output
    # exactly (a power of two), so the folded shrink equals the post-hoc one bit for bit.
    np.testing.assert_array_equal(np.asarray(ensemble(windows, training=False)), 0.5 * unshrunk)

    onnx = export_onnx(ensemble, 40, tmp_path / "model.onnx")
    assert onnx.input_name == "window"
    assert check_parity(ensemble.predict(windows, verbose=0), run_onnx(onnx.path, windows)) <= 1e-4
    save_keras(ensemble, tmp_path / "model.keras")
    from model_store import check_keras_archive

    check_keras_archive((tmp_path / "model.keras").read_bytes(), "ensemble")

    biased = build_member(40, 2, 1, 0.0, output_bias=True)
    with pytest.raises(ValueError, match="shrink needs a bias-free output layer"):
        shrink_output(biased, 0.5)
