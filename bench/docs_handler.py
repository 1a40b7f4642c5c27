"""What a user would otherwise run: the webhook handler from Stripe's docs, on the same server.

Stripe's quickstart reads the body, calls ``stripe.Webhook.construct_event`` with the
``Stripe-Signature`` header and the endpoint secret, handles the event and returns 200. Written
here that way for FastAPI (``async def``, the body awaited, the rest as in the docs), with the
one thing a careful user adds: the event is stored before the 200 (insert, commit) in SQLite
with the same durability as ours (WAL, ``synchronous=FULL``; SQLite's default rollback journal
would be slower still). Served by uvicorn with ``serve``'s options.

``python -m bench.docs_handler --port P`` with ``STRIPE_WEBHOOK_SECRET`` and
``DOCS_HANDLER_DB`` (a file path) set.
"""

from __future__ import annotations

import argparse
import os
import sqlite3

import stripe
import uvicorn
from fastapi import FastAPI, HTTPException, Request

from merchant_backend.cli import uvicorn_options

endpoint_secret = os.environ.get("STRIPE_WEBHOOK_SECRET", "")
db = sqlite3.connect(os.environ.get("DOCS_HANDLER_DB", "docs-handler.db"))
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA synchronous=FULL")
db.execute("CREATE TABLE IF NOT EXISTS stripe_events (id TEXT PRIMARY KEY, type TEXT, body TEXT)")
db.commit()

app = FastAPI()


@app.post("/webhook")
async def webhook(request: Request) -> dict[str, bool]:
    payload = await request.body()
    sig_header = request.headers.get("stripe-signature")
    try:
        event = stripe.Webhook.construct_event(payload, sig_header, endpoint_secret)
    except ValueError:
        raise HTTPException(status_code=400, detail="Invalid payload") from None
    except stripe.SignatureVerificationError:
        raise HTTPException(status_code=400, detail="Invalid signature") from None
    db.execute(
        "INSERT OR IGNORE INTO stripe_events (id, type, body) VALUES (?, ?, ?)",
        (event.id, event.type, payload.decode()),
    )
    db.commit()
    return {"success": True}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, **uvicorn_options())


if __name__ == "__main__":
    main()
