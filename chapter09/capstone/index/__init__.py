"""Bringing an index up to date with a library, one job per module.

``walk`` (the folder walk and its excludes), ``metadata`` (what a photo's header says), ``decode`` (one file read,
hashed, decoded, preprocessed), ``plan`` (what a run must encode, reuse, fill or remove), ``writer`` (rows into
the tables, commits on time), ``summary`` (what a run reports), ``encode`` (the one encode step, run by the local
engine and by the Ray engine). The entry point, ``build_index``, is ``capstone/index/build.py``.
"""
