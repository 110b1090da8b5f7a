"""Video decoding, temporal sampling, transforms and dataset adapters."""
