"""Faster `$project`, `$group` and `$sort` for the in-memory MongoDB stand-in, with MongoDB's semantics.

mongomock-ng evaluates every expression of every document through its general interpreter and
compares sort keys through a general BSON comparator: at demo size (a few hundred thousand CMDB
documents) one month's aggregation takes tens of seconds. These handlers compile, once per stage,
the expressions the CMDB pipelines use (field paths, `$$ROOT`, literals, expression objects,
`$ifNull`, `$dateToString` with `%Y-%m-%d`, `$slice` from a position, `$reduce` concatenating
arrays) and the accumulators `$first`, `$last`, `$push`, `$sum`, and sort with keys ordered as
MongoDB orders the common BSON types (null and missing, numbers, strings, ObjectIds, booleans,
dates). Whatever else a stage holds, or a value of another type met while running it, sends the
whole stage to mongomock-ng's own handler: nothing is evaluated two ways.

MongoDB's documented behaviour kept here: a field of an expression object that evaluates to
missing is left out; `$ifNull` returns its first argument that is neither null nor missing, else
its last; `$dateToString` of null or missing is null; `$first`/`$last` are the first/last document's
value in the order the group received them (null when missing); `$push` appends in that order;
`$sum` adds numbers and ignores every other value; groups compare keys by value and type (1 and
1.0 are one group, `true` and 1 two, NaNs one); `$sort` orders null/missing < numbers < strings <
ObjectIds < booleans < dates and is stable.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from typing import Any

from bson import ObjectId
from mongomock_ng import aggregate as mongomock_aggregate
from mongomock_ng import collection as mongomock_collection
from mongomock_ng import filtering
from sentinels import NOTHING

Expression = Callable[[dict[str, Any]], Any]


class Unsupported(Exception):
    """What these handlers do not compile: the stage goes to mongomock-ng's handler."""


def compile_expression(expression: Any) -> Expression:
    """A function of a document computing `expression` (NOTHING when it evaluates to missing)."""
    if isinstance(expression, str):
        if expression == "$$ROOT":
            return lambda doc: doc
        if expression.startswith("$$"):
            raise Unsupported(expression)
        if expression.startswith("$"):
            return _path(expression[1:].split("."))
        return lambda doc: expression
    if expression is None or isinstance(expression, bool | int | float):
        return lambda doc: expression
    if isinstance(expression, dict):
        if len(expression) == 1 and next(iter(expression)).startswith("$"):
            operator, arguments = next(iter(expression.items()))
            return _operator(operator, arguments)
        if any(key.startswith("$") for key in expression):
            raise Unsupported(expression)
        fields = [(key, compile_expression(value)) for key, value in expression.items()]

        def object_expression(doc: dict[str, Any]) -> dict[str, Any]:
            built = {}
            for key, compute in fields:
                value = compute(doc)
                if value is not NOTHING:
                    built[key] = value
            return built

        return object_expression
    raise Unsupported(expression)


def _path(keys: list[str]) -> Expression:
    def get(doc: dict[str, Any]) -> Any:
        value: Any = doc
        for key in keys:
            if isinstance(value, dict):
                if key not in value:
                    return NOTHING
                value = value[key]
            elif isinstance(value, list):
                raise Unsupported("a path through an array")
            else:
                return NOTHING
        return value

    return get


