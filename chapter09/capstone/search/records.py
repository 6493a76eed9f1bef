"""What a search answers, as frozen records with one JSON form: ``Hit`` (one image found) and ``SearchResult``.

``LibrarySearch.run`` returns a ``SearchResult``; ``search --json`` prints its ``to_json()`` and the web UI reads
the same record. The JSON keeps the keys (and their order) the command line printed when results were dicts.

Adding a field is one line: a plain field is always in the JSON; ``optional()`` leaves it out while it is None
(so older readers see the JSON they knew), ``optional(empty=True)`` while it is empty, ``optional(with_field=NAME)``
while the field ``NAME`` is None (facts that only exist beside another, like a filter's match count).

Both records also read like the dicts they replace (``result["hits"][0]["path"]``, ``"notes" in result``,
``result.get("query")``), over the keys their JSON holds, for the notebooks and tests that read them so.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

_OMIT = "omit"  # field metadata key: when the field is left out of the JSON


def optional(*, empty: bool = False, with_field: str | None = None, default=None):
    """A field left out of ``to_json()`` while it is None (``empty``: while it is empty; ``with_field``: while
    that other field is None)."""
    rule = ("with", with_field) if with_field else ("empty",) if empty else ("none",)
    return field(default=default, metadata={_OMIT: rule})


def _omitted(record, name: str, rule: tuple | None) -> bool:
    if rule is None:
        return False
    value = getattr(record, name)
    if rule[0] == "none":
        return value is None
    if rule[0] == "empty":
        return not value
    return getattr(record, rule[1]) is None


def _json_value(value):
    if isinstance(value, _Record):
        return value.to_json()
    if isinstance(value, (tuple, list)):
        return [_json_value(v) for v in value]
    return value


class _Record:
    """The JSON form and the dict-style reading shared by the records (frozen dataclasses)."""

    def _keys(self) -> list[str]:
        return [f.name for f in fields(self) if not _omitted(self, f.name, f.metadata.get(_OMIT))]

    def to_json(self) -> dict:
        """The record as JSON-ready data: its fields in order, the omitted ones left out, records nested as JSON."""
        return {name: _json_value(getattr(self, name)) for name in self._keys()}

    # ---- read like the dict it replaces (keys: the fields its JSON holds)
    def __getitem__(self, key: str):
        if key not in self._keys():
            raise KeyError(key)
        return getattr(self, key)

    def __contains__(self, key) -> bool:
        return key in self._keys()

    def get(self, key: str, default=None):
        return getattr(self, key) if key in self._keys() else default

    def keys(self) -> list[str]:
        return self._keys()


@dataclass(frozen=True)
class Hit(_Record):
    """One image found: its ``rank`` (1 first), ``path`` relative to the library, ``score`` (cosine, BM25 or RRF, as
    the result's ``query_kind`` says), its stored ``captions`` ({"en": ..., "zh": ...} once ``caption --index``
    ran) and ``indexed``: the file as the index saw it (sha1, size, mtime_ns), which keys its thumbnail."""

    rank: int
    path: str
    score: float
    captions: dict = field(default_factory=dict)
    indexed: dict = field(default_factory=dict)
    place: dict | None = optional()  # {"name", "name_zh", "admin", "country"} named from its EXIF GPS position
    lat: float | None = optional()  # the EXIF GPS position (left out: the photo has none, or the index stores none)
    lon: float | None = optional()
    ocr_text: str | None = optional()  # after `index --ocr`: the text read in the photo (left out: none read)
    ocr_match: tuple[str, ...] | None = optional()  # with --ocr-text: the query's words that text holds
    time_s: float | None = optional()  # a video's frame: its moment in seconds (``path`` is ``video#t=SECONDS``)


@dataclass(frozen=True, kw_only=True)
class SearchResult(_Record):
    """One search's answer: how the query was read, what the filter kept, how the vectors were searched, the hits.

    ``strategy``: the text strategy used ("image" for image terms, "caption text" for caption text alone);
    ``query_kind``: text, image, combined, caption text or hybrid; ``terms``: the terms as JSON (``Term.to_json``).
    ``search``: exact or ann, with the ANN's ``ann_nprobe`` and ``ann_recall_at_10`` (None when exact).
    ``refresh_ms`` and ``refreshed``: set by the web UI, which reopens a changed index before searching."""

    strategy: str
    query_kind: str
    terms: tuple[dict, ...] = ()
    query: str | None = optional()  # one text term alone: the text, and the text the encoder read
    encoded_text: str | None = optional()
    encoded_texts: tuple[str, ...] = optional(empty=True, default=())  # several text terms
    caption_text: str | None = optional()
    ocr_text: str | None = optional()  # --ocr-text: words searched in the text read in the photos
    filters: dict | None = optional()  # Filters.to_json(), when a filter is active
    matching: int | None = optional(with_field="filters")  # rows the filter keeps
    filter_search: str | None = optional(with_field="filters")  # how the filtered top-k was found
    filter_nprobe: int | None = optional(with_field="filters")
    notes: tuple[str, ...] = optional(empty=True, default=())
    search: str
    ann_nprobe: int | None = None
    ann_recall_at_10: float | None = None
    library_size: int
    ms: float
    hits: tuple[Hit, ...] = ()
    refresh_ms: float | None = optional()
    refreshed: bool | None = optional()

    def __post_init__(self):
        for name in ("terms", "encoded_texts", "notes", "hits"):  # frozen: sequences kept as tuples
            object.__setattr__(self, name, tuple(getattr(self, name)))

    @property
    def filter_how(self) -> str:
        """How the filtered search ran, as the command line and the web UI say it ("exact", "ivf, nprobe 8")."""
        return self.filter_search + (f", nprobe {self.filter_nprobe}" if self.filter_nprobe else "")
