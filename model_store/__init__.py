"""The contract between training and serving: bundle format, store, encoding and series rules.

numpy only: importing this package never imports TensorFlow, ONNX Runtime or pandas.
"""

from model_store.encoding import (
    MinMaxEncoding,
    RelativeEncoding,
    WindowEncoding,
    encoding_from_json,
)
from model_store.errors import (
    IntegrityError,
    InvalidNameError,
    InvalidVersionError,
    ManifestError,
    ModelNotFoundError,
    ModelStoreError,
    SeriesError,
    StoreNotFoundError,
    VersionNotFoundError,
)
from model_store.intervals import (
    DEFAULT_LEVEL,
    LEVELS,
    AdaptiveBands,
    Intervals,
    IntervalSpec,
    ScaledIntervals,
    ScaleOutput,
    conformal_quantiles,
    interval_band,
    intervals_from_json,
    score_quantile,
    winkler_score,
)
from model_store.series import PriceSeries, parse_price_csv, validate_closes
from model_store.store import LATEST, MANIFEST, Bundle, ModelStore, parse_version, validate_name
from model_store.windows import prediction_windows, sliding_windows

__all__ = [
    "DEFAULT_LEVEL",
    "LATEST",
    "LEVELS",
    "MANIFEST",
    "AdaptiveBands",
    "Bundle",
    "IntegrityError",
    "IntervalSpec",
    "Intervals",
    "InvalidNameError",
    "InvalidVersionError",
    "ManifestError",
    "MinMaxEncoding",
    "ModelNotFoundError",
    "ModelStore",
    "ModelStoreError",
    "PriceSeries",
    "RelativeEncoding",
    "ScaleOutput",
    "ScaledIntervals",
    "SeriesError",
    "StoreNotFoundError",
    "VersionNotFoundError",
    "WindowEncoding",
    "conformal_quantiles",
    "encoding_from_json",
    "interval_band",
    "intervals_from_json",
    "parse_price_csv",
    "parse_version",
    "prediction_windows",
    "score_quantile",
    "sliding_windows",
    "validate_closes",
    "validate_name",
    "winkler_score",
]
