"""The pages in English and German (issue 12): the catalogue is complete, the language and time
zone are chosen as documented, and amounts and times follow them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from fastapi.testclient import TestClient

from merchant_backend import i18n
from merchant_backend.runtime import Runtime
from merchant_backend.settings import Settings
from merchant_backend.sync.worker import Worker
from tests import stripe_factory as sf
from tests.conftest import MerchantCtx
from tests.fake_stripe import FakeStripe
from tests.stripe_helpers import aimed_at
from tests.web_support import hidden, sign_in
from tests.webhook_support import post_ok

ROOT = Path(__file__).resolve().parents[1]
PLACEHOLDER = re.compile(r"%\((\w+)\)s")
TAG = re.compile(r"</?[a-z]+[^>]*>")


def _extracted() -> dict[str | tuple[str, ...], str]:
    """Every marked message in the code and templates (as ``make messages`` extracts them)."""
    with (ROOT / "babel.cfg").open() as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    found: dict[str | tuple[str, ...], str] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords={**DEFAULT_KEYWORDS, "_t": None}
    ):
        key = tuple(message) if isinstance(message, list | tuple) else message
        if key:
            found.setdefault(key, f"{filename}:{lineno}")
    return found


def test_every_marked_message_has_a_german_translation() -> None:
    """Fails when a string in a template or a marked Python message is missing from the German
    catalogue (or only fuzzy): run ``make messages`` and translate the new entries."""
    extracted = _extracted()
    assert len(extracted) > 250  # the templates and the marked Python messages
    with i18n.catalogue_path("de").open("rb") as po:
        catalogue = read_po(po, locale="de")
    problems = []
    for key, where in sorted(extracted.items(), key=lambda kv: str(kv[0])):
        msgid = key[0] if isinstance(key, tuple) else key
        entry = catalogue.get(msgid)
        strings = (
            [] if entry is None else list(entry.string) if entry.pluralizable else [entry.string]
        )
        if entry is None or entry.fuzzy or not all(strings):
            problems.append(f"{where}: {msgid!r} has no German translation")
            continue
        ids = list(key) if isinstance(key, tuple) else [key]
        for text in strings:
            if set(PLACEHOLDER.findall(text)) != set(PLACEHOLDER.findall(ids[-1])):
                problems.append(f"{where}: {msgid!r}: placeholders differ in {text!r}")
            if sorted(TAG.findall(text)) != sorted(TAG.findall(ids[0])):
                problems.append(f"{where}: {msgid!r}: HTML tags differ in {text!r}")
    assert not problems, "\n".join(problems)


def test_the_german_catalogue_is_read_from_the_po_file_at_start_up() -> None:
    german = i18n.translations("de")
    assert german.gettext("Payments") == "Zahlungen"
    assert german.ngettext("Please fix this:", "Please fix these:", 2) == (
        "Bitte korrigieren Sie diese Punkte:"
    )
    assert i18n.translations("en").gettext("Payments") == "Payments"
    with i18n.use(i18n.Reader("de")):
        assert i18n.gettext("New payment") == "Neue Zahlung"
    assert i18n.gettext("New payment") == "New payment"  # outside a request: English


@pytest.mark.parametrize(
    ("header", "language"),
    [
        ("de-DE,de;q=0.9,en;q=0.8", "de"),
        ("en-US,en;q=0.9,de;q=0.8", "en"),
        ("fr-FR,fr;q=0.9,de;q=0.5", "de"),  # French is not offered; German is asked for
        ("fr-FR,fr;q=0.9", "en"),
        ("de;q=0.2, en;q=0.7", "en"),  # q order, not written order
        ("de;q=0", "en"),  # q=0: not wanted
        ("*", "en"),
        ("", "en"),
        (None, "en"),
        ("de;q=abc, xx-" + "y" * 600, "en"),  # nonsense is ignored
    ],
)
def test_the_language_follows_accept_language(header: str | None, language: str) -> None:
    assert i18n.negotiate(None, header) == language


def test_the_switch_wins_over_the_browser_and_only_our_languages_count() -> None:
    assert i18n.negotiate("en", "de-DE") == "en"
    assert i18n.negotiate("de", "en") == "de"
    assert i18n.negotiate("fr", "de") == "de"


def test_only_known_time_zones_are_used() -> None:
    assert i18n.valid_zone("Europe/Berlin") == "Europe/Berlin"
    for bad in ("", None, "Mars/Olympus", "../../etc/passwd", "Europe/Berlin" * 10):
        assert i18n.valid_zone(bad) is None
    assert i18n.zone_names()[0] == "UTC" and "Europe/Berlin" in i18n.zone_names()


# ----------------------------------------------------------------------------- the pages


@pytest.fixture
def settings(settings: Settings, fake: FakeStripe) -> Settings:
    return aimed_at(settings, fake.url)


@pytest.fixture
def web(app: Any) -> Iterator[TestClient]:
    with TestClient(app, base_url="https://testserver") as c:
        yield c


def test_pages_follow_accept_language_and_say_which_language_they_are_in(
    web: TestClient, stage: MerchantCtx
) -> None:
    german = web.get("/sign-in", headers={"Accept-Language": "de-DE,de;q=0.9"})
    assert german.headers["content-language"] == "de"
    assert '<html lang="de">' in german.text and "<h1>Anmelden</h1>" in german.text
    assert "Accept-Language" in german.headers["vary"]
    english = web.get("/sign-in", headers={"Accept-Language": "en-GB"})
    assert '<html lang="en">' in english.text and "<h1>Sign in</h1>" in english.text


def test_the_language_switch_is_remembered_and_goes_back_to_the_same_page(
    web: TestClient, stage: MerchantCtx
) -> None:
    sign_in(web, stage.token)
    page = f"/m/{stage.id}/stage/payments?status=succeeded"
    r = web.get(
        "/language?set=de",
        headers={"Referer": f"https://testserver{page}"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == page
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("mb_lang=de;") and "SameSite=strict" in cookie
    assert "Secure" in cookie and "HttpOnly" in cookie
    shown = web.get(page, headers={"Accept-Language": "en"})  # the switch wins
    assert "<h1>Zahlungen" in shown.text and 'aria-current="true">Deutsch<' in shown.text
    # Back to English; a Referer from another site or an unknown language goes nowhere else.
    r = web.get("/language?set=en", headers={"Referer": "https://evil.example/x"})
    assert r.url.path == "/" or r.url.path.startswith("/m/")
    assert "<h1>Overview" in web.get(f"/m/{stage.id}/stage").text
    r = web.get("/language?set=xx", follow_redirects=False)
    assert r.status_code == 303 and "set-cookie" not in r.headers


def test_times_follow_the_browsers_zone_a_chosen_zone_wins_and_utc_is_the_default(
    web: TestClient, stage: MerchantCtx
) -> None:
    sign_in(web, stage.token)
    page = "/preferences"
    assert "Times in UTC" in web.get(page).text
    web.cookies.set("mb_tz", "Europe/Berlin")  # what /static/app.js writes
    assert "Times in Europe/Berlin" in web.get(page).text
    web.cookies.set("mb_tz", "Not/AZone")
    assert "Times in UTC" in web.get(page).text
    form = web.get(page).text
    assert '<option value="America/New_York">' in form and 'name="back"' in form
    r = web.get(page, params={"zone": "Asia/Tokyo", "back": "/sign-in"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/sign-in"
    assert r.headers["set-cookie"].startswith('mb_tz_chosen="Asia/Tokyo";')
    web.cookies.set("mb_tz_chosen", "Asia/Tokyo")
    web.cookies.set("mb_tz", "Europe/Berlin")
    assert "Times in Asia/Tokyo" in web.get(page).text
    r = web.get(page, params={"zone": "browser", "back": "//evil.example"}, follow_redirects=False)
    assert r.headers["location"] == "/" and 'mb_tz_chosen=""' in r.headers["set-cookie"]


# ----------------------------------------------------------------------------- new payment


def _german_payment(web: TestClient, m: MerchantCtx, amount: str, currency: str = "eur") -> Any:
    web.cookies.set("mb_lang", "de")
    path = f"/m/{m.id}/stage/payments/new"
    form = web.get(path).text
    data = {
        "csrf_token": hidden(form, "csrf_token"),
        "idempotency_key": hidden(form, "idempotency_key"),
        "amount": amount,
        "currency": currency,
        "payment_method": "pm_card_visa",
        "capture_method": "automatic",
    }
    return web.post(path, data=data, follow_redirects=False)


@pytest.mark.parametrize(
    ("typed", "shown"), [("12,50", "12,50\u00a0€"), ("1.250,00", "1.250,00\u00a0€")]
)
def test_the_german_page_reads_german_amounts_and_shows_them_before_charging(
    web: TestClient, fake: FakeStripe, stage: MerchantCtx, typed: str, shown: str
) -> None:
    sign_in(web, stage.token)
    r = _german_payment(web, stage, typed)
    assert r.status_code == 200, r.text
    assert f'id="charged-amount">{shown}<' in r.text
    assert f"{shown} belasten" in r.text and "Zahlung bestätigen" in r.text
    assert fake.requests == []


def test_the_german_page_refuses_an_english_thousands_amount_and_says_how_to_write_it(
    web: TestClient, fake: FakeStripe, stage: MerchantCtx
) -> None:
    sign_in(web, stage.token)
    r = _german_payment(web, stage, "1,250")
    assert r.status_code == 422
    error = r.text.split('id="f-amount-error">')[1].split("</p>")[0]
    assert error == (
        "„1,250“ kann 1,25\u00a0€ oder 1.250,00\u00a0€ bedeuten. Schreiben Sie 1,25 für das "
        "eine oder 1.250,00 für das andere."
    )
    assert "Es wurde nichts an Stripe gesendet." in r.text
    assert fake.requests == []


def test_the_german_page_refuses_a_three_decimal_amount_that_reads_two_ways(
    web: TestClient, fake: FakeStripe, stage: MerchantCtx
) -> None:
    """``1,250`` KWD was read as 1.250 KWD and confirmed as ``1,250 KWD``: the string a
    person who meant one thousand two hundred fifty had typed."""
    sign_in(web, stage.token)
    r = _german_payment(web, stage, "1,250", "kwd")
    assert r.status_code == 422
    error = r.text.split('id="f-amount-error">')[1].split("</p>")[0]
    assert error == (
        "„1,250“ kann 1,25\u00a0KWD oder 1.250,00\u00a0KWD bedeuten. Schreiben Sie 1,25 für "
        "das eine oder 1.250,00 für das andere."
    )
    assert fake.requests == []


@pytest.mark.parametrize(
    ("typed", "shown"),
    [("1,25", "1,25\u00a0KWD"), ("0,250", "0,25\u00a0KWD"), ("1.250,000", "1.250,00\u00a0KWD")],
)
def test_the_german_page_confirms_a_three_decimal_amount_in_a_form_that_reads_one_way(
    web: TestClient, fake: FakeStripe, stage: MerchantCtx, typed: str, shown: str
) -> None:
    sign_in(web, stage.token)
    r = _german_payment(web, stage, typed, "kwd")
    assert r.status_code == 200, r.text
    assert f'id="charged-amount">{shown}<' in r.text and f"{shown} belasten" in r.text
    assert fake.requests == []


# Text in a template that is not marked for translation: what a person reads (words between
# tags, and the attributes a person reads or hears) outside {% trans %} and _().
_READ_ATTRIBUTES = re.compile(r'\b(?:aria-label|placeholder|title|alt|data-busy)="([^"]*)"')
_NOT_WORDS = {
    "merchant-backend",
    "· merchant-backend",
    "pm_…",
    "cus_…",
    "pi_…, dp_…, cus_…",
    "whsec_…",
    "UTC",
}


def _unmarked(source: str) -> list[str]:
    text = re.sub(r"{%-?\s*trans\b.*?{%-?\s*endtrans\s*-?%}", "", source, flags=re.S)
    text = re.sub(r"{#.*?#}", "", text, flags=re.S)
    text = re.sub(r"{{.*?}}|{%.*?%}", "\x00", text, flags=re.S)  # expressions and tags
    found = [a.strip() for a in _READ_ATTRIBUTES.findall(text) if a.strip("\x00 ")]
    for words in re.split(r"<[^>]*>", text):
        words = words.replace("\x00", " ").strip()
        if re.search(r"[A-Za-z]{2,}", words):
            found.append(words)
    return found


def test_no_template_shows_text_that_is_not_marked_for_translation() -> None:
    """Words a person reads must go through gettext, else a German page shows English."""
    assert _unmarked('<p title="Hi">Hello {{ x }}</p>') == ["Hi", "Hello"]  # the check works
    assert _unmarked('<p>{% trans %}Hello{% endtrans %} {{ _("World") }}</p>') == []
    problems = {}
    for path in sorted((ROOT / "src/merchant_backend/web/templates").glob("*.html")):
        left = [t for t in _unmarked(path.read_text()) if t not in _NOT_WORDS]
        if left:
            problems[path.name] = left
    assert not problems, problems


def test_field_messages_of_the_data_set_form_are_german_on_a_german_page_only(
    web: TestClient, stage: MerchantCtx
) -> None:
    from tests.web_support import csrf_of

    sign_in(web, stage.token)
    page = f"/m/{stage.id}/stage/stripe"
    bad = {"account_id": "pk_test_" + "a" * 24, "publishable_key": "", "secret_key": ""}
    web.cookies.set("mb_lang", "de")
    german = web.post(page, data={**bad, "csrf_token": csrf_of(web, page)})
    assert german.status_code == 422
    assert (
        "Das ist ein veröffentlichbarer Schlüssel (pk_…), nicht die Konto-ID: Die Konto-ID "
        "beginnt mit acct_; Sie finden sie unter Stripe → Zahnrad → Profil → Konten"
    ) in german.text
    assert "Konto-ID" in german.text and "Veröffentlichbarer Schlüssel" in german.text
    web.cookies.set("mb_lang", "en")
    english = web.post(page, data={**bad, "csrf_token": csrf_of(web, page)})
    assert (
        "this is a publishable key (pk_…), not the account id: the account id starts with "
        "acct_; find it under Stripe → gear → Profile → Accounts"
    ) in english.text


def test_titles_notices_and_field_messages_made_in_python_are_german_too(
    web: TestClient, fake: FakeStripe, stage: MerchantCtx
) -> None:
    sign_in(web, stage.token)
    web.cookies.set("mb_lang", "de")
    payments = web.get(f"/m/{stage.id}/stage/payments").text
    assert "<title>Zahlungen · stage · merchant-backend</title>" in payments
    path = f"/m/{stage.id}/stage/payments/new"
    form = web.get(path).text
    r = web.post(
        path,
        data={
            "csrf_token": hidden(form, "csrf_token"),
            "idempotency_key": hidden(form, "idempotency_key"),
            "amount": "12,50",
            "currency": "dollars",
        },
    )
    assert r.status_code == 422
    assert "Geben Sie einen dreibuchstabigen Währungscode ein, z. B. usd oder eur." in r.text
    r = web.post(
        path,
        data={
            "csrf_token": hidden(form, "csrf_token"),
            "idempotency_key": hidden(form, "idempotency_key"),
            "amount": "12,50",
            "currency": "xyz",
        },
    )
    assert "Stripe führt XYZ nicht" in r.text
    csrf = hidden(payments, "csrf_token")
    out = web.post("/sign-out", data={"csrf_token": csrf})
    assert "Sie sind abgemeldet." in out.text


# ----------------------------------------------------------------------------- notifications


def test_every_destination_refusal_reads_in_german_with_its_values() -> None:
    """The refusals are marked where ``ssrf`` and ``services.notifications`` write them (so a
    new one lands in the catalogue); on a German page each reads in German, values kept."""
    from merchant_backend.web import destination_messages

    values = {"host": "h.example", "address": "10.0.0.5", "detail": "boom", "unknown": "x"}
    values |= {"known": "customer", "max": "16"}
    for reason, english in destination_messages.MESSAGES.items():
        with i18n.use(i18n.Reader("de")):
            german = i18n.gettext(english) % values
        assert german != english % values, reason
        assert all(v in german for k, v in values.items() if f"%({k})s" in english), reason


def _add_destination(web: TestClient, path: str, url: str) -> Any:
    form = web.get(path).text
    data = {
        "csrf_token": hidden(form, "csrf_token"),
        "form_nonce": hidden(form, "form_nonce"),
        "url": url,
        "object_types": ["payment_intent"],
    }
    return web.post(path, data=data, follow_redirects=False)


def _url_error(html: str) -> str:
    return html.split('id="f-url-error">')[1].split("</p>")[0]


@pytest.mark.parametrize(
    ("env", "url", "resolved", "german", "english"),
    [
        (
            "stage",
            "ftp://hooks.example/x",
            "93.184.216.34",
            "Die URL muss mit https:// beginnen",
            "the URL must start with https://",
        ),
        (
            "live",
            "http://hooks.example/x",
            "93.184.216.34",
            "Ein Live-Ziel muss https:// verwenden",
            "a live destination must use https://",
        ),
        (
            "stage",
            "https://hooks.example/x",
            "10.0.0.5",
            "hooks.example wird zu 10.0.0.5 aufgelöst, einer privaten Adresse",
            "hooks.example resolves to 10.0.0.5 is a private address",
        ),
    ],
)
def test_a_refused_destination_url_is_explained_in_the_pages_language_and_nothing_is_added(
    web: TestClient,
    runtime: Any,
    stage: MerchantCtx,
    monkeypatch: pytest.MonkeyPatch,
    env: str,
    url: str,
    resolved: str,
    german: str,
    english: str,
) -> None:
    from merchant_backend.outbound import ssrf
    from merchant_backend.services import notifications
    from tests.conftest import add_data_set

    monkeypatch.setattr(ssrf, "resolve_host", lambda host, port: [resolved])
    if env == "live":
        add_data_set(runtime, stage.id, "live")
    sign_in(web, stage.token)
    path = f"/m/{stage.id}/{env}/notifications"
    web.cookies.set("mb_lang", "de")
    r = _add_destination(web, path, url)
    assert r.status_code == 422
    assert _url_error(r.text) == german
    assert "Es wurde nichts hinzugefügt." in r.text and f">{german}</a>" in r.text  # the summary
    assert english not in r.text
    web.cookies.set("mb_lang", "en")
    r = _add_destination(web, path, url)
    assert r.status_code == 422 and _url_error(r.text) == english
    assert notifications.list_destinations(runtime, stage.id, env) == []


def test_the_events_page_says_states_and_sources_in_german(
    web: TestClient, stage: MerchantCtx, worker: Worker
) -> None:
    evt = sf.event("payment_intent.created", sf.obj("payment_intent"))
    post_ok(web, stage.id, evt)
    worker.drain()
    sign_in(web, stage.token)
    web.cookies.set("mb_lang", "de")
    listed = web.get(f"/m/{stage.id}/stage/events").text
    assert '<option value="applied">angewendet</option>' in listed  # the state filter
    assert '<span class="small muted">Webhook</span>' in listed
    shown = web.get(f"/m/{stage.id}/stage/events/{evt['id']}").text
    assert "über Webhook" in shown


def test_the_verify_report_reads_in_german_on_the_pages(
    web: TestClient, stage: MerchantCtx, runtime: Runtime, fake: FakeStripe
) -> None:
    """The checks' messages, the report's summary and the health on the overview; the API
    keeps the English (web/verify_messages.py, stripe/verify.py)."""
    from tests.stripe_helpers import verify_connection

    # The key works and belongs to the account; no endpoint sends to our URL.
    report = verify_connection(runtime, stage.id, "stage")
    assert report["status"] == "failed"
    assert report["summary"].startswith("1 of 5 checks failed (webhook_endpoint): no webhook")
    sign_in(web, stage.token)
    web.cookies.set("mb_lang", "de")
    page = web.get(f"/m/{stage.id}/stage/stripe").text
    assert "Stripe hat den geheimen Schlüssel sk_test_…4242 angenommen" in page
    assert "die Schlüssel gehören zum Test-Modus, wie stage es verlangt" in page
    summary = "1 von 5 Prüfungen fehlgeschlagen (Webhook-Endpunkt): kein Webhook-Endpunkt sendet an"
    assert summary in page
    assert "Lassen Sie ihn von uns anlegen" in page
    assert "checks failed" not in page and "Stripe accepted" not in page
    overview = web.get(f"/m/{stage.id}/stage").text
    assert summary in overview


def _refusals() -> list[tuple[str | None, dict[str, Any], str]]:
    """(template, values, English message) of each refusal the pages translate, made as the
    code makes it for the API (the marked templates are in the catalogue: see above)."""
    from merchant_backend.errors import Conflict
    from merchant_backend.services import once
    from merchant_backend.store import inbox, reconcile_state
    from merchant_backend.stripe.provision import live_url_problem

    lease = reconcile_state.Lease("o", "the CLI (host 7)", 1_790_000_000, 1_790_000_300)
    errors = [
        reconcile_state.already_running("mer_1", "live", lease),
        inbox.EventPruned.of(inbox.PRUNED, {"event_id": "evt_1"}),  # as inbox.replay does
        Conflict.of(once.FORM_IN_FLIGHT),  # as once.earlier does
    ]
    found = [(e.template, e.values, e.message) for e in errors]
    for url in ("http://shop.example/x", "https://localhost/x", "https://10.0.0.7/x"):
        problem = live_url_problem(url)
        assert problem is not None
        found.append((problem.template, problem.values, problem.message))
    return found


def test_refusals_read_on_an_english_page_as_the_api_says_them_and_in_german_on_a_german_one() -> (
    None
):
    from merchant_backend.web import domain_messages

    for template, values, message in _refusals():
        assert template is not None
        with i18n.use(i18n.Reader("en")):
            assert domain_messages.said(template, values, message) == message
        with i18n.use(i18n.Reader("de")):
            german = domain_messages.said(template, values, message)
        assert german != message and all(str(v) in german for v in values.values()), german
    # Without a template, the English message as it is.
    with i18n.use(i18n.Reader("de")):
        assert domain_messages.said(None, {}, "as the API says it") == "as the API says it"


def test_a_live_webhook_refused_for_a_local_url_is_explained_in_german(
    runtime: Runtime, connected: MerchantCtx
) -> None:
    from merchant_backend.asgi import create_app
    from tests.web_support import csrf_of

    local = runtime.settings.model_copy(update={"public_url": "http://127.0.0.1:8000"})
    app = create_app(Runtime(local, engine=runtime.engine), run_worker=False)
    with TestClient(app) as web:
        sign_in(web, connected.token)
        web.cookies.set("mb_lang", "de")
        path = f"/m/{connected.id}/live/stripe"
        r = web.post(f"{path}/webhook", data={"csrf_token": csrf_of(web, path)})
    assert r.status_code == 200 and r.url.path == path  # after the redirect
    assert "Live-Webhooks brauchen eine HTTPS-Adresse" in r.text
    assert "live webhooks need" not in r.text
