"""Export-time passes that make tf2onnx's graph of our LSTM models leaner with the same math.

tf2onnx spells out what Keras's LSTM layer does step by step: zero initial states built from the
batch size, the last step sliced out of the full sequence output, transposes in and out of the
time-major layout between stacked layers, and one LSTM node per ensemble member. ONNX's LSTM
already has each of these built in (zero default states, `Y_h`, time-major `Y`), and parallel
LSTMs over the same input are one LSTM with a block-diagonal recurrence. Each pass matches its
pattern exactly, constants included, and leaves the graph as it is otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, MutableSequence, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

LSTM_GATES = 4  # ONNX's gate order i, o, f, c
LSTM_DEFAULT_ACTIVATIONS = ("Sigmoid", "Tanh", "Tanh")
LSTM_STATE_INPUTS = (5, 6)  # initial_h, initial_c
LSTM_FUSABLE_ATTRIBUTES = frozenset(
    {"activations", "activation_alpha", "activation_beta", "clip", "direction", "hidden_size"}
    | {"input_forget", "layout"}
)
# Nodes whose every output is optional: an output nobody reads is not computed when unnamed.
OPTIONAL_OUTPUT_OPS = frozenset({"LSTM", "GRU", "RNN"})
# Nodes whose output is all zeros when their first input is (for any other inputs).
ZERO_PRESERVING_OPS = frozenset(
    {"Expand", "Unsqueeze", "Squeeze", "Reshape", "Cast", "Identity", "Transpose", "Tile"}
)
INT32_MAX = 2**31 - 1
MAX_FUSED_HIDDEN = 64  # the default preset's three members of 16 fuse into 48
MIN_OPSET = 13  # the passes write Squeeze and Split in their opset-13 form (axes, split as inputs)


def lean_model(
    model: onnx.ModelProto, passes: Sequence[Callable[[onnx.GraphProto], None]] | None = None
) -> onnx.ModelProto:
    """A copy of `model` with `passes` (default: all of them, in order) applied, each followed
    by `remove_dead_nodes`, checked by `onnx.checker`. Each pass leaves what it does not match
    alone."""
    lean = onnx.ModelProto()
    lean.CopyFrom(model)
    if _default_opset(lean) < MIN_OPSET:
        return lean
    graph = lean.graph
    for graph_pass in PASSES if passes is None else passes:
        graph_pass(graph)
        remove_dead_nodes(graph)
    onnx.checker.check_model(lean)
    return lean


class _Index:
    """Who produces and who consumes each value of a graph, and its constants."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.graph = graph
        self.producer = {name: node for node in graph.node for name in node.output if name}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in graph.node:
            for name in {*node.input, *_subgraph_inputs(node)}:
                self.consumers.setdefault(name, []).append(node)
        self.outputs = {output.name for output in graph.output}
        self.initializers: dict[str, onnx.TensorProto] = {t.name: t for t in graph.initializer}
        # An initializer that is also a graph input is only a default the caller may override.
        self.inputs = {value.name for value in graph.input}

    def constant(self, name: str) -> np.ndarray | None:
        """The value of an initializer or a `Constant` node's tensor, else None."""
        if name in self.inputs:
            return None
        if name in self.initializers:
            return numpy_helper.to_array(self.initializers[name])
        node = self.producer.get(name)
        if node is not None and node.op_type == "Constant" and len(node.attribute) == 1:
            attribute = node.attribute[0]
            if attribute.name == "value":
                return numpy_helper.to_array(attribute.t)
        return None

    def ints(self, name: str) -> list[int] | None:
        """An integer constant as a list, else None."""
        value = self.constant(name)
        if value is None or value.dtype.kind not in "iu":
            return None
        return [int(item) for item in value.reshape(-1)]

    def sole_consumer(self, name: str) -> onnx.NodeProto | None:
        """The one node reading `name` when it is read once and is not a graph output."""
        readers = self.consumers.get(name, [])
        if len(readers) != 1 or name in self.outputs:
            return None
        return readers[0]

    def is_read(self, name: str) -> bool:
        return bool(name) and (name in self.outputs or bool(self.consumers.get(name)))

    def is_all_zero(self, name: str) -> bool:
        """Whether `name` is provably all zeros: a zero constant, a `ConstantOfShape` of zero,
        or a reshaping/broadcasting/casting of such a value."""
        value = self.constant(name)
        if value is not None:
            return bool(value.size) and not np.any(value)
        node = self.producer.get(name)
        if node is None:
            return False
        if node.op_type == "ConstantOfShape":
            fill = _attribute(node, "value")
            return fill is None or not np.any(numpy_helper.to_array(fill))
        return node.op_type in ZERO_PRESERVING_OPS and self.is_all_zero(node.input[0])

    def fresh_name(self, stem: str) -> str:
        """A value or initializer name not used in the graph yet."""
        taken = {*self.producer, *self.consumers, *self.initializers, *self.outputs, *self.inputs}
        index = 0
        while f"{stem}__lean{index}" in taken:
            index += 1
        return f"{stem}__lean{index}"

    def axes(self, *axes: int) -> str:
        """An int64 initializer holding `axes` (an existing one when there is one)."""
        value = np.array(axes, np.int64)
        for name, tensor in self.initializers.items():
            existing = numpy_helper.to_array(tensor)
            if existing.dtype == value.dtype and np.array_equal(existing, value):
                return name
        return self.add_initializer("lean_axes", value)

    def add_initializer(self, stem: str, value: np.ndarray) -> str:
        name = self.fresh_name(stem)
        tensor = numpy_helper.from_array(value, name)
        self.graph.initializer.append(tensor)
        self.initializers[name] = tensor
        return name


