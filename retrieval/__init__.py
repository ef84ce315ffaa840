"""Retrieval engine: parsing, chunking, embedding, FAISS + keyword search. (Built in issue 4.)"""
