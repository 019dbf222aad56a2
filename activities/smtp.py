"""The mail relay as the settings describe it: implicit TLS or STARTTLS, the certificate
checked (against SMTP_CA_FILE for a private relay), a login when there is a username.

Every connection to it follows this one rule: the emails' sends and the readiness checks.
"""

from __future__ import annotations

import ssl

import aiosmtplib

from settings import Settings


def relay(settings: Settings) -> aiosmtplib.SMTP:
    """An unconnected client; `async with` connects, greets, secures and logs in."""
    return aiosmtplib.SMTP(
        hostname=settings.smtp_host,
        port=settings.smtp_port,
        username=settings.smtp_username,
        password=settings.smtp_password,
        use_tls=settings.smtp_tls,
        # Never opportunistic: a relay that offers STARTTLS is checked only when it is asked for.
        start_tls=settings.smtp_starttls,
        validate_certs=True,
        cert_bundle=str(settings.smtp_ca_file) if settings.smtp_ca_file else None,
        timeout=settings.smtp_timeout_seconds,
    )


def refusal(err: BaseException) -> str | None:
    """Why the relay refuses us until an operator changes a setting; None when it is not that.

    A wrong login and a certificate we do not trust fail the same way on every attempt;
    a relay that is down or slow is another matter, which a retry cures.
    """
    if isinstance(err, aiosmtplib.SMTPAuthenticationError):
        return f"the mail server refuses our login: {err.code} {err.message}"
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return f"the mail server's certificate is not trusted: {seen.verify_message}"
        seen = seen.__cause__ or seen.__context__
    return None