def drop_zero_initial_states(graph: onnx.GraphProto) -> None:
    """Unset an LSTM's `initial_h` / `initial_c` when they are provably all zeros (tf2onnx builds
    them from the batch size with Shape, Slice, Concat, Expand...): ONNX's LSTM starts from
    zeros when they are absent."""
    index = _Index(graph)
    for node in graph.node:
        if node.op_type != "LSTM":
            continue
        zeros = [
            p for p in LSTM_STATE_INPUTS if _has_input(node, p) and index.is_all_zero(node.input[p])
        ]
        for position in zeros:
            node.input[position] = ""
        if zeros:
            _trim_trailing_empty(node.input)


def last_step_from_y_h(graph: onnx.GraphProto) -> None:
    """Replace `Squeeze(Y, axis 1) -> Slice(last step of axis 0) -> Squeeze(axis 0)` on a forward
    LSTM's full output by `Squeeze(Y_h, axis 0)`: the last hidden state is already an output."""
    while True:
        index = _Index(graph)
        match = next(filter(None, (_last_step_chain(index, node) for node in graph.node)), None)
        if match is None:
            return
        lstm, chain = match
        if len(lstm.output) < 2 or not lstm.output[1]:
            _set_output(lstm, 1, index.fresh_name(f"{lstm.name or 'LSTM'}_Y_h"))
        axes = index.axes(0)
        squeeze = helper.make_node(
            "Squeeze", [lstm.output[1], axes], [chain[-1].output[0]], name=f"{lstm.name}_last_step"
        )
        _replace_nodes(graph, chain, [squeeze])


def fuse_parallel_lstms(graph: onnx.GraphProto, stack_dense: bool = True) -> None:
    """Fuse forward LSTMs reading the same input (same activations, clip and input_forget, no
    sequence lengths, initial states or peepholes, only `Y_h` read) into one LSTM whose hidden
    state is the members' side by side: W and B stacked gate by gate, R block-diagonal.

    When each member's `Y_h` only feeds `Squeeze(axis 0) -> MatMul(constant)` and a tree of Adds
    sums exactly those products, the sum becomes one MatMul of the fused state with the stacked
    weights (unless `stack_dense` is false); otherwise a Split hands each member's consumers
    their part of the fused `Y_h`.
    """
    while True:
        index = _Index(graph)
        groups: dict[tuple[object, ...], list[onnx.NodeProto]] = {}
        for node in graph.node:
            key = _fusable_lstm_key(index, node)
            if key is not None:
                groups.setdefault(key, []).append(node)
        members = next(
            (nodes for nodes in groups.values() if len(nodes) > 1 and _fits(nodes)), None
        )
        if members is None:
            return
        _fuse(graph, index, members, stack_dense)


