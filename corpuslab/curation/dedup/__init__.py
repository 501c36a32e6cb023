"""The dedup engine: normalisation, exact digests, MinHash LSH with verified Jaccard, clusters."""
