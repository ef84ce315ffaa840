"""Retrieval engine: parse files, chunk them, embed the chunks, index them (FAISS + BM25), search with citations.

A plain library: the HTTP API (`orchestrator/api/vector_stores.py`) and the CLI (`toolshed index/search/eval`)
both call `retrieval.vector_store.VectorStoreEngine`.
"""