def _fits(nodes: list[onnx.NodeProto]) -> bool:
    """Whether the fused LSTM stays small enough: its block-diagonal recurrence does as many
    multiply-adds as all members' together times their number, which only a small state
    repays with the node calls it saves."""
    return sum(int(_attribute_value(node, "hidden_size")) for node in nodes) <= MAX_FUSED_HIDDEN


def cancel_transpose_pairs(graph: onnx.GraphProto) -> None:
    """Read a value's source directly where two Transposes in a row undo each other (tf2onnx
    leaves one pair between stacked LSTMs: time-major out, batch-major, time-major in)."""
    index = _Index(graph)
    for second in graph.node:
        if second.op_type != "Transpose" or second.output[0] in index.outputs:
            continue
        first = index.producer.get(second.input[0])
        if first is None or first.op_type != "Transpose":
            continue
        inner, outer = _perm(first), _perm(second)
        if inner is None or outer is None or len(inner) != len(outer):
            continue
        if all(inner[axis] == position for position, axis in enumerate(outer)):
            _rename_reads(graph, second.output[0], first.input[0])


def remove_dead_nodes(graph: onnx.GraphProto) -> None:
    """Drop nodes no graph output depends on and initializers nothing reads; unname optional
    outputs (of LSTM, GRU, RNN) nothing reads, so ONNX Runtime does not compute them."""
    needed = {output.name for output in graph.output}
    alive: list[onnx.NodeProto] = []
    for node in reversed(graph.node):
        if any(name in needed for name in node.output):
            alive.append(node)
            needed.update(name for name in node.input if name)
            needed.update(_subgraph_inputs(node))
    for node in alive:
        if node.op_type in OPTIONAL_OUTPUT_OPS:
            for position, name in enumerate(node.output):
                if name not in needed:
                    node.output[position] = ""
            _trim_trailing_empty(node.output)
    _keep(graph.node, reversed(alive))
    needed.update(value.name for value in graph.input)
    _keep(graph.initializer, (t for t in graph.initializer if t.name in needed))
    produced = {name for node in graph.node for name in node.output}
    _keep(graph.value_info, (v for v in graph.value_info if v.name in produced))


PASSES: tuple[Callable[[onnx.GraphProto], None], ...] = (
    drop_zero_initial_states,
    last_step_from_y_h,
    fuse_parallel_lstms,
    cancel_transpose_pairs,
)


def _last_step_chain(
    index: _Index, lstm: onnx.NodeProto
) -> tuple[onnx.NodeProto, list[onnx.NodeProto]] | None:
    """The LSTM and its `Squeeze -> Slice -> Squeeze` chain, when `lstm` has one."""
    if lstm.op_type != "LSTM" or not _forward_time_major(lstm) or _has_input(lstm, 4):
        return None
    squeeze_direction = index.sole_consumer(lstm.output[0]) if lstm.output else None
    if squeeze_direction is None or _squeeze_axes(index, squeeze_direction, 4) != [1]:
        return None
    slice_node = index.sole_consumer(squeeze_direction.output[0])
    if slice_node is None or not _slices_last_step(index, slice_node):
        return None
    squeeze_time = index.sole_consumer(slice_node.output[0])
    if squeeze_time is None or _squeeze_axes(index, squeeze_time, 3) != [0]:
        return None
    return lstm, [squeeze_direction, slice_node, squeeze_time]


