"""Embeddings, vector indexes and memory."""