def _operator(operator: str, arguments: Any) -> Expression:
    if operator == "$ifNull" and isinstance(arguments, list) and len(arguments) >= 2:
        parts = [compile_expression(argument) for argument in arguments]

        def if_null(doc: dict[str, Any]) -> Any:
            for part in parts[:-1]:
                value = part(doc)
                if value is not NOTHING and value is not None:
                    return value
            return parts[-1](doc)

        return if_null
    if operator == "$dateToString" and isinstance(arguments, dict) and set(arguments) == {"format", "date"}:
        if arguments["format"] != "%Y-%m-%d":
            raise Unsupported(arguments)
        date = compile_expression(arguments["date"])

        def date_to_string(doc: dict[str, Any]) -> Any:
            value = date(doc)
            if value is NOTHING or value is None:
                return None
            if not isinstance(value, dt.datetime):
                raise Unsupported("$dateToString of a value that is no date")
            return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"

        return date_to_string
    if operator == "$slice" and isinstance(arguments, list) and len(arguments) == 3:
        array, position, count = (compile_expression(argument) for argument in arguments)

        def slice_(doc: dict[str, Any]) -> Any:
            items, start, size = array(doc), position(doc), count(doc)
            if items is NOTHING or items is None:
                return None
            if not isinstance(items, list) or not _natural(start) or not _natural(size) or size == 0:
                raise Unsupported("$slice other than [array, position ≥ 0, n > 0]")
            return items[start : start + size]

        return slice_
    if operator == "$reduce" and _concatenates(arguments):
        items_of = compile_expression(arguments["input"])

        def concatenated(doc: dict[str, Any]) -> Any:
            items = items_of(doc)
            if items is NOTHING or items is None:
                return None
            if not isinstance(items, list) or not all(isinstance(item, list) for item in items):
                raise Unsupported("$concatArrays of values that are no arrays")
            return [element for item in items for element in item]

        return concatenated
    raise Unsupported(operator)


def _natural(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _concatenates(arguments: Any) -> bool:
    return (
        isinstance(arguments, dict)
        and set(arguments) == {"input", "initialValue", "in"}
        and arguments["initialValue"] == []
        and arguments["in"] == {"$concatArrays": ["$$value", "$$this"]}
    )


# --------------------------------------------------------------------------- stages


def project(documents: list[dict[str, Any]], options: dict[str, Any]) -> list[dict[str, Any]]:
    """An inclusion `$project`: `_id` kept unless 0, top-level fields 1, computed fields."""
    keep_id = options.get("_id", 1) not in (0, False)
    included: list[str] = []
    computed: list[tuple[str, Expression]] = []
    for name, value in options.items():
        if name == "_id" and value in (0, 1, True, False):
            continue
        if "." in name:
            raise Unsupported(name)
        if value is True or (value == 1 and not isinstance(value, float)):
            included.append(name)
        elif value is False or value == 0:
            raise Unsupported("an exclusion")
        else:
            computed.append((name, compile_expression(value)))
    projected = []
    for doc in documents:
        out: dict[str, Any] = {"_id": doc["_id"]} if keep_id and "_id" in doc else {}
        for name in included:
            if name in doc:
                out[name] = doc[name]
        for name, compute in computed:
            value = compute(doc)
            if value is not NOTHING:
                out[name] = value
        projected.append(out)
    return projected


def group(documents: list[dict[str, Any]], options: dict[str, Any]) -> list[dict[str, Any]]:
    """`$group` with `$first`, `$last`, `$push` and `$sum` (groups in key order, as mongomock-ng)."""
    key_of = compile_expression(options["_id"])
    accumulators = [_accumulator(name, spec) for name, spec in options.items() if name != "_id"]
    groups: dict[Any, tuple[Any, list[Any]]] = {}
    for doc in documents:
        key = key_of(doc)
        if key is NOTHING:
            key = None
        canonical = _canonical(key)
        entry = groups.get(canonical)
        if entry is None:
            entry = groups[canonical] = (key, [start() for _, start, _, _ in accumulators])
        states = entry[1]
        for index, (_, _, add, _) in enumerate(accumulators):
            states[index] = add(states[index], doc)
    out = []
    for key, states in sorted(groups.values(), key=lambda entry: filtering.BsonComparable(entry[0])):
        row = {name: finish(state) for (name, _, _, finish), state in zip(accumulators, states, strict=True)}
        row["_id"] = key
        out.append(row)
    return out


Accumulator = tuple[str, Callable[[], Any], Callable[[Any, dict[str, Any]], Any], Callable[[Any], Any]]


def _accumulator(name: str, spec: Any) -> Accumulator:
    if not isinstance(spec, dict) or len(spec) != 1:
        raise Unsupported(spec)
    operator, argument = next(iter(spec.items()))
    value_of = compile_expression(argument)
    if operator == "$first":
        return (name, lambda: UNSET, lambda state, doc: value_of(doc) if state is UNSET else state, _null)
    if operator == "$last":
        return (name, lambda: NOTHING, lambda state, doc: value_of(doc), _null)
    if operator == "$push":

        def push(state: list[Any], doc: dict[str, Any]) -> list[Any]:
            value = value_of(doc)
            if value is not NOTHING:
                state.append(value)
            return state

        return (name, list, push, lambda state: state)
    if operator == "$sum":

        def add(state: Any, doc: dict[str, Any]) -> Any:
            value = value_of(doc)
            if isinstance(value, bool) or not isinstance(value, int | float):
                if value is NOTHING or value is None or isinstance(value, str | dict | list | bool):
                    return state
                raise Unsupported("$sum of a number that is no int or double")
            return state + value

        return (name, lambda: 0, add, lambda state: state)
    raise Unsupported(operator)


UNSET = object()
"""No document seen yet (`$first`): unlike NOTHING, the first document's missing value."""


def _null(state: Any) -> Any:
    return None if state is NOTHING or state is UNSET else state


def _canonical(value: Any) -> Any:
    """A hashable form of a group key comparing as MongoDB compares values."""
    if isinstance(value, dict):
        return ("object", tuple((key, _canonical(item)) for key, item in value.items()))
    if isinstance(value, list):
        return ("array", tuple(_canonical(item) for item in value))
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, float) and math.isnan(value):
        return ("nan",)
    if value is None or isinstance(value, int | float | str | ObjectId | dt.datetime):
        return value
    raise Unsupported(type(value).__name__)


