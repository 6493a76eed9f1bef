"""A cold text search from the command line without torch (issue 34): the index's quick snapshot.

A plain ``search --text TEXT`` pays, cold, for importing torch, transformers and LanceDB, for opening the index
and for loading the whole CLIP model, to run one text through one tower. The first full search of an index
(``quick_export.write_snapshot``) leaves in ``INDEX/quick/`` what such a query needs, and the next cold one reads
only that, importing numpy, ONNX Runtime, ``tokenizers`` and the standard library:

* ``text.onnx``: the text tower the full search runs (ONNX Runtime fp32 or int8, as the index's precision;
  torch fp32 exported to ONNX), saved already optimised so a session opens fast, its weights in ``text.data``
  beside it (memory-mapped when the session opens, and used as they lie: no pre-packing copy);
* ``tokenizer.json``: the fast tokenizer with the model's padding, and ``meta.json`` its length and text cleaner;
* ``vectors.npy``: the image vectors as stored (float16), memory-mapped; ``rows.jsonl``: each row's hit as
  ``search --json`` prints it (rank and score aside), read by byte offset (``offsets.npy``) for the k hits only;
* ``meta.json``: the stamp that makes a snapshot stale (``index_stamp``: every table's versions and every other
  file of the index; the checkpoint folder's files; the ``CH09_``/``HF_`` environment; the model flags), and
  what the full search prints around the hits (the route line, the model's banner).

A Chinese query (``--strategy`` auto or translate) is answered too once a full search has translated one: the
snapshot's ``translator`` entry names opus-mt zh->en saved for ONNX Runtime in the user's cache
(``quick_translator``; checked against the torch translator before it is used), read as Traditional-to-Simplified
first, as the full search does.

A snapshot is used only when all of that still holds and the query is one it can answer exactly as the full
search would: one text (no weight), English with ``--strategy`` auto or clip, Chinese with auto or translate,
``--k``, ``--json``, ``--lang``, exact search (an index below ``vectors.ANN_THRESHOLD`` rows, or
``--search exact``). Anything else, and any snapshot that is missing, stale or
unreadable, takes the full search, silently. ``CH09_QUICK_SEARCH=0`` turns both the reading and the writing off.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...chinese import to_simplified
from ...language import has_chinese
from ...text_clean import CLEANERS
from .quick_translator import QuickTranslator
from .records import Hit, SearchResult

ENV_QUICK = "CH09_QUICK_SEARCH"
FOLDER = "quick"  # INDEX/quick/: current.json names the live snapshot folder beside it
POINTER = "current.json"
TEXT_WEIGHTS = "text.data"  # the text tower's weights, external to text.onnx so ONNX Runtime maps them
FORMAT = 1
MAX_QUERY_CHARS = 1000  # as queries.MAX_QUERY_CHARS: a longer query is cut with a warning by the full search
STRATEGIES = ("auto", "clip")  # the --strategy values whose English queries read CLIP's own text tower
CHINESE_STRATEGIES = ("auto", "translate")  # the --strategy values whose Chinese queries are translated first
MODEL_FLAGS = ("models", "device", "dtype", "precision", "clip_model")  # search flags that pick the query model
_ENV_PREFIXES = ("CH09_", "HF_", "TRANSFORMERS_")
_ENV_IGNORED = (ENV_QUICK, "CH09_LANG")  # the language changes the words printed, which the snapshot holds in both


def enabled() -> bool:
    return os.environ.get(ENV_QUICK, "1").strip().lower() not in ("0", "false", "no", "off")


def files_stamp(folder: Path) -> list:
    return sorted([str(path.relative_to(folder)), path.stat().st_size, path.stat().st_mtime_ns]
                  for path in folder.rglob("*") if path.is_file())


def index_stamp(index_dir) -> dict:
    """What changes whenever the index does: each LanceDB table's version manifests (every write adds one), and
    the size and mtime of every other file (the precision sidecar, ANN caches); the snapshot and dot files aside."""
    stamp = {}
    for entry in sorted(os.scandir(index_dir), key=lambda e: e.name):
        if entry.name == FOLDER or entry.name.startswith("."):
            continue
        versions = Path(entry.path) / "_versions"
        if versions.is_dir():
            stamp[entry.name] = sorted(name for name in os.listdir(versions) if name.endswith(".manifest"))
        elif entry.is_dir():
            stamp[entry.name] = files_stamp(Path(entry.path))
        else:
            stamp[entry.name] = [entry.stat().st_size, entry.stat().st_mtime_ns]
    return stamp


def environment_stamp() -> dict:
    """The environment variables that may change which model reads a query (or where it is found)."""
    return {key: value for key, value in sorted(os.environ.items())
            if key.startswith(_ENV_PREFIXES) and key not in _ENV_IGNORED}


def checkpoint_stamp(location: str) -> list:
    """The checkpoint folder's files (re-saved weights make the snapshot stale); a hub id stands for itself."""
    folder = Path(location)
    return files_stamp(folder) if folder.is_dir() else [location]


