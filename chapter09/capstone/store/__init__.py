"""The index folder: ``database`` (opening it, which table serves each role, commits), ``tables`` (one shape
each), ``vectors`` (exact and IVF-SQ8 search over vectors handed to it), ``lock`` (the writer lock),
``locations`` (folder or object store), ``npz_migration`` (reading the previous version's store)."""
