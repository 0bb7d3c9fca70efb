"""Errors a training run reports as one line (the CLI maps them to exit codes, no traceback)."""


class TrainingError(Exception):
    """Base class for refusals of the training pipeline."""


class InputError(TrainingError):
    """Bad input: a missing or malformed CSV, too few rows, overlapping dates, a bad option."""


class ParityError(TrainingError):
    """The exported ONNX model does not reproduce the Keras model within tolerance."""