def _slices_last_step(index: _Index, node: onnx.NodeProto) -> bool:
    """A Slice of a rank-3 value that keeps only the last index of axis 0."""
    if node.op_type != "Slice" or len(node.input) < 3:
        return False
    starts, ends = index.ints(node.input[1]), index.ints(node.input[2])
    axes = index.ints(node.input[3]) if _has_input(node, 3) else [0]
    steps = index.ints(node.input[4]) if _has_input(node, 4) else [1]
    if axes is not None:
        axes = [axis % 3 for axis in axes]
    return (
        starts == [-1]
        and ends is not None
        and ends[0] >= INT32_MAX
        and len(ends) == 1
        and (axes == [0] and steps == [1])
    )


def _squeeze_axes(index: _Index, node: onnx.NodeProto, rank: int) -> list[int] | None:
    """A Squeeze's axes (input or attribute) made non-negative for an input of `rank`."""
    if node.op_type != "Squeeze":
        return None
    if _has_input(node, 1):
        axes = index.ints(node.input[1])
    else:
        attribute = _attribute(node, "axes")
        axes = None if attribute is None else [int(axis) for axis in attribute.ints]
    return None if axes is None else sorted(axis % rank for axis in axes)


@dataclass(frozen=True)
class _Member:
    """One LSTM of a fusable group and its weights as `(gates, hidden, ...)` arrays."""

    node: onnx.NodeProto
    w: np.ndarray  # (4, hidden, input)
    r: np.ndarray  # (4, hidden, hidden)
    b: np.ndarray  # (8, hidden): Wb's gates then Rb's

    @property
    def hidden(self) -> int:
        return int(self.w.shape[1])


def _fusable_lstm_key(index: _Index, node: onnx.NodeProto) -> tuple[object, ...] | None:
    """What must be equal for LSTMs to fuse (input, activations, clip...), or None when this
    node cannot take part."""
    if node.op_type != "LSTM" or not _forward_time_major(node):
        return None
    if any(attribute.name not in LSTM_FUSABLE_ATTRIBUTES for attribute in node.attribute):
        return None
    if any(_has_input(node, position) for position in (4, 5, 6, 7)):
        return None
    w = index.constant(node.input[1])
    if w is None or not _has_fusable_weights(index, node, w):
        return None
    outputs = [*node.output, "", "", ""]
    if index.is_read(outputs[0]) or index.is_read(outputs[2]) or not index.is_read(outputs[1]):
        return None
    activations = _attribute(node, "activations")
    names = tuple(a.decode() for a in activations.strings) if activations else None
    return (
        node.input[0],
        names or LSTM_DEFAULT_ACTIVATIONS,
        _attribute_value(node, "activation_alpha"),
        _attribute_value(node, "activation_beta"),
        _attribute_value(node, "clip"),
        _attribute_value(node, "input_forget") or 0,
        w.dtype.str,
        w.shape[-1],
    )


def _has_fusable_weights(index: _Index, node: onnx.NodeProto, w: np.ndarray) -> bool:
    """Whether W, R and B (when there is one) are constants of one dtype with the shapes of a
    single-direction LSTM."""
    hidden = _attribute_value(node, "hidden_size")
    if not isinstance(hidden, int):
        return False
    gates = LSTM_GATES * hidden
    r = index.constant(node.input[2])
    b = index.constant(node.input[3]) if _has_input(node, 3) else np.zeros((1, 2 * gates), w.dtype)
    if r is None or b is None or not w.dtype == r.dtype == b.dtype:
        return False
    shapes = (w.shape[:2], w.ndim, r.shape, b.shape)
    return shapes == ((1, gates), 3, (1, gates, hidden), (1, 2 * gates))


def _member(index: _Index, node: onnx.NodeProto) -> _Member:
    w, r = index.constant(node.input[1]), index.constant(node.input[2])
    assert w is not None and r is not None  # checked by _has_fusable_weights
    hidden = r.shape[-1]
    b = index.constant(node.input[3]) if _has_input(node, 3) else None
    if b is None:
        b = np.zeros((1, 2 * LSTM_GATES * hidden), w.dtype)
    return _Member(
        node,
        w.reshape(LSTM_GATES, hidden, -1),
        r.reshape(LSTM_GATES, hidden, hidden),
        b.reshape(2 * LSTM_GATES, hidden),
    )


