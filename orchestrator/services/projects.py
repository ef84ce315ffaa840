"""Projects: which project a request acts for, and which project owns each object.

Every top-level object (files, vector stores, containers, assistants, threads) has one row in `owners`; what hangs
under one (messages, runs, steps, a store's files and batches, a container's files) is reached only through it.
A caller sees its own project's objects; another project's id answers exactly as an unknown one does (404), so
ids leak nothing. Admin keys see every project. An object whose owner row is missing is seen only by admins: rows
are written with the object or before it, so only a crash mid-create leaves one, and it must not become public.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from orchestrator.db import Database
from orchestrator.errors import InvalidRequest, ServiceError

DEFAULT_PROJECT = "default"
_PROJECT_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class OverLimit(ServiceError):
    """A project is at one of its limits (live sandboxes, stored bytes): a 429."""

    code = "project_limit_exceeded"


def check_project_name(name: str) -> str:
    if not _PROJECT_NAME.fullmatch(name):
        raise InvalidRequest(f"Invalid project name {name!r}: 1-64 letters, digits, '_', '.' or '-'.",
                             param="project")
    return name


@dataclass(frozen=True)
class Caller:
    """Who a request acts for: the project its objects go to, and whether it may see every project."""

    project: str = DEFAULT_PROJECT
    admin: bool = False

    @property
    def scope(self) -> str | None:
        """The project lists are limited to; None for an admin."""
        return None if self.admin else self.project

    def key(self, name: str) -> str:
        """A name the caller chose (a tool-call thread), made distinct per project: two projects may both name
        a thread "t1" and get two sandboxes. Project names hold no '/', so the first one splits it back."""
        return f"{self.project}/{name}"


class Owners:
    def __init__(self, db: Database) -> None:
        self._db = db

    def claim(self, project: str, object_id: str) -> None:
        self._db.execute("INSERT INTO owners (id, project) VALUES (?, ?) "
                         "ON CONFLICT (id) DO UPDATE SET project = excluded.project", (object_id, project))

    def adopt(self, object_ids: list[str]) -> int:
        """Give objects made before projects existed to the default project; returns how many had no owner."""
        with self._db.transaction() as conn:
            return sum(conn.execute("INSERT INTO owners (id, project) VALUES (?, ?) "
                                    "ON CONFLICT (id) DO NOTHING",
                                    (object_id, DEFAULT_PROJECT)).rowcount for object_id in object_ids)

    def owner(self, object_id: str) -> str | None:
        row = self._db.one("SELECT project FROM owners WHERE id = ?", (object_id,))
        return row[0] if row else None

    def project_of(self, object_id: str) -> str:
        """The project whatever is made for this object belongs to: its own, or "" (seen by admins only) if it
        has no owner row, so an unowned object never passes its reach on to a project."""
        return self.owner(object_id) or ""

    def sees(self, caller: Caller, object_id: str) -> bool:
        return caller.admin or self.owner(object_id) == caller.project

    def ids(self, project: str, prefix: str) -> set[str]:
        """The ids of one project's objects of one kind (by id prefix)."""
        rows = self._db.all("SELECT id FROM owners WHERE project = ? AND id >= ? AND id < ?",
                            (project, prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)))
        return {row[0] for row in rows}

    def forget(self, object_id: str) -> None:
        self._db.execute("DELETE FROM owners WHERE id = ?", (object_id,))


def scope_clause(scope: str | None, column: str = "id") -> tuple[str, tuple[str, ...]]:
    """A WHERE clause (and its arguments) that keeps the rows of one project's objects; all of them for None."""
    if scope is None:
        return "1 = 1", ()
    return f"{column} IN (SELECT id FROM owners WHERE project = ?)", (scope,)
