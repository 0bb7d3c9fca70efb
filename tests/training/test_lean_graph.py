"""The export-time graph passes: tf2onnx's graphs of real (tiny) models get fewer nodes and the
same outputs in ONNX Runtime; graphs that do not match a pattern exactly are left as they are."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from model_store import RelativeEncoding, parse_price_csv
from training.lean_graph import MAX_FUSED_HIDDEN, lean_model

WINDOW = 40
TOLERANCE = 1e-6


def run(model: onnx.ModelProto, inputs: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.asarray(session.run(None, {name: inputs.astype(np.float32)})[0])


def ops(model: onnx.ModelProto) -> list[str]:
    return [node.op_type for node in model.graph.node]


def assert_same_outputs(raw: onnx.ModelProto, lean: onnx.ModelProto, inputs: np.ndarray) -> None:
    for batch in (inputs[:1], inputs[:50]):
        np.testing.assert_allclose(run(lean, batch), run(raw, batch), rtol=0, atol=TOLERANCE)


@pytest.fixture(scope="module")
def training_windows(shared_data: Path) -> tuple[np.ndarray, np.ndarray]:
    from training.windows import training_set

    closes = parse_price_csv((shared_data / "FB_training_data.csv").read_bytes()).values[:300]
    return training_set(closes, WINDOW, RelativeEncoding(), sign_flip=True)


def random_windows(scale: float) -> np.ndarray:
    return np.random.default_rng(0).normal(0.0, scale, (50, WINDOW, 1)).astype(np.float32)


@pytest.mark.slow
@pytest.mark.parametrize("members", [2, 3])
def test_default_ensemble_becomes_one_fused_lstm_with_the_same_outputs(
    members: int, training_windows: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    from training.export import check_parity, convert_to_onnx, export_onnx, run_onnx
    from training.fit import MemberSpec, train_members
    from training.scale import build_scale_head, with_scale

    spec = MemberSpec(WINDOW, 4, 1, 0.0, False, 1, 32)
    trained, _ = train_members(spec, list(range(members)), *training_windows, log_epochs=False)
    model = with_scale(trained, build_scale_head(WINDOW), WINDOW)
    raw = convert_to_onnx(model, WINDOW)
    lean = lean_model(raw)

    assert ops(raw).count("LSTM") == members
    assert len(lean.graph.node) < len(raw.graph.node)
    assert ops(lean).count("LSTM") == 1
    assert not {"Slice", "Expand", "Split", "Add"} & set(ops(lean))
    (fused,) = (node for node in lean.graph.node if node.op_type == "LSTM")
    hidden = next(a for a in fused.attribute if a.name == "hidden_size")
    assert helper.get_attribute_value(hidden) == 4 * members
    assert_same_outputs(raw, lean, random_windows(0.02))
    assert_same_outputs(raw, lean, training_windows[0])

    exported = export_onnx(model, WINDOW, tmp_path / "model.onnx")
    assert len(onnx.load(exported.path).graph.node) == len(lean.graph.node)
    windows = training_windows[0][:50]
    keras_outputs = model.predict(windows, verbose=0)
    assert check_parity(keras_outputs, run_onnx(exported.path, windows)) <= 1e-4


@pytest.mark.slow
def test_stacked_lstms_lose_their_zero_states_slice_and_transposes(
    training_windows: tuple[np.ndarray, np.ndarray],
) -> None:
    from training.export import convert_to_onnx
    from training.fit import MemberSpec, train_members

    spec = MemberSpec(WINDOW, 5, 2, 0.2, True, 1, 32)
    (member,), _ = train_members(spec, [0], *training_windows, log_epochs=False)
    raw = convert_to_onnx(member, WINDOW)
    lean = lean_model(raw)

    assert ops(lean) == ["Transpose", "LSTM", "Squeeze", "LSTM", "Squeeze", "MatMul", "Add"]
    assert len(lean.graph.node) < len(raw.graph.node)
    assert all(len(n.input) == 4 for n in lean.graph.node if n.op_type == "LSTM")  # no states
    assert_same_outputs(raw, lean, random_windows(0.02))
    assert_same_outputs(raw, lean, training_windows[0])


# Hand-built graphs: an LSTM over a `(steps, batch, 1)` input, hidden size 3.
STEPS, HIDDEN = 6, 3


def lstm_weights(seed: int, name: str) -> list[onnx.TensorProto]:
    rng = np.random.default_rng(seed)
    shapes = {"W": (1, 4 * HIDDEN, 1), "R": (1, 4 * HIDDEN, HIDDEN), "B": (1, 8 * HIDDEN)}
    return [
        numpy_helper.from_array(rng.normal(0, 0.5, shape).astype(np.float32), f"{name}_{key}")
        for key, shape in shapes.items()
    ]


def lstm(name: str, inputs: list[str], outputs: list[str], **attributes: object) -> onnx.NodeProto:
    x, *states = inputs
    names = [x, f"{name}_W", f"{name}_R", f"{name}_B", "", *states]
    return helper.make_node("LSTM", names, outputs, name=name, hidden_size=HIDDEN, **attributes)


def model_of(
    nodes: list[onnx.NodeProto], initializers: list[onnx.TensorProto], output_width: int
) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "hand-built",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [STEPS, "batch", 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", output_width])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def axes(name: str, *values: int) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(values, np.int64), name)


def squeezed_state(lstm_name: str, state: str) -> list[onnx.NodeProto]:
    return [helper.make_node("Squeeze", [state, "axes_0"], [f"{lstm_name}_h"])]


def time_major_windows() -> np.ndarray:
    return np.random.default_rng(1).normal(0, 1, (STEPS, 50, 1)).astype(np.float32)


def assert_unchanged(raw: onnx.ModelProto, lean: onnx.ModelProto) -> None:
    assert lean.graph.SerializeToString() == raw.graph.SerializeToString()


def test_non_zero_initial_states_are_kept_and_zero_ones_dropped() -> None:
    h0 = numpy_helper.from_array(np.full((1, 50, HIDDEN), 0.5, np.float32), "h0")
    c0 = numpy_helper.from_array(np.zeros((1, 50, HIDDEN), np.float32), "c0")
    nodes = [lstm("a", ["x", "h0", "c0"], ["", "a_state"]), *squeezed_state("a", "a_state")]
    nodes[-1].output[0] = "y"
    raw = model_of(nodes, [*lstm_weights(0, "a"), h0, c0, axes("axes_0", 0)], HIDDEN)

    lean = lean_model(raw)

    (node,) = (n for n in lean.graph.node if n.op_type == "LSTM")
    assert list(node.input[5:]) == ["h0"]  # initial_c was all zeros: dropped, initial_h kept
    inputs = time_major_windows()
    np.testing.assert_array_equal(run(lean, inputs), run(raw, inputs))


def test_a_zero_initial_state_the_caller_may_override_is_kept() -> None:
    c0 = numpy_helper.from_array(np.zeros((1, 1, HIDDEN), np.float32), "c0")
    nodes = [lstm("a", ["x", "", "c0"], ["", "a_state"]), *squeezed_state("a", "a_state")]
    nodes[-1].output[0] = "y"
    raw = model_of(nodes, [*lstm_weights(0, "a"), c0, axes("axes_0", 0)], HIDDEN)
    raw.graph.input.append(helper.make_tensor_value_info("c0", TensorProto.FLOAT, [1, 1, HIDDEN]))
    assert_unchanged(raw, lean_model(raw))


def last_step_graph(starts: int, direction: str = "forward") -> onnx.ModelProto:
    nodes = [
        lstm("a", ["x"], ["a_y"], direction=direction),
        helper.make_node("Squeeze", ["a_y", "axes_1"], ["a_seq"]),
        helper.make_node("Slice", ["a_seq", "starts", "ends", "axes_0"], ["a_last"]),
        helper.make_node("Squeeze", ["a_last", "axes_0"], ["y"]),
    ]
    constants = [axes("axes_0", 0), axes("axes_1", 1), axes("starts", starts)]
    constants.append(axes("ends", 2**31 - 1))
    return model_of(nodes, [*lstm_weights(0, "a"), *constants], HIDDEN)


def test_the_last_step_slice_becomes_y_h() -> None:
    raw = last_step_graph(-1)
    lean = lean_model(raw)
    assert ops(lean) == ["LSTM", "Squeeze"]
    (node,) = (n for n in lean.graph.node if n.op_type == "LSTM")
    assert list(node.output) == ["", node.output[1]]  # Y unnamed: not computed
    inputs = time_major_windows()
    np.testing.assert_array_equal(run(lean, inputs), run(raw, inputs))


@pytest.mark.parametrize(("starts", "direction"), [(-2, "forward"), (-1, "reverse")])
def test_a_slice_of_another_step_or_a_reverse_lstm_is_left_alone(
    starts: int, direction: str
) -> None:
    raw = last_step_graph(starts, direction)
    assert_unchanged(raw, lean_model(raw))


def parallel_graph(activations: list[list[str]]) -> onnx.ModelProto:
    nodes, initializers = [], [axes("axes_0", 0)]
    for index, names in enumerate(activations):
        name = f"m{index}"
        nodes.append(lstm(name, ["x"], ["", f"{name}_state"], activations=names))
        nodes.extend(squeezed_state(name, f"{name}_state"))
        initializers.extend(lstm_weights(index, name))
    nodes.append(helper.make_node("Concat", [n.output[0] for n in nodes[1::2]], ["y"], axis=1))
    return model_of(nodes, initializers, HIDDEN * len(activations))


def test_parallel_lstms_fuse_behind_a_split() -> None:
    raw = parallel_graph([["Sigmoid", "Tanh", "Tanh"]] * 3)
    lean = lean_model(raw)
    assert ops(lean) == ["LSTM", "Split", "Squeeze", "Squeeze", "Squeeze", "Concat"]
    inputs = time_major_windows()
    np.testing.assert_allclose(run(lean, inputs), run(raw, inputs), rtol=0, atol=TOLERANCE)


def test_lstms_whose_fused_state_would_be_too_big_are_not_fused() -> None:
    raw = parallel_graph([["Sigmoid", "Tanh", "Tanh"]] * (MAX_FUSED_HIDDEN // HIDDEN + 1))
    assert ops(lean_model(raw)).count("LSTM") == MAX_FUSED_HIDDEN // HIDDEN + 1


def test_lstms_with_different_activations_are_not_fused() -> None:
    raw = parallel_graph([["Sigmoid", "Tanh", "Tanh"], ["Sigmoid", "Relu", "Relu"]])
    assert_unchanged(raw, lean_model(raw))


SUMS = {  # the Adds over the members' outputs m0, m1, m2 and a constant bias b
    "m2 + (m0 + m1)": [("m0", "m1", "p"), ("m2", "p", "y")],
    "(m2 + (m0 + m1)) + b": [("m0", "m1", "p"), ("m2", "p", "s"), ("s", "b", "y")],
    "m2 + ((m0 + b) + m1)": [("m0", "b", "p"), ("p", "m1", "s"), ("m2", "s", "y")],
}


def summed_dense_graph(sum_of: str) -> onnx.ModelProto:
    """Three members' `Squeeze -> MatMul`, summed as `SUMS[sum_of]` says."""
    rng = np.random.default_rng(3)
    nodes, initializers = [], [axes("axes_0", 0)]
    for index in range(3):
        name = f"m{index}"
        nodes.append(lstm(name, ["x"], ["", f"{name}_state"]))
        nodes.extend(squeezed_state(name, f"{name}_state"))
        nodes.append(helper.make_node("MatMul", [f"{name}_h", f"{name}_k"], [name]))
        kernel = rng.normal(0, 1, (HIDDEN, 1)).astype(np.float32)
        initializers += [*lstm_weights(index, name), numpy_helper.from_array(kernel, f"{name}_k")]
    initializers.append(numpy_helper.from_array(np.ones((1, 1), np.float32), "b"))
    nodes += [helper.make_node("Add", [a, b], [out]) for a, b, out in SUMS[sum_of]]
    return model_of(nodes, initializers, 1)


@pytest.mark.parametrize(
    ("sum_of", "expected"),
    [
        ("m2 + (m0 + m1)", ["LSTM", "Squeeze", "MatMul"]),
        ("(m2 + (m0 + m1)) + b", ["LSTM", "Squeeze", "MatMul", "Add"]),
        ("m2 + ((m0 + b) + m1)", ["LSTM", "Split", *["Squeeze", "MatMul"] * 3, *["Add"] * 3]),
    ],
)
def test_summed_member_outputs_become_one_matmul_where_they_are_a_whole_sum(
    sum_of: str, expected: list[str]
) -> None:
    raw = summed_dense_graph(sum_of)
    lean = lean_model(raw)
    assert ops(lean) == expected
    inputs = time_major_windows()
    np.testing.assert_allclose(run(lean, inputs), run(raw, inputs), rtol=0, atol=TOLERANCE)
