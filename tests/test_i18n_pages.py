"""Every page, rendered in German with data, reads in German.

``test_i18n.py`` checks what can be checked without data: the templates mark their words, and
the catalogue translates every marked message. What a page shows from stored data (a verify
report, a worker's error, a failed delivery, a decline) is only seen with that data in place.
This test fills a merchant with what a working installation has — every lifecycle of the
fixtures, a dead event, a report from a Stripe that did not answer, a destination whose
deliveries fail — then follows every link of the merchant's pages with a German reader and
lists the text that is still English. Text a page keeps in English on purpose (Stripe's own
words, an operating system's error) is marked ``lang="en"``, which also tells a screen reader
to read it in English; identifiers and code are in ``<code>``.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from merchant_backend import clock
from merchant_backend.asgi import create_app
from merchant_backend.errors import UpstreamFailure
from merchant_backend.outbound.dispatcher import Dispatcher
from merchant_backend.runtime import Runtime
from merchant_backend.store import datasets, db
from merchant_backend.stripe.failure_report import failure_report
from merchant_backend.sync.worker import Worker
from tests import stripe_factory as sf
from tests.conftest import ADMIN_TOKEN, MerchantCtx
from tests.foundation_helpers import free_port
from tests.outbound_support import add_destination, allowing_local
from tests.web_support import sign_in
from tests.webhook_support import make_dead, post_ok

# Words that occur in English sentences and never in German ones ("in", "an", "was", "so" and
# "die" are German words too, so they are not here).
ENGLISH = frozenset(
    {
        *("the", "and", "of", "is", "are", "not", "for", "with", "this", "that", "from"),
        *("has", "have", "been", "to", "by", "or", "it", "be", "its", "yet", "no", "none"),
        *("could", "did", "does", "will", "when", "which", "than", "only", "one", "there"),
        *("their", "you", "your"),
    }
)
# What is neither language: product and protocol names, and the languages' own names.
NAMES = frozenset({"English", "Stripe", "Webhook", "Webhooks", "Deutsch", "merchant-backend"})
SKIPPED = frozenset({"script", "style", "code", "kbd", "pre", "svg"})
VOID = frozenset({"br", "hr", "img", "input", "link", "meta", "source", "wbr", "col", "area"})
SHOWN_ATTRIBUTES = ("title", "placeholder", "aria-label", "alt")


class _Text(HTMLParser):
    """The words a German reader is shown, outside ``lang="en"``, code and scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[tuple[str, bool]] = []  # (tag, hidden from this check)
        self.found: list[str] = []

    def _hidden(self) -> bool:
        return bool(self.stack) and self.stack[-1][1]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        hidden = (
            self._hidden()
            or tag in SKIPPED
            or (values.get("lang") or "").startswith("en")
            or (tag == "input" and values.get("type") == "hidden")
        )
        if not hidden:
            for name in SHOWN_ATTRIBUTES:
                if values.get(name):
                    self.found.append(str(values[name]))
            if (
                tag == "input"
                and values.get("type") in ("submit", "button")
                and values.get("value")
            ):
                self.found.append(str(values["value"]))
        if tag not in VOID:
            self.stack.append((tag, hidden))

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            if self.stack.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        if not self._hidden() and data.strip():
            self.found.append(data.strip())


def english_in(html: str) -> list[str]:
    """Text nodes of ``html`` that read as English."""
    parser = _Text()
    parser.feed(html)
    out = []
    for text in parser.found:
        # Identifiers (evt_1Nx…, pi_3…) are not words.
        words = {w for w in re.findall(r"[\w'-]+", text) if w.isalpha()}
        if {w.lower() for w in words} & ENGLISH and not words <= NAMES:
            out.append(text)
    return out


def test_the_check_finds_english_and_passes_what_is_kept_english_on_purpose() -> None:
    assert english_in("<p>Die Zahlung wurde abgelehnt.</p>") == []
    assert english_in("<p>The payment was declined.</p>") == ["The payment was declined."]
    assert (
        english_in('<p>Abgelehnt: <span lang="en">Your card has <b>no</b> funds.</span></p>') == []
    )
    assert english_in("<p><code>the_event</code> <script>var the = 1;</script></p>") == []
    assert english_in('<button title="Send to the shop">Senden</button>') == ["Send to the shop"]


def _fill(web: TestClient, runtime: Runtime, m: MerchantCtx, worker: Worker) -> None:
    """What a working installation has on its pages."""
    # A destination nothing listens at: its deliveries fail, refused.
    add_destination(runtime, m.id, f"http://127.0.0.1:{free_port()}/hook")
    for name in sf.LIFECYCLES:
        for evt in sf.lifecycle(name).events:
            post_ok(web, m.id, evt)
    dead = sf.event("payment_intent.succeeded", sf.obj("payment_intent", status="succeeded"))
    post_ok(web, m.id, dead)
    worker.drain()
    make_dead(runtime.engine, dead["id"])
    Dispatcher(runtime).drain()
    # Stripe did not answer the last verify.
    gone = UpstreamFailure(
        kind="unreachable",
        code="stripe_unreachable",
        message="could not connect to Stripe",
        api_base="https://api.stripe.com",
        operation="account.retrieve",
    )
    with db.write(runtime.engine) as conn:
        datasets.record_verify_report(
            conn, m.id, "stage", failure_report("verify", gone, "stage", clock.now())
        )


# Not pages: the language switch (a redirect), files, the API and its documentation.
NOT_PAGES = ("/language", "/static/", "/api/", "/docs", "/redoc", "/openapi")


