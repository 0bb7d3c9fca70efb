"""Domain errors of the model store and the series rules. Messages are short, stable sentences."""


class ModelStoreError(Exception):
    """Base class for everything the model store refuses."""


class InvalidNameError(ModelStoreError):
    """A model name that is not a safe single path component."""


class InvalidVersionError(ModelStoreError):
    """A version that is not a positive integer (or `latest`)."""


class StoreNotFoundError(ModelStoreError):
    """The store folder does not exist."""


class ModelNotFoundError(ModelStoreError):
    """No complete version of the named model exists."""


class VersionNotFoundError(ModelStoreError):
    """The pinned version does not exist."""


class ManifestError(ModelStoreError):
    """manifest.json is missing, unreadable or lacks a required field."""


class IntegrityError(ModelStoreError):
    """A file's sha256 differs from the manifest, a file is missing or unexpected,
    or the manifest's version differs from its folder's name."""


class SeriesError(ValueError):
    """A price series (CSV or list of closes) breaks the series rules.

    `row` is the 1-based line number in the file (the header is line 1), `column` the column name.
    """

    def __init__(self, message: str, *, row: int | None = None, column: str | None = None):
        super().__init__(message)
        self.message = message
        self.row = row
        self.column = column
