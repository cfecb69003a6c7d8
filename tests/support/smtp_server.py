#!/usr/bin/env python3
"""A real SMTP server for stowage's tests: aiosmtpd (Debian's python3-aiosmtpd), configured
for one of the three ways stowage connects, delivering into a Maildir.

    smtp_server.py --port P --maildir DIR [--security starttls|tls|none]
                   [--cert PEM --key PEM] [--login USER --password PW]

starttls: STARTTLS is offered and required before MAIL; tls: TLS from the first byte (SMTPS);
none: plain. With --login, AUTH is required and only that login and password are accepted.
Each accepted or refused login is printed on stdout (`auth ok USER`, `auth refused USER`).
"""
import argparse
import os
import ssl
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--maildir", required=True)
    p.add_argument("--security", choices=["starttls", "tls", "none"], default="none")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--login")
    p.add_argument("--password")
    a = p.parse_args()

    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(a.maildir, sub), exist_ok=True)
    kwargs = {}
    ssl_context = None
    if a.security != "none":
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(a.cert, a.key)
        if a.security == "starttls":
            kwargs.update(tls_context=ctx, require_starttls=True)
        else:
            ssl_context = ctx
    if a.login:
        def authenticator(server, session, envelope, mechanism, data):
            login = data.login.decode()
            ok = login == a.login and data.password.decode() == a.password
            print(f"auth {'ok' if ok else 'refused'} {login}", flush=True)
            # handled=False: aiosmtpd then answers 235 or 535 itself.
            return AuthResult(success=ok, handled=False)

        kwargs.update(authenticator=authenticator, auth_required=True)
        # SMTPS is TLS from the first byte; aiosmtpd only knows about STARTTLS here.
        kwargs.update(auth_require_tls=a.security == "starttls")

    controller = Controller(
        Mailbox(a.maildir), hostname="127.0.0.1", port=a.port, ssl_context=ssl_context,
        server_hostname="localhost", **kwargs,
    )
    controller.start()
    print("listening", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        controller.stop()


if __name__ == "__main__":
    sys.exit(main())