def sort(documents: list[dict[str, Any]], options: dict[str, Any]) -> list[dict[str, Any]]:
    """`$sort` on fields whose values are of the common BSON types (stable, key by key)."""
    ordered = list(documents)
    for name, direction in reversed(list(options.items())):
        if direction not in (1, -1):
            raise Unsupported(direction)
        get = _path(name.split("."))
        keys = [_sort_key(get(doc)) for doc in ordered]
        order = sorted(range(len(ordered)), key=keys.__getitem__, reverse=direction < 0)
        ordered = [ordered[index] for index in order]
    return ordered


def _sort_key(value: Any) -> tuple[Any, ...]:
    if value is NOTHING or value is None:
        return (1,)
    if isinstance(value, bool):
        return (9, value)
    if isinstance(value, int | float):
        return (2, 0, 0) if isinstance(value, float) and math.isnan(value) else (2, 1, value)
    if isinstance(value, str):
        return (4, value)
    if isinstance(value, ObjectId):
        return (8, value.binary)
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return (10, value)
    raise Unsupported(type(value).__name__)


# --------------------------------------------------------------------------- installation

FAST_STAGES = {"$project": project, "$group": group, "$sort": sort}


def install() -> None:
    """Route the three stages and the collections' queries through the handlers here, falling back
    to mongomock-ng's."""
    original_documents = mongomock_collection.Collection._iter_documents

    def iter_documents(self: Any, query: Any) -> Any:
        try:
            matches = compile_filter(query or {})
        except Unsupported:
            return original_documents(self, query)
        if self._store.is_empty:
            return iter(())
        return (doc for doc in list(self._store.documents) if _matches(matches, query, doc))

    mongomock_collection.Collection._iter_documents = iter_documents  # type: ignore[method-assign]
    handlers = mongomock_aggregate._PIPELINE_HANDLERS
    for name, fast in FAST_STAGES.items():
        original = handlers[name]
        assert original is not None
        handlers[name] = _with_fallback(fast, original)


def _matches(predicate: Predicate, query: dict[str, Any], doc: dict[str, Any]) -> bool:
    try:
        return predicate(doc)
    except Unsupported:
        return bool(filtering.filter_applies(query, doc))


def _with_fallback(fast: Callable[..., Any], original: Callable[..., Any]) -> Callable[..., Any]:
    def handler(collection: Any, database: Any, options: Any, user_vars: Any) -> Any:
        if user_vars:
            return original(collection, database, options, user_vars)
        documents = list(collection)
        try:
            return fast(documents, options)
        except Unsupported:
            return original(documents, database, options, user_vars)

    return handler


# --------------------------------------------------------------------------- query filters

Predicate = Callable[[dict[str, Any]], bool]


