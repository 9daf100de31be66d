"""Neural and clustering models: embeddings, fusion, heads, k-means, vocoders."""
