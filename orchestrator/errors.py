"""Failures of the service layer (files, container files, exports, bindings, the faces' own checks).

    ServiceError
    ├── NotFound        an unknown or deleted id                                   404
    ├── InvalidRequest  input the service cannot honour; `param` names the field   400
    ├── Conflict        the object is in a state that forbids the request          409
    ├── TooLarge        over a size limit                                          413
    ├── DiskFull        the server's own disk is full; retry when space is back     507
    └── Unavailable     a part the request needs is down; retry later              503

The engines keep their own trees (orchestrator.sandbox.errors, retrieval.errors). One table in
orchestrator.web.errors maps the base classes of all three to OpenAI's error envelope; a subclass may carry its
own `code` (and `param`).
"""

from __future__ import annotations

from retrieval import errors as retrieval_errors


class ServiceError(Exception):
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.param = param
        if code is not None:
            self.code = code


class NotFound(ServiceError):
    code = "not_found"


class InvalidRequest(ServiceError):
    code = "invalid_value"


class Conflict(ServiceError):
    code = "conflict"


class TooLarge(ServiceError):
    code = "too_large"


class DiskFull(ServiceError, retrieval_errors.DiskFull):
    """Also the engines' DiskFull: one 507 for a full disk wherever the write was."""

    code = "insufficient_storage"


class Unavailable(ServiceError):
    code = "unavailable"
    retry_after_s = 5