def compile_filter(query: dict[str, Any]) -> Predicate:
    """A predicate for a query of field conditions, `$and` and `$or`, with the comparison operators,
    `$in`, `$nin`, `$ne`, `$not`, `$exists` and `$type`, comparing within a BSON type as MongoDB
    does (a range of strings matches strings only). A document whose path meets an array raises
    Unsupported: `install` sends that document to mongomock-ng's matcher."""
    parts: list[Predicate] = []
    for key, condition in query.items():
        if key in ("$and", "$or"):
            if not isinstance(condition, list) or not condition:
                raise Unsupported(key)
            branches = [compile_filter(branch) for branch in condition]
            parts.append(_all(branches) if key == "$and" else _any(branches))
        elif key.startswith("$"):
            raise Unsupported(key)
        else:
            parts.append(_field(key.split("."), condition))
    return _all(parts)


def _all(parts: list[Predicate]) -> Predicate:
    return lambda doc: all(part(doc) for part in parts)


def _any(parts: list[Predicate]) -> Predicate:
    return lambda doc: any(part(doc) for part in parts)


def _field(path: list[str], condition: Any) -> Predicate:
    get = _path(path)

    def value_of(doc: dict[str, Any]) -> Any:
        value = get(doc)
        if isinstance(value, list):
            raise Unsupported("an array value")
        return value

    test = _condition(condition)
    return lambda doc: test(value_of(doc))


def _condition(condition: Any) -> Callable[[Any], bool]:
    if isinstance(condition, dict) and condition and all(key.startswith("$") for key in condition):
        tests = [_operator_test(operator, argument) for operator, argument in condition.items()]
        return lambda value: all(test(value) for test in tests)
    return _equals(condition)


def _type_class(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dt.datetime):
        return "date"
    if isinstance(value, ObjectId):
        return "objectId"
    if isinstance(value, dict):
        return "object"
    raise Unsupported(type(value).__name__)


def _equals(bound: Any) -> Callable[[Any], bool]:
    if isinstance(bound, dict | list):
        raise Unsupported("equality with a document or an array")
    if bound is None:
        return lambda value: value is NOTHING or value is None
    kind = _type_class(bound)
    return lambda value: value is not NOTHING and _type_class(value) == kind and value == bound


RANGES: dict[str, Callable[[Any, Any], bool]] = {
    "$gt": lambda value, bound: value > bound,
    "$gte": lambda value, bound: value >= bound,
    "$lt": lambda value, bound: value < bound,
    "$lte": lambda value, bound: value <= bound,
}

TYPES: dict[str, Callable[[Any], bool]] = {
    "date": lambda value: isinstance(value, dt.datetime),
    "string": lambda value: isinstance(value, str),
    "object": lambda value: isinstance(value, dict),
    "array": lambda value: False,  # an array value raised Unsupported before
    "null": lambda value: value is None,
    "bool": lambda value: isinstance(value, bool),
    "objectId": lambda value: isinstance(value, ObjectId),
}


def _operator_test(operator: str, argument: Any) -> Callable[[Any], bool]:
    if operator in RANGES:
        if isinstance(argument, dict | list) or argument is None:
            raise Unsupported(operator)
        kind, compare = _type_class(argument), RANGES[operator]
        return lambda value: value is not NOTHING and _type_class(value) == kind and compare(value, argument)
    if operator == "$eq":
        return _equals(argument)
    if operator == "$ne":
        equal = _equals(argument)
        return lambda value: not equal(value)
    if operator in ("$in", "$nin") and isinstance(argument, list):
        members = [_equals(member) for member in argument]
        if operator == "$in":
            return lambda value: any(member(value) for member in members)
        return lambda value: not any(member(value) for member in members)
    if operator == "$exists":
        present = bool(argument)
        return lambda value: (value is not NOTHING) == present
    if operator == "$type" and isinstance(argument, str) and argument in TYPES:
        is_type = TYPES[argument]
        return lambda value: value is not NOTHING and is_type(value)
    if (
        operator == "$not"
        and isinstance(argument, dict)
        and argument
        and all(k.startswith("$") for k in argument)
    ):
        test = _condition(argument)
        return lambda value: not test(value)
    raise Unsupported(operator)
