"""Sending email through the SMTP server of SMTP_URL (config.py validates it).

`smtps://` connects with TLS from the start (port 465 by default); `smtp://` (port 25 by
default) upgrades with STARTTLS when the server offers it, and never sends a password
over a connection that is not encrypted. A user and password in the URL log in.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage

from ..config import parse_smtp_url

TIMEOUT_S = 10


class MailError(RuntimeError):
    """An email could not be sent; the message says why, without secrets."""


@dataclass(frozen=True)
class SmtpServer:
    """Where and how to send: parsed from SMTP_URL."""

    tls: bool
    host: str
    port: int
    username: str | None
    password: str | None

    @classmethod
    def from_url(cls, url: str) -> SmtpServer:
        """Parse an smtp:// or smtps:// URL (ValueError when it is not one)."""
        return cls(*parse_smtp_url(url))


def send(server: SmtpServer, sender: str, to: str, subject: str, body: str) -> None:
    """Send one plain-text email; MailError when the server cannot be reached or refuses."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    context = ssl.create_default_context()
    try:
        if server.tls:
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                server.host, server.port, timeout=TIMEOUT_S, context=context
            )
        else:
            client = smtplib.SMTP(server.host, server.port, timeout=TIMEOUT_S)
        with client:
            client.ehlo()
            secure = server.tls
            if not secure and client.has_extn("starttls"):
                client.starttls(context=context)
                client.ehlo()
                secure = True
            if server.username:
                if not secure:
                    raise MailError("the SMTP server offers no TLS; not sending the password")
                client.login(server.username, server.password or "")
            client.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise MailError(f"{type(exc).__name__}: {str(exc)[:200]}") from None
