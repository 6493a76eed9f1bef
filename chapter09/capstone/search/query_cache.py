"""An LRU cache of recent query embeddings: a repeated query, or the web UI paging through results,
costs no forward pass.

The key is (query text after ``check_query``, the strategy asked for, the identity of every model
that turns it into a vector: location and precision). Vectors are stored read-only and handed out
as copies; the warnings a first encoding raised (e.g. a query cut to the text tower's length) are
replayed on a hit, so a cached answer says the same as a fresh one.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

import numpy as np

DEFAULT_QUERY_CACHE_SIZE = 512  # 512 x 512-d float32 vectors = 1 MiB


class QueryCache:
    def __init__(self, maxsize: int = DEFAULT_QUERY_CACHE_SIZE):
        if maxsize < 0:
            raise ValueError("maxsize must be >= 0 (0 turns the cache off)")
        self.maxsize = maxsize
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()  # the web UI answers requests from several threads

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.hits = self.misses = 0

    def stats(self) -> dict:
        return {"size": len(self), "maxsize": self.maxsize, "hits": self.hits, "misses": self.misses}

    def lookup(self, key: Hashable, compute: Callable[[Callable[[str], None]], tuple], warn=None) -> tuple:
        """The cached result for ``key``, else ``compute(warn)`` stored under it.

        Results are tuples whose first item is the query vector (numpy). ``compute`` receives a
        ``warn`` that both records and forwards each warning, so a hit can replay them.
        """
        with self._lock:
            entry = self._items.get(key)
            if entry is not None:
                self._items.move_to_end(key)
                self.hits += 1
        if entry is not None:
            result, warnings = entry
            for message in warnings:
                if warn is not None:
                    warn(message)
            return (result[0].copy(), *result[1:])
        recorded: list[str] = []

        def recording_warn(message: str) -> None:
            recorded.append(message)
            if warn is not None:
                warn(message)

        result = compute(recording_warn)
        vector = np.array(result[0], dtype=np.float32, copy=True)
        vector.setflags(write=False)
        with self._lock:
            self.misses += 1
            if self.maxsize:
                self._items[key] = ((vector, *result[1:]), tuple(recorded))
                self._items.move_to_end(key)
                while len(self._items) > self.maxsize:
                    self._items.popitem(last=False)
        return (vector.copy(), *result[1:])
