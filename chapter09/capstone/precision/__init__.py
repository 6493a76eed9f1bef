"""Every precision decision of a library: ``library`` (what ``auto`` picks for an index's encoders and for the
captioner, and why), ``sidecar`` (the one sidecar format, older ones still read), ``verdicts`` (verdicts remembered
across indexes in a user cache)."""