class Declined(Exception):
    """A query the snapshot turned out not to answer exactly as the full search would: the full search answers."""


@dataclass(frozen=True)
class QuickAnswer:
    """A search answered from the snapshot: the record ``search`` prints, the warnings the full search would
    give, the route line it would print, and the model banner it would print first (None: none)."""

    result: SearchResult
    warnings: tuple[str, ...]
    route: str
    announcement: str | None


class Snapshot:
    """One index's quick snapshot, checked fresh when opened (``open_snapshot``)."""

    def __init__(self, folder: Path, meta: dict):
        self.folder, self.meta = folder, meta
        self._loaded = None  # (tokenizer, text tower session), made by ``load``

    def absolute(self, relative: str) -> Path:
        return Path(self.meta["library"]) / relative  # as store.Store.absolute

    def answers(self, text: str, strategy: str, search: str) -> bool:
        """True if the full search would read ``text`` as this snapshot does: one English text through CLIP's own
        tower, or one Chinese text translated first (when the snapshot has a fresh translator), searched exactly."""
        text = (text or "").strip()
        exact = search == "exact" or (search == "auto" and self.meta["auto_search"] == "exact")
        weighted = ":" in text  # "2:a dog" is a weight for queries.parse_weighted: the full search reads it
        if not text or len(text) > MAX_QUERY_CHARS or weighted or not exact:
            return False
        if not has_chinese(text):
            return strategy in STRATEGIES
        reader = self.translator() if strategy in CHINESE_STRATEGIES else None
        return reader is not None and reader.reads(to_simplified(text))

    def translator(self) -> QuickTranslator | None:
        """The snapshot's Chinese reader if its files and the translator's checkpoint are as when it was checked."""
        entry = self.meta.get("translator")
        if not entry:
            return None
        fresh = (json.loads(json.dumps(files_stamp(Path(entry["folder"])))) == entry["files"]
                 and json.loads(json.dumps(checkpoint_stamp(entry["location"]))) == entry["checkpoint"])
        return QuickTranslator(Path(entry["folder"])) if fresh else None

    def _reading(self, tokenizer, reading: bool):
        """``tokenizer`` as ``ClipEncoder.tokenize`` reads a query (truncated, padded where the family pads to its
        context), or (``reading`` False) as queries' truncation warning counts the raw text: neither."""
        tokenizer.no_truncation()
        tokenizer.no_padding()
        if reading:
            tokenizer.enable_truncation(self.meta["max_tokens"])
            if self.meta["pad_to"] is not None:  # SigLIP: padding="max_length"
                tokenizer.enable_padding(length=self.meta["pad_to"], pad_id=self.meta["pad_id"],
                                         pad_token=self.meta["pad_token"])
        return tokenizer

    def _session(self):
        import onnxruntime  # heavy: onnxruntime

        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL  # saved optimised
        options.log_severity_level = 3
        # pre-packing copies every weight matrix into a kernel layout: it costs a cold process more than its one query gains
        options.add_session_config_entry("session.disable_prepacking", "1")
        return onnxruntime.InferenceSession(str(self.folder / "text.onnx"), options, providers=["CPUExecutionProvider"])

    def load(self) -> "Snapshot":
        """Opens the tokenizer and the text tower (the full search, too, loads its models before its clock starts)."""
        from tokenizers import Tokenizer  # only once a snapshot answers: --help and a declined search skip it

        self._loaded = (Tokenizer.from_file(str(self.folder / "tokenizer.json")), self._session())
        return self

    def _tokens(self, text: str) -> tuple[np.ndarray, np.ndarray, int]:
        """(input ids, attention mask, tokens in the raw text before truncation)."""
        tokenizer = self._loaded[0]
        count = len(self._reading(tokenizer, False).encode(text).ids)
        encoding = self._reading(tokenizer, True).encode(CLEANERS[self.meta["clean"]](text))
        return np.asarray([encoding.ids], np.int64), np.asarray([encoding.attention_mask], np.int64), count

    def encode(self, text: str) -> tuple[np.ndarray, int]:
        """(unit query vector, tokens in the raw text) through the saved text tower."""
        ids, mask, count = self._tokens(text)
        features = self._loaded[1].run(None, {"input_ids": ids, "attention_mask": mask})[0][0].astype(np.float32)
        unit = features / max(float(np.linalg.norm(features)), 1e-12)  # as ClipEncoder, then queries.compose
        total = unit / max(float(np.linalg.norm(unit)), 1e-12)
        return (total / float(np.linalg.norm(total))).astype(np.float32), count

    def top(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """(row, cosine) best first over the stored float16 vectors, as the exact FAISS index scores them."""
        vectors = np.load(self.folder / "vectors.npy", mmap_mode="r")
        scores = np.asarray(vectors, np.float32) @ query
        # best first; equal scores (a copy of a photo) with the later row first, as FAISS's result heap orders them
        order = np.lexsort((-np.arange(len(scores)), -scores))[:min(k, len(scores))]
        return [(int(i), float(scores[i])) for i in order]

    def hits(self, ranked: list[tuple[int, float]]) -> list[Hit]:
        offsets = np.load(self.folder / "offsets.npy")
        hits = []
        with open(self.folder / "rows.jsonl", "rb") as rows:
            for rank, (row, score) in enumerate(ranked, 1):
                rows.seek(int(offsets[row]))
                fields = json.loads(rows.read(int(offsets[row + 1] - offsets[row])))
                hits.append(Hit(**{**fields, "rank": rank, "score": score}))
        return hits

    def search(self, text: str, k: int, strategy: str, lang: str) -> QuickAnswer:
        """The answer the full ``search --text TEXT --k K --strategy STRATEGY`` gives (check ``answers`` first).
        Raises ``Declined`` for a Chinese text the full translator would cut (it warns): the full search answers."""
        text = text.strip()
        chinese = has_chinese(text)
        reader = self.translator().load() if chinese else None  # models load before the clock, as in the full search
        self.load()
        started = time.perf_counter()
        encoded = reader.translate(to_simplified(text)) if chinese else text
        if encoded is None:
            raise Declined(f"{text[:30]!r} is longer than the translator reads")
        query, count = self.encode(encoded)
        hits = self.hits(self.top(query, k))
        result = SearchResult(strategy="translate" if chinese else "clip", query_kind="text",
                              terms=({"kind": "text", "value": text, "weight": 1.0},),
                              query=text, encoded_text=encoded, search="exact", ann_nprobe=None, ann_recall_at_10=None,
                              library_size=self.meta["rows"], ms=round(1000 * (time.perf_counter() - started), 1),
                              hits=hits)
        warnings = (self.meta["truncation_warning"].format(tokens=count, limit=self.meta["max_tokens"]),) \
            if count > self.meta["max_tokens"] else ()
        route = self.meta["routes"][f"{'zh:' if chinese else ''}{strategy}|{lang}"]
        said = self.meta["translator"]["announcement"] if chinese else self.meta["announcement"]
        return QuickAnswer(result, warnings, route, said)


def snapshot_folder(index_dir) -> Path | None:
    """The live snapshot folder of ``index_dir`` (None: none)."""
    quick = Path(index_dir) / FOLDER
    try:
        name = json.loads((quick / POINTER).read_text(encoding="utf-8"))["folder"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return quick / name if isinstance(name, str) and "/" not in name and name not in ("", ".", "..") else None


def read_snapshot(index_dir) -> Snapshot | None:
    """The live snapshot of ``index_dir`` as written, fresh or not (None: none, or its meta unreadable)."""
    folder = snapshot_folder(index_dir)
    try:
        return Snapshot(folder, json.loads((folder / "meta.json").read_text(encoding="utf-8"))) if folder else None
    except (OSError, ValueError):
        return None


def open_snapshot(index_dir, model_flags: dict) -> Snapshot | None:
    """The snapshot of ``index_dir`` if it is fresh for these model flags, else None (missing, stale, unreadable)."""
    try:
        if not enabled() or not Path(index_dir).is_dir():
            return None
        snapshot = read_snapshot(index_dir)
        if snapshot is None:
            return None
        meta = snapshot.meta
        fresh = (meta.get("format") == FORMAT and meta.get("model_flags") == model_flags
                 and meta.get("environment") == environment_stamp()
                 and meta.get("index") == json.loads(json.dumps(index_stamp(index_dir)))
                 and meta.get("checkpoint") == json.loads(json.dumps(checkpoint_stamp(meta.get("location", "")))))
        return snapshot if fresh else None
    except (OSError, ValueError, TypeError, KeyError):  # a corrupt snapshot is no snapshot: the full search answers
        return None
