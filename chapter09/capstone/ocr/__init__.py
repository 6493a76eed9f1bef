"""Text in photos: ``reader`` (RapidOCR, one per process), ``run`` (``index --ocr``'s pass and its table),
``ray_engine`` (OCR actors), ``text_search`` (full-text search over the text read)."""
