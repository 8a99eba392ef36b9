"""Search: embeddings on disk, the catalog database beside them, and the engine that ranks."""
