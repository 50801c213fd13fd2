"""The in-memory MongoDB stand-in (mongomock-ng) used where no MongoDB server can run.

Three fixes make it usable at demo size without changing any result:
- its cursor re-slices the whole result list for every document it yields (quadratic);
- its `aggregate` copies the whole collection before applying a leading `$match`;
- its `$project`, `$group` and `$sort` interpret every expression of every document
  (`mongo_standin_stages.py` compiles the ones the CMDB pipelines use).
All are patched once, here, for the stand-in only; production uses pymongo and a real server.
"""

from __future__ import annotations

import threading
from typing import Any

import mongomock_ng
from mongomock_ng import aggregate as mongomock_aggregate
from mongomock_ng import collection as mongomock_collection

from finops_dagster.resources import mongo_standin_stages

_patched = False
_patch_lock = threading.Lock()


def _cursor_next(self: Any) -> Any:
    results = self._compute_results(with_limit_and_skip=False)
    index = self._skip + self._emitted
    if index >= len(results) or (self._limit and self._emitted >= abs(self._limit)):
        raise StopIteration
    self._emitted += 1
    return mongomock_collection._cast_document_class(
        results[index], self.collection.codec_options.document_class
    )


def _aggregate(self: Any, pipeline: list[dict[str, Any]], session: Any = None, **unused: Any) -> Any:
    if pipeline and "$match" in pipeline[0] and not _uses_expressions(pipeline[0]["$match"]):
        documents = list(self.find(pipeline[0]["$match"]))
        pipeline = pipeline[1:]
    else:
        documents = list(self.find())
    return mongomock_aggregate.process_pipeline(documents, self.database, pipeline, session)


def _uses_expressions(match: dict[str, Any]) -> bool:
    return "$expr" in match


def _patch() -> None:
    global _patched
    with _patch_lock:
        if _patched:
            return
        mongomock_collection.Cursor.__next__ = _cursor_next  # type: ignore[method-assign]
        mongomock_collection.Cursor.next = _cursor_next
        mongomock_collection.Collection.aggregate = _aggregate  # type: ignore[method-assign]
        mongo_standin_stages.install()
        _patched = True


def standin_client() -> Any:
    """A new, empty in-memory MongoDB client."""
    _patch()
    return mongomock_ng.MongoClient()
