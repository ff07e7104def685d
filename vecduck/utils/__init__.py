"""Helpers importable under chromadb's module paths (``vecduck.utils.embedding_functions``)."""
