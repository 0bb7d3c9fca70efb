# syntax=docker/dockerfile:1
# Two images from one file (docs/deployment.md):
#   docker build --target serve -t stock-lstm-service:serve .   FastAPI + ONNX Runtime, no TensorFlow
#   docker build --target train -t stock-lstm-service:train .   TensorFlow, `python -m training`
# tests/deploy/test_serve_image.py and test_compose.py build and run both images with podman;
# test_serve_venv.py also replays the serve stage outside any engine from the RUN lines, ENV, CMD and
# HEALTHCHECK below, so keep them in step with that test.

# python:3.11-slim-bookworm (Python 3.11.16), pinned by its multi-arch index digest. Refresh both
# together with `docker buildx imagetools inspect python:3.11-slim-bookworm`. Hosts with no registry
# build on a local Debian stand-in instead: `make base-image`, then
# `--build-arg BASE_IMAGE=stock-lstm-base:bookworm` (docs/deployment.md, "Offline builds").
ARG BASE_IMAGE=python:3.11-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b
FROM ${BASE_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv

# Wheels of our own code, built apart so that source trees and build leftovers never reach an image.
# The serve wheel holds only app + model_store (setuptools packs whichever packages are present).
FROM base AS serve-wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY model_store model_store
COPY app app
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM base AS train-wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY model_store model_store
COPY app app
COPY training training
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM base AS serve
LABEL org.opencontainers.image.title="stock-lstm-service" \
      org.opencontainers.image.description="LSTM next-close predictions over HTTP (FastAPI + ONNX Runtime)"
# Pinned dependencies first, from the lock file alone, so code changes never invalidate this layer.
# Wheels only: the image has no compiler and needs none.
COPY requirements/serve.txt /tmp/requirements.txt
RUN pip install --no-cache-dir --only-binary=:all: -r /tmp/requirements.txt
# Our code without dependencies (all pinned above); a bind mount keeps the wheel file out of the layers.
RUN --mount=type=bind,from=serve-wheel,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-deps /wheels/*.whl
# The demo store. Compose mounts a named volume here, which Docker seeds from this folder on first use;
# owned by the app user so the train image (same UID) can publish new versions into that volume.
COPY --chown=10001:10001 models /models
ENV MODEL_STORE_DIR=/models \
    MODEL_NAME=fb-lstm \
    MODEL_VERSION=latest \
    PREDICTOR_BACKEND=onnx
# An empty working directory: uvicorn puts it on sys.path, so nothing there may shadow the packages.
WORKDIR /srv
USER 10001:10001
EXPOSE 8000
# Ready means a verified bundle is loaded (urlopen raises on any non-2xx); the image has no curl.
# No blank inside the code: podman 4.3's Docker API re-splits compose's copy of it on blanks.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "__import__('urllib.request').request.urlopen('http://127.0.0.1:8000/readyz',timeout=2)"]
# The bounded protocol adds the request-head deadline, head size cap and connection cap (docs/limits.md).
CMD ["uvicorn", "app.main:app", "--http", "app.http_protocol:BoundedHttpToolsProtocol", "--host", "0.0.0.0", "--port", "8000"]

FROM base AS train
LABEL org.opencontainers.image.title="stock-lstm-service-train" \
      org.opencontainers.image.description="Trains the LSTM and publishes versioned bundles (TensorFlow)"
COPY requirements/train.txt /tmp/requirements.txt
RUN pip install --no-cache-dir --only-binary=:all: -r /tmp/requirements.txt
RUN --mount=type=bind,from=train-wheel,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-deps /wheels/*.whl
# Same store folder and owner as the serve image, whichever of the two first mounts the volume.
COPY --chown=10001:10001 models /models
# The app user has no home; TensorFlow, Keras and Matplotlib write their caches under HOME.
ENV HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib
WORKDIR /srv
USER 10001:10001
ENTRYPOINT ["python", "-m", "training"]
CMD ["--help"]
