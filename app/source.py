"""The source: which models to serve and which version of each the version policy wants."""

from __future__ import annotations

from model_store import LATEST, ModelStore


class StoreSource:
    """Lists the store: the served names (MODELS plus the default) and each one's wanted version.

    `*` serves every model folder holding a complete version, so a new folder is found by the
    next look at the store, like a new version.
    """

    def __init__(self, store: ModelStore, names: list[str], default: str):
        self.store = store
        self.serve_all = names == ["*"]
        self.default = default
        self._listed = [] if self.serve_all else names

    def names(self) -> list[str]:
        """The models to serve now, the default first (raises when the store is unreadable)."""
        found = self.store.names() if self.serve_all else self._listed
        return [self.default, *(name for name in found if name != self.default)]

    def configured_names(self) -> list[str]:
        """The models known without looking at the store (for start-up, before the first look)."""
        return [self.default, *(name for name in self._listed if name != self.default)]

    def wanted(self, name: str, pinned: int | None) -> int:
        """The version the policy wants: the pinned one, else the latest complete one."""
        return self.store.resolve(name, pinned or LATEST)
