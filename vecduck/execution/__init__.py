"""chromadb's `chromadb.execution` import path, for code that imports the Search API from there."""