def _fuse(
    graph: onnx.GraphProto, index: _Index, nodes: list[onnx.NodeProto], stack_dense: bool
) -> None:
    members = [_member(index, node) for node in nodes]
    total = sum(member.hidden for member in members)
    recurrence = np.zeros((LSTM_GATES, total, total), members[0].r.dtype)
    offset = 0
    for member in members:
        recurrence[:, offset : offset + member.hidden, offset : offset + member.hidden] = member.r
        offset += member.hidden
    w = np.concatenate([member.w for member in members], axis=1).reshape(
        1, -1, members[0].w.shape[2]
    )
    b = np.concatenate([member.b for member in members], axis=1).reshape(1, -1)
    first = nodes[0]
    name = first.name or "LSTM"
    inputs = [
        first.input[0],
        index.add_initializer(f"{name}_fused_W", w),
        index.add_initializer(f"{name}_fused_R", recurrence.reshape(1, LSTM_GATES * total, total)),
        index.add_initializer(f"{name}_fused_B", b),
    ]
    state = index.fresh_name(f"{name}_fused_Y_h")
    fused = helper.make_node("LSTM", inputs, ["", state], name=f"{name}_fused")
    fused.attribute.extend(a for a in first.attribute if a.name != "hidden_size")
    fused.attribute.append(helper.make_attribute("hidden_size", total))
    summed = _summed_dense_outputs(index, members) if stack_dense else None
    replaced = list(nodes)
    if summed is not None:
        replacement = _stacked_dense(index, state, summed, name)
        replaced += summed.nodes
    else:
        sizes = index.axes(*(member.hidden for member in members))
        outputs = [member.node.output[1] for member in members]
        split = helper.make_node("Split", [state, sizes], outputs, name=f"{name}_split", axis=2)
        replacement = [split]
    _replace_nodes(graph, replaced, [fused, *replacement])


@dataclass(frozen=True)
class _SummedDense:
    """The members' `Squeeze -> MatMul` and the Adds that sum their products."""

    nodes: list[onnx.NodeProto]
    kernels: list[np.ndarray]
    output: str


def _summed_dense_outputs(index: _Index, members: list[_Member]) -> _SummedDense | None:
    nodes: list[onnx.NodeProto] = []
    kernels, products = [], []
    for member in members:
        squeeze = index.sole_consumer(member.node.output[1])
        if squeeze is None or _squeeze_axes(index, squeeze, 3) != [0]:
            return None
        matmul = index.sole_consumer(squeeze.output[0])
        if matmul is None or matmul.op_type != "MatMul" or matmul.input[0] != squeeze.output[0]:
            return None
        kernel = index.constant(matmul.input[1])
        if kernel is None or kernel.ndim != 2 or kernel.shape[0] != member.hidden:
            return None
        nodes += [squeeze, matmul]
        kernels.append(kernel)
        products.append(matmul.output[0])
    adds = _add_tree_over(index, products)
    if adds is None or len({kernel.shape[1] for kernel in kernels}) != 1:
        return None
    return _SummedDense(nodes + adds, kernels, adds[-1].output[0])


def _add_tree_over(index: _Index, values: list[str]) -> list[onnx.NodeProto] | None:
    """The Adds (the one giving the sum last) that sum exactly `values`, each value and each
    partial sum read once; None when no such tree of Adds exists."""
    current = values[0]
    while (add := index.sole_consumer(current)) is not None and add.op_type == "Add":
        adds, leaves = _add_tree(index, add)
        if sorted(leaves) == sorted(values):
            read_once = all(index.sole_consumer(value) is not None for value in values)
            return adds if read_once else None
        current = add.output[0]
    return None


