"""`python -m web`: serve the web app on WEB_HOST:WEB_PORT."""

from __future__ import annotations

import sys

import uvicorn
from pydantic import ValidationError

from settings import get_settings
from web.app import create_app


def main() -> int:
    # A configuration a person must fix: one line, no traceback.
    try:
        settings = get_settings()
        app = create_app(settings)
    except ValidationError as err:
        reasons = (
            f"{'.'.join(str(part) for part in error['loc']).upper()}: {error['msg']}"
            for error in err.errors()
        )
        print(f"web: {'; '.join(reasons)}", file=sys.stderr)
        return 2
    except ValueError as err:
        print(f"web: {err}", file=sys.stderr)
        return 2
    # Forwarded headers are the app's to read, from TRUSTED_PROXIES only: uvicorn's own
    # reading would trust FORWARDED_ALLOW_IPS (loopback by default) instead.
    uvicorn.run(app, host=settings.web_host, port=settings.web_port, proxy_headers=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
