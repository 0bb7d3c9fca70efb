"""One module per window encoding; `model_store.encoding` registers them by `kind`."""