def _add_tree(index: _Index, root: onnx.NodeProto) -> tuple[list[onnx.NodeProto], list[str]]:
    """The Adds under `root` (through partial sums read once), root last, and their terms."""
    adds: list[onnx.NodeProto] = []
    leaves: list[str] = []
    for name in root.input:
        producer = index.producer.get(name)
        if producer is not None and producer.op_type == "Add" and index.sole_consumer(name):
            inner_adds, inner_leaves = _add_tree(index, producer)
            adds += inner_adds
            leaves += inner_leaves
        else:
            leaves.append(name)
    return [*adds, root], leaves


def _stacked_dense(
    index: _Index, state: str, summed: _SummedDense, name: str
) -> list[onnx.NodeProto]:
    axes = index.axes(0)
    hidden = index.fresh_name(f"{name}_fused_hidden")
    kernel = index.add_initializer(f"{name}_fused_dense", np.concatenate(summed.kernels, axis=0))
    return [
        helper.make_node("Squeeze", [state, axes], [hidden], name=f"{name}_fused_last_step"),
        helper.make_node("MatMul", [hidden, kernel], [summed.output], name=f"{name}_fused_dense"),
    ]


def _default_opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)


def _forward_time_major(node: onnx.NodeProto) -> bool:
    direction = _attribute_value(node, "direction")
    return direction in (None, b"forward") and not _attribute_value(node, "layout")


def _has_input(node: onnx.NodeProto, position: int) -> bool:
    return position < len(node.input) and bool(node.input[position])


def _attribute(node: onnx.NodeProto, name: str) -> onnx.AttributeProto | None:
    return next((attribute for attribute in node.attribute if attribute.name == name), None)


def _attribute_value(node: onnx.NodeProto, name: str) -> object:
    attribute = _attribute(node, name)
    if attribute is None:
        return None
    value = helper.get_attribute_value(attribute)
    return tuple(value) if isinstance(value, list) else value


def _perm(node: onnx.NodeProto) -> list[int] | None:
    attribute = _attribute(node, "perm")
    return None if attribute is None else list(attribute.ints)


def _subgraph_inputs(node: onnx.NodeProto) -> set[str]:
    """Every name read inside the node's subgraphs (If, Loop, Scan), outer values included."""
    names: set[str] = set()
    for attribute in node.attribute:
        for graph in [attribute.g] if attribute.HasField("g") else list(attribute.graphs):
            for inner in graph.node:
                names.update(inner.input)
                names.update(_subgraph_inputs(inner))
    return names


def _set_output(node: onnx.NodeProto, position: int, name: str) -> None:
    while len(node.output) <= position:
        node.output.append("")
    node.output[position] = name


def _trim_trailing_empty(names: MutableSequence[str]) -> None:
    while names and not names[-1]:
        del names[-1]


def _replace_nodes(
    graph: onnx.GraphProto, old: list[onnx.NodeProto], new: list[onnx.NodeProto]
) -> None:
    """Put `new` where the first of `old` was (the passes only make nodes whose inputs are
    computed by then) and drop `old`."""
    first = min(_position(graph, node) for node in old)
    nodes = list(graph.node)
    nodes[first:first] = new
    removed = {id(node) for node in old}
    _keep(graph.node, (node for node in nodes if id(node) not in removed))


def _position(graph: onnx.GraphProto, node: onnx.NodeProto) -> int:
    return next(i for i, candidate in enumerate(graph.node) if candidate is node)


def _rename_reads(graph: onnx.GraphProto, old: str, new: str) -> None:
    for node in graph.node:
        for position, name in enumerate(node.input):
            if name == old:
                node.input[position] = new


def _keep(field: Any, items: Iterable[Any]) -> None:
    """Replace a repeated protobuf field's items by `items` (copied before the field is
    cleared)."""
    copies = []
    for item in items:
        copy = type(item)()
        copy.CopyFrom(item)
        copies.append(copy)
    del field[:]
    field.extend(copies)
