"""chromadb's Python surface: client, collection, argument checks and result types."""
