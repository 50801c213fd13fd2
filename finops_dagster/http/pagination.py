"""Following paginated APIs: Link headers, next links or tokens in the body, page numbers.

Every style goes through `follow`, which refuses a pagination that repeats a cursor (a loop) or
exceeds a page limit (never ends), instead of spinning all night.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from typing import Any, TypeVar
from urllib.parse import urlsplit

from finops_dagster.http.client import HttpSource, JsonResponse
from finops_dagster.http.errors import SourceError

T = TypeVar("T")
MAX_PAGES = 100_000


def follow(
    source: str,
    fetch: Callable[[Any], tuple[list[T], Hashable | None]],
    *,
    max_pages: int = MAX_PAGES,
) -> Iterator[T]:
    """Items of every page; `fetch(cursor)` returns (items, next cursor or None)."""
    seen: set[Hashable] = set()
    cursor: Any = None
    for _ in range(max_pages):
        items, following = fetch(cursor)
        yield from items
        if following is None or following == "":
            return
        if following in seen:
            raise SourceError(
                source, f"pagination loops: page cursor {_shown(following)!r} was already visited"
            )
        seen.add(following)
        cursor = following
    raise SourceError(source, f"pagination never ends: more than {max_pages} pages")


def _shown(cursor: Hashable) -> str:
    """A cursor fit for a message: a next link shows only its path (its query can carry a key)."""
    text = str(cursor)
    if "://" in text or text.startswith("/"):
        parts = urlsplit(text)
        return parts.path + ("?…" if parts.query else "")
    return text[:80]


def by_link_header(
    client: HttpSource,
    path: str,
    params: dict[str, Any],
    items_of: Callable[[Any], list[T]],
    *,
    max_pages: int = MAX_PAGES,
) -> Iterator[T]:
    """RFC 8288 `Link: <…>; rel="next"` (GitLab, GitHub style)."""

    def fetch(cursor: str | None) -> tuple[list[T], str | None]:
        response = client.get(cursor, None) if cursor else client.get(path, params)
        return items_of(response.body), response.links.get("next", {}).get("url")

    return follow(client.name, fetch, max_pages=max_pages)


def by_next_url(
    client: HttpSource,
    path: str,
    params: dict[str, Any],
    items_of: Callable[[Any], list[T]],
    next_url_of: Callable[[JsonResponse], str | None],
    *,
    max_pages: int = MAX_PAGES,
    headers: dict[str, str] | None = None,
) -> Iterator[T]:
    """A next link in the body (Nova `tenant_usages_links`, Azure `nextLink`)."""

    def fetch(cursor: str | None) -> tuple[list[T], str | None]:
        response = client.get(cursor, None, headers) if cursor else client.get(path, params, headers)
        return items_of(response.body), next_url_of(response)

    return follow(client.name, fetch, max_pages=max_pages)


def by_token(
    client: HttpSource,
    path: str,
    params: dict[str, Any],
    token_param: str,
    items_of: Callable[[Any], list[T]],
    token_of: Callable[[Any], str | None],
    *,
    max_pages: int = MAX_PAGES,
) -> Iterator[T]:
    """An opaque next token or marker in the body, sent back as a query parameter."""

    def fetch(cursor: str | None) -> tuple[list[T], str | None]:
        response = client.get(path, {**params, token_param: cursor} if cursor else params)
        return items_of(response.body), token_of(response.body)

    return follow(client.name, fetch, max_pages=max_pages)


def by_page_number(
    client: HttpSource,
    path: str,
    params: dict[str, Any],
    page_param: str,
    items_of: Callable[[Any], list[T]],
    *,
    first: int = 1,
    max_pages: int = MAX_PAGES,
) -> Iterator[T]:
    """Numbered pages until an empty one."""

    def fetch(cursor: int | None) -> tuple[list[T], int | None]:
        page = first if cursor is None else cursor
        items = items_of(client.get(path, {**params, page_param: page}).body)
        return items, (page + 1 if items else None)

    return follow(client.name, fetch, max_pages=max_pages)
