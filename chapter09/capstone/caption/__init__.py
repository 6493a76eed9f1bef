"""Captions for a library: ``describe`` (captions in both languages and match scores for given images), ``run``
(``caption --index``: plan, run, commits), ``batch`` (one batch captioned, shared by both engines), ``ray_engine``
(captioner and translator actors), ``text_search`` (the captions' full-text index and reciprocal-rank fusion)."""
