"""Storage and search: the lake, the write buffer, the index, filters. Knows nothing of HTTP."""
