"""The contract between training and serving: bundle format, store, encoding and series rules.

numpy only: importing this package never imports TensorFlow, ONNX Runtime or pandas.
"""

from model_store.encoding import ENCODINGS, WindowEncoding, encoding_from_json, encoding_kind
from model_store.encodings.minmax import MinMaxEncoding
from model_store.encodings.relative import RelativeEncoding
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
    ScalePooling,
    conformal_quantiles,
    interval_band,
    interval_band_one,
    intervals_from_json,
    score_quantile,
    winkler_score,
)
from model_store.keras_archive import UnsafeModelError, check_bundle_keras, check_keras_archive
from model_store.manifest import (
    CHART_FILE,
    FORMAT_VERSION,
    KERAS_FILE,
    MANIFEST_FILE,
    ONNX_FILE,
    BundleSpec,
    Context,
    Manifest,
)
from model_store.series import PriceSeries, parse_price_csv
from model_store.store import LATEST, Bundle, ModelStore, parse_version, validate_name
from model_store.windows import prediction_windows, sliding_windows

__all__ = [
    "CHART_FILE",
    "DEFAULT_LEVEL",
    "ENCODINGS",
    "FORMAT_VERSION",
    "KERAS_FILE",
    "LATEST",
    "LEVELS",
    "MANIFEST_FILE",
    "ONNX_FILE",
    "AdaptiveBands",
    "Bundle",
    "BundleSpec",
    "Context",
    "IntegrityError",
    "IntervalSpec",
    "Intervals",
    "InvalidNameError",
    "InvalidVersionError",
    "Manifest",
    "ManifestError",
    "MinMaxEncoding",
    "ModelNotFoundError",
    "ModelStore",
    "ModelStoreError",
    "PriceSeries",
    "RelativeEncoding",
    "ScaleOutput",
    "ScalePooling",
    "ScaledIntervals",
    "SeriesError",
    "StoreNotFoundError",
    "UnsafeModelError",
    "VersionNotFoundError",
    "WindowEncoding",
    "check_bundle_keras",
    "check_keras_archive",
    "conformal_quantiles",
    "encoding_from_json",
    "encoding_kind",
    "interval_band",
    "interval_band_one",
    "intervals_from_json",
    "parse_price_csv",
    "parse_version",
    "prediction_windows",
    "score_quantile",
    "sliding_windows",
    "validate_name",
    "winkler_score",
]