def _links(html: str, base: str) -> Iterator[str]:
    for href in re.findall(r'href="([^"]+)"', html):
        href = href.replace("&amp;", "&")
        parts = urlsplit(href)
        if parts.scheme or parts.netloc or not parts.path.startswith(base):
            continue
        if parts.path.startswith(NOT_PAGES):
            continue
        yield parts.path + (f"?{parts.query}" if parts.query else "")


def crawl(
    web: TestClient, start: str, base: str, limit: int = 400
) -> tuple[dict[str, list[str]], set[str]]:
    """English per page, for every page reachable from ``start`` by links under ``base``; and
    the pages visited."""
    seen = {start}
    todo = deque([(start, "")])
    found: dict[str, list[str]] = {}
    while todo and len(seen) <= limit:
        path, came_from = todo.popleft()
        r = web.get(path)
        if r.status_code != 200:
            found.setdefault(path, []).append(f"HTTP {r.status_code} (a link on {came_from})")
        assert r.headers["content-language"] == "de", path
        english = english_in(r.text)
        if english:
            found[path] = english
        for link in _links(r.text, base):
            # One page of each list is enough: the other pages repeat its rows' shape.
            key = re.sub(r"([?&])(cursor|after|before|page)=[^&]*", r"\1", link)
            if key not in seen:
                seen.add(key)
                todo.append((link, path))
    return found, seen


@pytest.fixture
def rt(runtime: Runtime) -> Runtime:
    # Deliveries to a local port, refused at once; Stripe too, without retries.
    return allowing_local(
        runtime, stripe_api_base=f"http://127.0.0.1:{free_port()}", stripe_max_network_retries=0
    )


@pytest.fixture
def web(rt: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(rt, run_worker=False), base_url="https://testserver") as c:
        yield c


def test_every_page_of_a_merchant_with_data_reads_in_german(
    web: TestClient, rt: Runtime, connected: MerchantCtx, worker: Worker
) -> None:
    _fill(web, rt, connected, worker)
    sign_in(web, connected.token)
    web.cookies.set("mb_lang", "de")
    base = f"/m/{connected.id}/"
    found, seen = crawl(web, f"{base}stage", base)
    assert not found, "\n".join(f"{p}: {t!r}" for p, ts in found.items() for t in ts)
    # It saw every kind of page, with data: a page added later is crawled once linked.
    kinds = {
        re.sub(
            r"/(pi|cus|dp|evt|dst|pm|card|acct)_[0-9A-Za-z]+", "/{id}", urlsplit(p).path
        ).removeprefix(base)
        for p in seen
    }
    assert {
        "stage",
        "stage/stripe",
        "stage/payments",
        "stage/payments/{id}",
        "stage/payments/new",
        "stage/customers",
        "stage/customers/{id}",
        "stage/disputes",
        "stage/disputes/{id}",
        "stage/events",
        "stage/events/{id}",
        "stage/notifications",
        "stage/notifications/{id}",
        "live",
        "live/stripe",
    } <= kinds, sorted(kinds)


def test_the_operators_pages_and_the_sign_in_read_in_german(
    web: TestClient, rt: Runtime, connected: MerchantCtx, worker: Worker
) -> None:
    _fill(web, rt, connected, worker)
    web.cookies.set("mb_lang", "de")
    found, _seen = crawl(web, "/sign-in", "/sign-in")
    sign_in(web, ADMIN_TOKEN)
    web.cookies.set("mb_lang", "de")
    more, seen = crawl(web, "/merchants", "/")
    found |= more
    assert not found, "\n".join(f"{p}: {t!r}" for p, ts in found.items() for t in ts)
    assert {"/merchants", "/preferences", f"/m/{connected.id}/stage/notifications"} <= seen


class _Forms(HTMLParser):
    """The POST forms of a page: action and hidden fields."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, dict[str, str]]] = []
        self._open: dict[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form" and (a.get("method") or "").lower() == "post":
            self._open = {}
            self.forms.append((a.get("action") or "", self._open))
        elif tag == "input" and self._open is not None and a.get("type") == "hidden":
            self._open[a.get("name") or ""] = a.get("value") or ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._open = None


def test_every_form_sent_as_it_comes_answers_a_german_reader_in_german(
    web: TestClient, rt: Runtime, connected: MerchantCtx, worker: Worker
) -> None:
    """Each action once, with nothing typed in: what it refuses, and what fails (Stripe cannot
    be reached here), is said in German; only the facts kept in English are marked so."""
    _fill(web, rt, connected, worker)
    sign_in(web, ADMIN_TOKEN)
    web.cookies.set("mb_lang", "de")
    _found, seen = crawl(web, "/merchants", "/")
    forms: dict[str, tuple[str, dict[str, str]]] = {}
    for path in sorted(seen):
        parser = _Forms()
        parser.feed(web.get(path).text)
        for action, fields in parser.forms:
            kind = re.sub(r"/(pi|cus|dp|evt|dst|msg)_[0-9a-f]+", "/{id}", action)
            forms.setdefault(kind, (action, fields))
    # What ends things last: removals, then signing out.
    order = sorted(forms, key=lambda k: ("sign-out" in k, "delete" in k, k))
    found = {}
    for kind in order:
        action, fields = forms[kind]
        r = web.post(action, data=fields)
        assert r.status_code < 500, (kind, r.status_code)
        english = english_in(r.text)
        if english:
            found[kind] = english
    assert not found, "\n".join(f"{k}: {t!r}" for k, ts in found.items() for t in ts)
    assert any(k.endswith("/stripe/verify") for k in forms) and "/sign-out" in forms
