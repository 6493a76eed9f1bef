"""Searching an index: ``library_search`` (``LibrarySearch.run``: the one search the command line and every web
endpoint call), ``queries`` (how a query becomes a vector), ``filters`` (filters as a mask over rows), ``records``
(hits and results, one JSON form), ``places`` (GPS named offline), ``index_model`` (which checkpoint reads an
index's queries), ``query_cache``, ``dedup`` (exact and near duplicates), ``quick`` and ``quick_export`` (the cold
quick search without torch, and its snapshot). Kept free of imports: ``quick`` must start light."""
