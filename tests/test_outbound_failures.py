"""Why a delivery failed: the English text stored (and shown by the API) is read back as a reason
code, so a page can say it in the reader's language (outbound/failures.py)."""

from __future__ import annotations

import http.client
import socket
import ssl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from merchant_backend.outbound import failures
from merchant_backend.outbound.ssrf import UnsafeDestination
from merchant_backend.store.destinations import DISABLED_BY_USER
from merchant_backend.web import destination_messages
from merchant_backend.web.format import Failure

WRITTEN = [
    (failures.no_answer(10), "no_answer", {"seconds": "10"}, ""),
    (failures.no_answer(2.5), "no_answer", {"seconds": "2.5"}, ""),
    (failures.redirect("https://shop.example/new"), "redirect",
     {"location": "https://shop.example/new"}, ""),
    (failures.network(ConnectionRefusedError(111, "Connection refused")), "connection_refused",
     {}, "ConnectionRefusedError: [Errno 111] Connection refused"),
    (failures.network(socket.gaierror(-2, "Name or service not known")), "dns", {},
     "gaierror: [Errno -2] Name or service not known"),
    (failures.network(ssl.SSLCertVerificationError(1, "certificate verify failed")), "tls", {},
     "SSLCertVerificationError: certificate verify failed"),
    (failures.network(ssl.SSLError(1, "wrong version number")), "tls", {},
     "SSLError: wrong version number"),
    (failures.network(http.client.RemoteDisconnected("Remote end closed connection")),
     "disconnected", {}, "RemoteDisconnected: Remote end closed connection"),
    (failures.network(ConnectionResetError(104, "Connection reset by peer")), "disconnected",
     {}, "ConnectionResetError: [Errno 104] Connection reset by peer"),
    (failures.network(http.client.BadStatusLine("HTTP/9")), "bad_answer", {},
     "BadStatusLine: HTTP/9"),
    (failures.network(OSError(101, "Network is unreachable")), "unreachable", {},
     "OSError: [Errno 101] Network is unreachable"),
    (failures.refused(UnsafeDestination("loopback", host="localhost", address="127.0.0.1")),
     "refused", {"refusal": "loopback", "host": "localhost", "address": "127.0.0.1"}, ""),
    (failures.refused(UnsafeDestination("unresolved_because", host="a.b", detail="no: x")),
     "refused", {"refusal": "unresolved_because", "host": "a.b", "detail": "no: x"}, ""),
    (failures.refused(UnsafeDestination("scheme")), "refused", {"refusal": "scheme"}, ""),
    (failures.refused("a refusal written before reason codes"), "refused", {},
     "a refusal written before reason codes"),
    (failures.secret_unreadable("no key decrypts it"), "secret_unreadable", {},
     "no key decrypts it"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "code", "values", "detail"), WRITTEN)
def test_what_is_written_is_read_back_as_its_reason(
    text: str, code: str, values: dict[str, str], detail: str
) -> None:
    assert failures.reason_of(text) == failures.Reason(code, values, detail)
    # Every reason has its sentence on the pages (and so in the German catalogue).
    assert code in destination_messages.FAILURES


@pytest.mark.parametrize(
    "text",
    ["BlockingIOError: [Errno 11] try again", "boom", "", "refusedX", "HTTP 500"],
)
def test_a_text_it_does_not_know_is_kept_as_it_is(text: str) -> None:
    assert failures.reason_of(text) == failures.Reason("other", {}, text)


@given(st.text())
def test_reading_never_fails_and_never_loses_the_text(text: str) -> None:
    reason = failures.reason_of(text)
    assert reason.code in destination_messages.FAILURES or reason.code == "other"
    # Whatever the sentence says, the page can still show every word that was stored.
    assert reason.detail == text or reason.code in ("no_answer", "redirect", "refused",
                                                    "secret_unreadable")  # fmt: skip


def test_why_a_destination_was_switched_off() -> None:
    auto = failures.auto_disabled(3, failures.no_answer(10))
    assert auto == "every delivery failed for 3 days; last: TimeoutError: no answer within 10 s"
    assert failures.disabled_reason_of(auto) == failures.Reason(
        "auto_disabled", {"days": "3", "last": failures.no_answer(10)}
    )
    assert failures.disabled_reason_of(DISABLED_BY_USER).code == "disabled_by_user"
    written = "moving to a new server until Monday"
    assert failures.disabled_reason_of(written) == failures.Reason("other", {}, written)


def test_the_page_says_it_in_the_readers_language() -> None:
    from merchant_backend import i18n

    refused = failures.network(ConnectionRefusedError(111, "Connection refused"))
    with i18n.use(i18n.Reader("de")):
        said = destination_messages.attempt_failure(refused)
        off = destination_messages.disabled_reason(failures.auto_disabled(3, refused))
    assert said.summary.startswith("Verbindung abgelehnt")
    assert said.detail == refused  # the operating system's words, as they were
    assert off.summary.startswith("jede Zustellung schlug 3 Tage lang fehl; zuletzt: Verbindung")
    assert off.detail == refused
    loopback = UnsafeDestination("loopback", host="localhost", address="127.0.0.1")
    with i18n.use(i18n.Reader("de")):
        said = destination_messages.attempt_failure(failures.refused(loopback))
    assert said == Failure(
        "von der Adressprüfung abgelehnt: localhost wird zu 127.0.0.1 aufgelöst, einer "
        "Loopback-Adresse"
    )
    english = destination_messages.attempt_failure(failures.no_answer(10))
    assert english == Failure("no answer within 10 s")
