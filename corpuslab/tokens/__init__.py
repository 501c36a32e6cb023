"""Tokenizers and token streams: flat memmap files with a document-offset index."""
