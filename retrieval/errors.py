"""The retrieval engine's exceptions.

RetrievalError
 ├── NotFound
 │    ├── StoreNotFound     an unknown vector store id
 │    ├── StoreFileNotFound a file that is not in the store
 │    └── BatchNotFound     an unknown file batch of a store
 ├── InvalidRequest         a bad argument (`param` names it)
 └── FileProblem            a file that cannot be indexed; `code` is OpenAI's `unsupported_file` or `invalid_file`
DiskFull                    the disk under a database or an index is full: the write was rolled back whole
CatalogUnavailable          the catalog's database (PostgreSQL) does not answer: retry later
"""

from __future__ import annotations


class RetrievalError(Exception):
    pass


class DiskFull(Exception):
    """Not a RetrievalError: nothing is wrong with the request or the store, and the same write works once space
    is freed."""

    def __init__(self, message: str = "The server's disk is full; nothing was written. Try again once space is "
                                      "freed.") -> None:
        super().__init__(message)


class CatalogUnavailable(Exception):
    """Not a RetrievalError either: the catalog's database is down, out of free connections, or broke a deadlock;
    the same request works once it answers."""

    def __init__(self) -> None:
        super().__init__("The retrieval database is not answering; retry later.")


class NotFound(RetrievalError):
    pass


class StoreNotFound(NotFound):
    def __init__(self, store_id: str) -> None:
        super().__init__(f"No vector store found with id '{store_id}'.")


class StoreFileNotFound(NotFound):
    def __init__(self, store_id: str, file_id: str) -> None:
        super().__init__(f"No file '{file_id}' in vector store '{store_id}'.")


class BatchNotFound(NotFound):
    def __init__(self, store_id: str, batch_id: str) -> None:
        super().__init__(f"No file batch '{batch_id}' in vector store '{store_id}'.")


class InvalidRequest(RetrievalError):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class FileProblem(RetrievalError):
    """Why a file could not be indexed, in the shape of a vector store file's `last_error`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
