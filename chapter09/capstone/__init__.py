"""The capstone: bilingual captioning and image-library retrieval (``python -m chapter09.capstone --help``)."""
