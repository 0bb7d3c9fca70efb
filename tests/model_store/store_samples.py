"""A minimal manifest for store tests: the store checks fields and hashes, not the model."""

from model_store import BundleSpec

MANIFEST = BundleSpec.from_json(
    {
        "window": 3,
        "feature": "Close",
        "scaler": {
            "kind": "minmax",
            "data_min": 1.0,
            "data_max": 3.0,
            "scale": 0.5,
            "min": -0.5,
            "feature_range": [0.0, 1.0],
        },
        "context": {"dates": ["2020-01-01", "2020-01-02", "2020-01-03"], "closes": [1.0, 2.0, 3.0]},
    }
)
