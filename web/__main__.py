"""`python -m web`: serve the web app on WEB_HOST:WEB_PORT."""

from __future__ import annotations

import sys

import uvicorn

from settings import get_settings


def main() -> int:
    settings = get_settings()
    try:
        from web.app import create_app

        app = create_app(settings)
    except ValueError as err:  # a configuration a person must fix: one line, no traceback
        print(f"web: {err}", file=sys.stderr)
        return 2
    uvicorn.run(app, host=settings.web_host, port=settings.web_port, proxy_headers=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
