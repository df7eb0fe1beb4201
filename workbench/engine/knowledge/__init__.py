"""Knowledge base: loaders, chunking, hybrid retrieval, knowledge graph."""
