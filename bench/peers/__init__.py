"""The servers `make bench` compares ours with, each serving the same bundle's `model.onnx` with
the same encoding, intervals and ONNX Runtime options (bench/peers/model.py).

Nothing here imports `app`: a peer is what someone would write without our service. KServe's
module runs in its own venv, so this package imports only numpy, ONNX Runtime and model_store.
"""
