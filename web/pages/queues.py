"""What every queue page shares: its view read from the address, links that keep the view
(so a view can be bookmarked and shared), and the page of rows with its counts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import HTTPException, Request
from sqlalchemy import Engine

from models.lifecycle import STAFF_REASON_CODES
from stores import queues
from stores.queues import BadView, Page, Queue, Sort, View
from web.dependencies import read


def view_of(request: Request, queue: Queue[Any]) -> View:
    """The view the address asks for; an address that names none is no such page."""
    try:
        return queues.parse_view(queue, dict(request.query_params))
    except BadView as err:
        raise HTTPException(404, f"There is no such view: {err}.") from None


@dataclass(frozen=True)
class Links:
    """Addresses of this queue with the view changed in one way and kept in every other."""

    path: str
    view: View
    # Parameters of the page itself that its links keep (the lead view).
    fixed: tuple[tuple[str, str], ...] = ()

    def _params(self, **changes: str | None) -> list[tuple[str, str]]:
        params: dict[str, str | None] = {"q": self.view.q or None, **self.view.filters}
        if self.view.sort is not Sort.NEWEST:
            params["sort"] = self.view.sort.value
        params.update(changes)
        return [*self.fixed, *((k, v) for k, v in params.items() if v)]

    def to(self, **changes: str | None) -> str:
        """The view from its first page, with `changes` (None removes a parameter)."""
        query = urlencode(self._params(**changes))
        return f"{self.path}?{query}" if query else self.path

    def cleared(self) -> str:
        """The view without its search and filters (its sort kept)."""
        return self.to(q=None, **dict.fromkeys(self.view.filters))

    def filtered(self, name: str, option: str | None) -> str:
        return self.to(**{name: option})

    def after(self, cursor: str) -> str:
        return self.to(after=cursor)

    def before(self, cursor: str) -> str:
        return self.to(before=cursor)

    def here(self, **changes: str | None) -> str:
        """This very page (its cursor kept), with `changes`."""
        cursor = {"after": self.view.after, "before": self.view.before}
        return self.to(**{**cursor, **changes})

    def elsewhere(self, path: str) -> str:
        """Another address (an export) with this view's filters, search and sort."""
        query = urlencode(self._params())
        return f"{path}?{query}" if query else path

    @property
    def filtered_at_all(self) -> bool:
        return bool(self.view.q or self.view.filters)


def now() -> datetime:
    return datetime.now(UTC)


async def queue_page(
    request: Request,
    engine: Engine,
    queue: Queue[Any],
    path: str,
    fixed: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    """What a queue's template needs: the rows of the view, its counts, its links."""
    view = view_of(request, queue)
    found: Page[Any] = await read(queues.page, engine, queue, view, now())
    return {
        "queue": queue,
        "view": view,
        "page": found,
        "links": Links(path, view, tuple(fixed)),
        "sorts": list(Sort),
        "selected_all": request.query_params.get("select") == "all",
        "reason_codes": STAFF_REASON_CODES,
    }
