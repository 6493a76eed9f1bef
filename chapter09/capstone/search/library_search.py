"""Search over an index: text, example images, both combined, filters, caption text; hits carry the stored captions.

Vectors are unit length, so inner product is cosine similarity. The vector search itself is
``vectors`` (exact below ``vectors.ANN_THRESHOLD`` rows, the cached IVF-SQ8 index that ``index``
built above it), reached through ``store.open_vectors``; when the ANN index answers, the recall@10
it was tuned to is shown with every result. How a text becomes a vector is ``queries``.

One entry point, ``LibrarySearch.search``, serves the command line, the web UI and its API:

* **Terms** (``Term``): texts (through the chosen strategy), image files (encoded by the image tower of
  the role searched) and indexed images (their stored vector: nothing re-encoded), each with a weight
  (negative: subtracted), summed as unit vectors and normalised (``queries.compose``, as rclip does).
* **Filters** (``filters.Filters``): evaluated to a mask over the table's rows, which are the vector
  index's ids (the columns cached per table version), and handed to ``VectorIndex.search_filtered``:
  the top-k among the matching rows, never a post-filter of the unfiltered top-k.
* **Caption text** (``caption_text.caption_ranking``): alone, or fused with the vector ranking by
  reciprocal-rank fusion (``hybrid``); filters apply to it too.
* **Text in photos** (``ocr_text.ocr_ranking``, after ``index --ocr``): the same, over the words read in the
  photos; caption text and photo text together are fused by reciprocal rank too. A hit shows the photo's text
  (``ocr_text``) and which query words it holds (``ocr_match``).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...clip import clip_encoder
from ...errors import UsageError
from ...images import IMAGE_SUFFIXES, as_rgb
from ...models import Settings
from ..caption.text_search import caption_ranking, rrf_fuse
from ..errors import StoreError
from ..index.video import split_key
from ..ocr.text_search import hit_fields, ocr_ranking
from ..precision.library import query_settings
from ..store.database import META_TABLE, Store, open_vectors
from ..store.tables import PLACE_COLUMNS, POSITION_COLUMNS
from ..store.vectors import vectors_of
from .filters import Filters, Metadata, keep_paths
from .queries import ENCODE_LOCK, QueryError, check_query, compose, encode_planned, parse_weighted, plan_query
from .records import Hit, SearchResult

HYBRID_DEPTH = 100  # candidates each ranking hands to the reciprocal-rank fusion
PLACE_FIELDS = (*POSITION_COLUMNS, *PLACE_COLUMNS)  # the stored columns a hit shows as place, lat, lon
HELD_CAPTION_ROWS = 50_000  # captions a live searcher (serve) keeps in memory: ~550 bytes each, 27 MB at most


def place_of(row: dict) -> dict:
    """Pops the position and place columns off ``row``: the hit's ``place`` ({"name", "name_zh", "admin",
    "country"}), ``lat`` and ``lon`` (None where nothing is known: NaN, '' and null alike)."""
    values = {name: row.pop(name, None) for name in PLACE_FIELDS}
    position = (values["lat"], values["lon"])
    known = all(isinstance(v, float) and math.isfinite(v) for v in position)
    names = {"name": values["place"], "name_zh": values["place_zh"], "admin": values["admin"],
             "country": values["country"]}
    names = {key: value for key, value in names.items() if value}
    return {"place": names or None, "lat": position[0] if known else None, "lon": position[1] if known else None}


@dataclass(frozen=True)
class Term:
    """One part of a query. ``kind``: "text" (a query text), "image" (a file path or a PIL image, encoded),
    "indexed" (a path in the library the index holds: its stored vector). ``weight`` < 0 subtracts it."""

    kind: str
    value: object
    weight: float = 1.0

    def to_json(self) -> dict:
        value = self.value if isinstance(self.value, (str, Path)) else "(uploaded image)"
        return {"kind": self.kind, "value": str(value), "weight": self.weight}


@dataclass(frozen=True)
class SearchRequest:
    """One search, as the command line (``search``) and the web UI (every search endpoint) ask for it: the
    ``terms`` (summed), ``k`` results, the Chinese-query ``strategy``, the ``filters`` (``filters.Filters``), and
    the captions' words (``caption_text``, alone or fused with the terms when ``hybrid``). Both hand it to
    ``LibrarySearch.run``."""

    terms: tuple[Term, ...] = ()
    k: int = 10
    strategy: str = "auto"
    filters: Filters | None = None
    caption_text: str | None = None
    hybrid: bool = False
    ocr_text: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "terms", tuple(self.terms))
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise UsageError(f"--k must be a whole number, 1 or more, not {self.k!r}")


class LibrarySearch:
    """Search an index by text (any strategy), example images, both combined, with filters and caption text."""

    def __init__(self, index_dir, settings: Settings | None = None, mode: str = "auto", live: bool = False):
        """``live``: the caller calls ``refresh`` before each search (``serve``), so the store keeps its table
        handles between searches (``Store.keep_handles``) and ``refresh`` brings them up to date."""
        self.location, self.mode, self.live = index_dir, mode, live
        self.settings = settings or Settings()
        self._held_captions, self._held_version = None, None  # ``_hold_captions``
        self._open()
        self.query_settings = query_settings(self.store, self.settings)  # the images' precision (bf16: fp32)

    def _open(self) -> None:
        store = Store.open(self.location)
        if not store.roles:
            raise FileNotFoundError(f"index {self.location} holds no images yet; run `index` first")
        if self.live:
            store.keep_handles()
        self._stamp = store.versions_stamp()  # before the reads: a commit during them changes the next stamp
        self._columns: dict[str, set[str]] = {}  # role -> its table's columns at the version its searcher holds
        self.store = store
        self._hold_captions()
        self.searchers = {role: open_vectors(store, role, self.mode) for role in store.roles}
        self.fingerprints = {role: store.images(role).fingerprint() for role in store.roles}
        self._meta_table = store.db.open_table(META_TABLE)
        self._metadata: dict[str, tuple[str, Metadata]] = {}

    def refresh(self) -> bool:
        """Reopen the vector searchers whose table changed (rows added, changed or removed by `index` or
        `index --watch`; a new model's table); True if anything changed. ``serve`` calls it before each
        search, so new photos are found without a restart. A local index whose tables' versions are as the last
        refresh found them (``Store.versions_stamp``: folder listings, no LanceDB call) is not asked again."""
        if not self.stale():
            return False
        self._stamp = self.store.versions_stamp()  # before the reads, as in ``_open``
        self.store.checkout_latest()  # the kept handles (captions, text in photos)
        self._hold_captions()
        meta_version = self._meta_table.version
        self._meta_table.checkout_latest()
        if self._meta_table.version != meta_version:  # which table serves a role may have changed
            self._open()
            return True
        changed = False
        for role in self.store.roles:
            table = self.store.images(role)
            table.table.checkout_latest()
            fingerprint = table.fingerprint()
            if fingerprint != self.fingerprints[role]:
                self.searchers[role] = open_vectors(self.store, role, self.mode)
                self.fingerprints[role] = fingerprint
                self._metadata.pop(role, None)
                self._columns.pop(role, None)
                changed = True
        return changed

    def _hold_captions(self) -> None:
        """A live searcher keeps every stored caption in memory (path -> {"en", "zh"}) up to ``HELD_CAPTION_ROWS``
        rows, read again only when the captions table's version changed: a lookup per search (a LanceDB query,
        3-7 ms of CPU on 10,000 captions, measured) costs more than the rest of the search. Otherwise (any other
        searcher, or more captions than that) ``_held_captions`` is None: looked up per search."""
        table = self.store.captions_table() if self.live else None
        version = None if table is None else table.version
        if version is not None and version == self._held_version:
            return
        rows = table.count_rows() if table is not None else 0
        self._held_version = version
        self._held_captions = None if not self.live or rows > HELD_CAPTION_ROWS else \
            (self.store.captions() if rows else {})

    def _captions(self, paths: list[str]) -> dict[str, dict]:
        held = self._held_captions
        if held is None:
            return self.store.captions(paths) if paths else {}
        return {path: dict(held[path]) for path in paths if path in held}

    def stale(self) -> bool:
        """Whether the index may have changed since the last refresh (always, where the stamp cannot be read)."""
        stamp = self.store.versions_stamp()
        return stamp is None or stamp != self._stamp

    # ---- what a term is
    def term(self, raw: str, sign: float = 1.0) -> Term:
        """A command-line term: ``[WEIGHT:]TEXT``, ``[WEIGHT:]IMAGE_FILE`` or ``[WEIGHT:]INDEXED_PATH`` (a path
        relative to the library that the index holds: its stored vector). ``sign`` -1 subtracts it."""
        weight, value = parse_weighted(raw)
        if not value:
            raise QueryError(f"the term {raw!r} is empty: give a text or an image after the weight")
        return Term(*self._resolve(value), sign * weight)

    def _resolve(self, value: str) -> tuple[str, object]:
        path = Path(value).expanduser()
        if path.is_file():
            try:  # a library file the index holds: its stored vector, no re-encode
                relative = path.resolve().relative_to(Path(self.store.library).resolve()).as_posix()
                if self._id_of("clip" if "clip" in self.searchers else self.store.roles[0], relative) is not None:
                    return "indexed", relative
            except ValueError:
                pass
            return "image", str(path)
        relative = value.replace("\\", "/")
        relative = relative[2:] if relative.startswith("./") else relative
        if any(self._id_of(role, relative) is not None for role in self.searchers):
            return "indexed", relative
        if path.suffix.lower() in IMAGE_SUFFIXES:
            raise QueryError(f"{value}: no such file here, and the index holds no image at that path in the "
                             f"library {self.store.library}; give an existing image file or an indexed path "
                             "(as `search` prints them, relative to the library)")
        return "text", value

    def holds(self, relative: str) -> bool:
        """True if the index holds an image at ``relative`` (a path in the library): what the web API takes as an
        indexed term, never reading a file of this machine."""
        return any(self._id_of(role, relative) is not None for role in self.searchers)

    def _id_of(self, role: str, relative: str) -> int | None:
        import pyarrow.compute as pc

        searcher = self.searchers.get(role)
        if searcher is None or not len(searcher):
            return None
        found = pc.index(searcher.paths, relative).as_py() if hasattr(searcher.paths, "type") else \
            (searcher.paths.index(relative) if relative in searcher.paths else -1)
        return found if found >= 0 else None

    def _stored_vector(self, role: str, relative: str) -> np.ndarray:
        i = self._id_of(role, relative)
        if i is None:
            raise QueryError(f"the index holds no {role} vector for {relative}; index it, or give the image file")
        row = self.store.images(role).table.take_offsets([i]).select(["path", "vector"]).to_arrow()
        if row.num_rows != 1 or row.column("path")[0].as_py() != relative:
            raise QueryError("the index changed while it was read; search again")
        return vectors_of(row.column("vector"))[0].astype(np.float32)

    # ---- filters
    def metadata(self, role: str) -> Metadata:
        """The filterable columns of ``role``'s table at the version its searcher holds (cached per version)."""
        cached = self._metadata.get(role)
        if cached is not None and cached[0] == self.fingerprints[role]:
            return cached[1]
        metadata = Metadata.read(self.store.images(role))
        paths = self.searchers[role].paths
        if len(metadata) != len(self.searchers[role]) or (hasattr(paths, "type") and
                                                         not metadata.column("path").equals(paths)):
            raise StoreError("the index changed while its search was opened (its rows differ from the vector "
                             "index's); search again")
        self._metadata[role] = (self.fingerprints[role], metadata)
        return metadata

    def _fetch(self, role: str):
        """ids -> their stored float16 vectors (for exact search over a few matching rows of an ANN index)."""
        table = self.store.images(role).table

        def fetch(ids):
            return vectors_of(table.take_offsets([int(i) for i in ids]).select(["vector"]).to_arrow()
                              .column("vector"))  # ids are sorted: LanceDB answers in that order
        return fetch

    # ---- the searches
    def search(self, terms: list[Term], k: int = 10, strategy: str = "auto", filters: Filters | None = None,
               caption_text: str | None = None, hybrid: bool = False, warn=None,
               ocr_text: str | None = None) -> SearchResult:
        """The top ``k`` for ``terms`` (summed in the encoder's space) among the rows ``filters`` keep, or for
        ``caption_text`` and/or ``ocr_text`` (words in the photos) alone, or all fused by reciprocal rank (``hybrid``)."""
        filters = filters or Filters()
        terms = [t for t in terms if t.weight != 0]
        texts = [t for t in terms if t.kind == "text"]
        caption_text, ocr_text = _checked_words(terms, texts, caption_text, ocr_text, hybrid, warn)
        words = caption_text is not None or ocr_text is not None
        plans = [plan_query(t.value, strategy, self.query_settings, warn) for t in texts]  # models load first
        roles = {plan.strategy.role for plan in plans}
        if len(roles) > 1:
            raise QueryError(f"the text terms need different image vectors ({', '.join(sorted(roles))}); "
                             "pick one --strategy for all of them")
        role = roles.pop() if roles else ("clip" if "clip" in self.searchers else self.store.roles[0])
        if role not in self.searchers:
            raise QueryError(f"strategy {plans[0].strategy.name!r} needs {role} image vectors, which this index "
                             "lacks: re-run `index` with --chinese-clip")
        encoder = clip_encoder(role, self.query_settings) if any(t.kind == "image" for t in terms) else None
        started = time.perf_counter()
        vectors, used, encoded = [], [], []
        plan_of = dict(zip(map(id, texts), plans))
        for t in terms:
            if t.kind == "text":
                vector, name, _, text = encode_planned(plan_of[id(t)], warn)
                used.append(name)
                encoded.append(text)
            elif t.kind == "image":
                with ENCODE_LOCK:
                    vector = encoder.encode_images([as_rgb(t.value)])[0]
            elif t.kind == "indexed":
                vector = self._stored_vector(role, str(t.value))
            else:
                raise QueryError(f"unknown term kind {t.kind!r}: text, image or indexed")
            vectors.append(vector)
        query = compose(vectors, [t.weight for t in terms]) if terms else None
        searcher = self.searchers[role]
        notes, facts, mask, metadata = [], None, None, None
        if filters.active or words:
            metadata = self.metadata(role)
        if filters.active:
            mask = metadata.mask(filters)
            notes += metadata.notes(filters)
        fusing = hybrid or (caption_text is not None and ocr_text is not None)
        depth = max(k, HYBRID_DEPTH) if fusing else k
        ranked: list[tuple[int, float]] = []
        if query is not None:
            if mask is None:
                scores, ids = searcher.search(query, depth)
            else:
                scores, ids, facts = searcher.search_filtered(query, depth, mask, fetch=self._fetch(role))
            ranked = [(int(i), float(s)) for s, i in zip(scores[0], ids[0]) if i >= 0]
        if words:
            ranked = self._word_ranked(ranked if query is not None else None, caption_text, ocr_text, depth, k,
                                       metadata, mask, searcher)
        hits = self._hits(role, ranked[:k], ocr_text)
        word_kind = " + ".join(name for name, given in (("caption text", caption_text), ("ocr text", ocr_text))
                               if given is not None)
        kind = ("hybrid" if hybrid else word_kind) if words else \
            ("text" if len(terms) == 1 and texts else "image" if len(terms) == 1 else "combined")
        extra = {"strategy": (used[0] if used else "image") if kind in ("text", "image", "combined", "hybrid")
                 else word_kind, "query_kind": kind, "terms": [t.to_json() for t in terms]}
        if len(texts) == 1 and len(terms) == 1:
            extra.update(query=texts[0].value, encoded_text=encoded[0])
        elif encoded:
            extra["encoded_texts"] = encoded
        if caption_text is not None:
            extra["caption_text"] = caption_text
        if ocr_text is not None:
            extra["ocr_text"] = ocr_text
        if filters.active:
            extra.update(filters=filters.to_json(), matching=int(mask.sum()),
                         filter_search=facts["how"] if facts else "captions",
                         filter_nprobe=facts["nprobe"] if facts else None)
        if notes:
            extra["notes"] = notes
        return self._result(hits, started, role, **extra)

    def _word_ranked(self, vector_ranked, caption_text, ocr_text, depth: int, k: int, metadata: Metadata, mask,
                     searcher) -> list[tuple[int, float]]:
        """(row id, score) best first by the words asked for: one ranking's BM25 scores, or the RRF of the vector
        ranking (when given: hybrid) and each word ranking."""
        ids = metadata.ids()
        rankings = [self._caption_ranking(text, depth, metadata, mask, rank)
                    for text, rank in ((caption_text, caption_ranking), (ocr_text, ocr_ranking)) if text is not None]
        if vector_ranked is None and len(rankings) == 1:
            return [(ids[p], s) for p, s in rankings[0][:k]]
        paths = ([[searcher.path(i) for i, _ in vector_ranked]] if vector_ranked is not None else []) + \
            [[p for p, _ in ranking] for ranking in rankings]
        return [(ids[p], s) for p, s in rrf_fuse(paths)[:k]]

    def _caption_ranking(self, text: str, want: int, metadata: Metadata, mask,
                         rank=caption_ranking) -> list[tuple[str, float]]:
        """Caption hits (or ``rank``'s: ``ocr_ranking``) among the indexed rows the filter keeps; the search is asked
        for more until ``want`` remain or it has no more (so a filter never leaves fewer than it could)."""
        limit = max(2 * want, 50)
        while True:
            found = rank(self.store, text, limit)
            score = dict(found)
            kept = keep_paths(metadata, mask, [p for p, _ in found])
            if len(kept) >= want or len(found) < limit or limit >= len(metadata):
                return [(p, score[p]) for p in kept]
            limit *= 4

    def _hits(self, role: str, ranked: list[tuple[int, float]], ocr_text: str | None = None) -> list[Hit]:
        searcher = self.searchers[role]
        paths = [searcher.path(i) for i, _ in ranked]
        captions = self._captions(paths)
        table = self.store.images(role)
        if role not in self._columns:  # read once per table version: each schema read is a LanceDB round trip
            self._columns[role] = set(table.table.schema.names)
        located = all(name in self._columns[role] for name in PLACE_FIELDS)  # an old index: no positions
        # a vector index's ids are offsets into the table version it was opened at, which this store reads
        rows = table.rows_at([i for i, _ in ranked], ("path", "sha1", "size", "mtime_ns", *(PLACE_FIELDS * located)),
                             rows=len(searcher))
        read = hit_fields(self.store, paths, ocr_text)  # the text in the photos, after `index --ocr`
        hits = []
        for rank, ((_, score), path, row) in enumerate(zip(ranked, paths, rows)):
            row = dict(row or {})
            where = place_of(row)
            if row.pop("path", None) != path:  # the row read is not the hit's: no file state, no place
                row, where = {}, {}
            hits.append(Hit(rank + 1, path, score, captions.get(path, {}), row, **where, **read.get(path, {}),
                            time_s=split_key(path)[1]))
        return hits

    def run(self, request: SearchRequest, warn=None) -> SearchResult:
        """The search ``request`` asks for; ``warn`` gets what the caller should show."""
        return self.search(list(request.terms), request.k, request.strategy, request.filters,
                           caption_text=request.caption_text, hybrid=request.hybrid, warn=warn,
                           ocr_text=request.ocr_text)

    def by_text(self, text: str, k: int = 10, strategy: str = "auto", warn=None,
                filters: Filters | None = None) -> SearchResult:
        return self.search([Term("text", text)], k, strategy, filters, warn=warn)

    def by_image(self, image, k: int = 10, filters: Filters | None = None) -> SearchResult:
        return self.search([Term("image", image)], k, filters=filters)

    def _result(self, hits, started, role, **extra) -> SearchResult:
        searcher = self.searchers[role]
        return SearchResult(**extra, search=searcher.mode, ann_nprobe=searcher.nprobe,
                            ann_recall_at_10=searcher.recall_at_10, library_size=len(searcher),
                            ms=round(1000 * (time.perf_counter() - started), 1), hits=hits)


