"""Offline training: CSV -> windows -> LSTM -> evaluation -> model.keras + model.onnx -> publish.

Importing this package sets TensorFlow's log switches (before TensorFlow itself is imported by the
stage modules) so a training run prints progress, not C++ start-up chatter. `setdefault` leaves a
caller's own choice alone.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# oneDNN's fused CPU kernels change float rounding with the thread layout; off, a seeded run
# gives the same weights on any machine (and TensorFlow stops announcing them).
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
# One thread each: the models are small (faster than two threads contending on a shared CPU) and
# the reductions run in one fixed order, so a seed gives bit-identical weights run after run.
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
