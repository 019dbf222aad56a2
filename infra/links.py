"""The requester's private status link: the web app serves it, the worker emails it.

Both sides build it from the same secret (WEB_SECRET_KEY, or the one made once in
`var/`), so a link in an email opens the page. It lives here, beside the settings,
because the worker must not import `web`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from contextlib import suppress
from urllib.parse import quote

from models.lifecycle import PROSPECT_PAGE, STAGES, Stage
from models.status import RecordIds
from settings import VAR_DIR, Settings

SECRET_FILE = VAR_DIR / "web-secret.key"


def site_secret(settings: Settings) -> bytes:
    """WEB_SECRET_KEY, or one made once and kept in `var/` so links outlive restarts."""
    if settings.web_secret_key is not None:
        return settings.web_secret_key.get_secret_value().encode()
    if not SECRET_FILE.exists():
        SECRET_FILE.parent.mkdir(parents=True, exist_ok=True)
        # Written whole, then linked into place: processes starting together (the worker
        # and the web app under `make dev`) agree on one.
        draft = SECRET_FILE.with_name(f".{SECRET_FILE.name}.{os.getpid()}")
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_hex(32))
        with suppress(FileExistsError):
            os.link(draft, SECRET_FILE)
        draft.unlink()
    return SECRET_FILE.read_text().strip().encode()


def status_token(secret: bytes, onboarding_id: str) -> str:
    """Proof that the holder was given the link: the reference alone opens nothing."""
    digest = hmac.new(secret, f"status:{onboarding_id}".encode(), hashlib.sha256)
    return digest.hexdigest()[:32]


def status_token_valid(secret: bytes, onboarding_id: str, token: str) -> bool:
    return hmac.compare_digest(status_token(secret, onboarding_id).encode(), token.encode())


def status_path(secret: bytes, onboarding_id: str) -> str:
    return f"/requests/{quote(onboarding_id)}/{status_token(secret, onboarding_id)}"


def status_url(site_url: str, secret: bytes, onboarding_id: str) -> str:
    """The whole link, on the B2B site (B2B_SITE_URL), as the API answers and emails carry it."""
    return site_url.rstrip("/") + status_path(secret, onboarding_id)


def staff_page_path(stage: Stage, records: RecordIds) -> str:
    """The staff page where the request's next move is made (a reminder links there):
    the stage's own (`lifecycle.StageInfo.staff_page`), or the prospect's until that
    record exists."""
    page = STAGES[stage].staff_page
    record_id = getattr(records, page.record)
    if record_id is None:
        page, record_id = PROSPECT_PAGE, records.prospect_id
    return page.path.format(id=record_id)