def _checked_words(terms: list[Term], texts: list[Term], caption_text, ocr_text, hybrid: bool, warn) -> tuple:
    """``search``'s word queries checked against its terms: (caption text, OCR text), blank ones None, ``hybrid``'s
    caption text taken from the first positive text term when none is given; a query that asks for nothing, or
    for vectors and words without ``hybrid``, is refused."""
    if caption_text is not None and not str(caption_text).strip():
        caption_text = None
    if ocr_text is not None:
        ocr_text = check_query(ocr_text, warn) if str(ocr_text).strip() else None
    if hybrid and not terms:
        raise QueryError("hybrid fuses a vector query with caption text: give a text or image query too")
    if hybrid and caption_text is None and ocr_text is None:
        positive = [t for t in texts if t.weight > 0]
        if not positive:
            raise QueryError("hybrid needs caption text: give --caption-text, or a text query to read as it")
        caption_text = positive[0].value
    if caption_text is not None:
        caption_text = check_query(caption_text, warn)
    words = caption_text is not None or ocr_text is not None
    if not terms and not words:
        raise QueryError("nothing to search for: give a text, an image, terms to add, or caption text")
    if terms and words and not hybrid:
        raise QueryError(f"a vector query and {'caption' if caption_text is not None else 'photo (OCR)'} text "
                         "together: ask for --hybrid (the web UI: tick hybrid) to fuse them, or give only one")
    return caption_text, ocr_text
