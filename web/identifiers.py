"""The shapes of ids the web app accepts: request references and row ids."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Path

# Onboarding ids are 16 hex digits; anything else names no request.
ONBOARDING_ID = re.compile(r"^[0-9a-f]{16}$")
# A row's id in a store: what an INTEGER key holds on PostgreSQL (32 bits; SQLite's hold
# more), so no lookup overflows the column and fails there.
RowId = Annotated[int, Path(ge=1, le=2**31 - 1)]
