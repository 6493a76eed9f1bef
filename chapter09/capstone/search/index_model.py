"""Which CLIP-family checkpoint reads an index's queries: the one its ``clip`` vectors were made with.

An index built with ``--clip-model X`` records X's location in its table identity (``chosen``); ``search``
and ``serve`` without ``--clip-model`` then read queries with X, and with ``--clip-model Y`` where Y is
another checkpoint they refuse, naming both: vectors of two models share no space, so a query of one against
images of the other would rank at random without any error.
"""
from __future__ import annotations

from pathlib import Path

from ...models import Settings, resolve
from ..errors import StoreError


class IndexModelMismatchError(StoreError):
    """The query encoder asked for is not the one the index's image vectors came from."""


def index_clip_settings(store, settings: Settings) -> Settings:
    """``settings`` whose role ``clip`` is the checkpoint ``store``'s clip vectors were made with."""
    if "clip" not in store.roles:
        return settings
    recorded = store.identity("clip")
    if settings.clip_model is None:
        if not recorded.chosen:
            return settings  # built with the default model: resolved as before
        if settings.mode == "toy":
            raise IndexModelMismatchError(
                f"index {store.location} was built with --clip-model {recorded.location}; --models toy cannot read "
                "its vectors: search it with --models auto (or real)")
        if Path(recorded.location).is_absolute() and not Path(recorded.location).is_dir():
            raise IndexModelMismatchError(
                f"index {store.location} was built with --clip-model {recorded.location}, which is no longer there: "
                "put the checkpoint back, or re-run `index` with another --clip-model (a table of its own)")
        return settings.with_(clip_model=recorded.location)
    asked = resolve("clip", settings).location
    if asked != recorded.location:
        raise IndexModelMismatchError(
            f"index {store.location} holds clip vectors of {recorded.location}, but --clip-model asks for {asked}: "
            "the two models' vectors share no space. Drop --clip-model to search with the index's model, or "
            f"re-run `index --clip-model {settings.clip_model}` to add that model's vectors")
    return settings
