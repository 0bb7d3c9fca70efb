"""The loader: one version of one model from the store to a warmed-up Predictor, or an error."""

from __future__ import annotations

from app.predictor import Predictor, make_runtime
from model_store import ModelStore, check_bundle_keras


class BundleLoader:
    """Verifies a bundle's files, refuses unsafe Keras archives, builds the runtime, warms it up."""

    def __init__(self, store: ModelStore, backend: str):
        self.store = store
        self.backend = backend

    def load(self, name: str, version: int) -> Predictor:
        """A ready Predictor for `name` v`version`; raises whatever refused it."""
        bundle = self.store.verify(name, version)
        check_bundle_keras(bundle)  # no Lambda or foreign classes, whichever backend serves
        predictor = Predictor(bundle, make_runtime(self.backend, bundle))
        predictor.warm_up()
        return predictor
