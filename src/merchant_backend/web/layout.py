"""What every page's frame needs: the navigation, the environment switch, the CSRF token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from merchant_backend.i18n import N_
from merchant_backend.i18n import gettext as _
from merchant_backend.services.merchants import Merchant
from merchant_backend.services.sessions import WebSession
from merchant_backend.web.session import MerchantPage

SECTIONS: tuple[tuple[str, str], ...] = (
    ("", N_("Overview")),
    ("/stripe", N_("Stripe connection")),
    ("/payments", N_("Payments")),
    ("/disputes", N_("Disputes")),
    ("/customers", N_("Customers")),
    ("/events", N_("Events")),
    ("/notifications", N_("Notifications")),
)
ENV_LABELS = {"stage": N_("Stage"), "live": N_("Live")}


@dataclass(frozen=True)
class Link:
    href: str
    label: str
    current: bool


@dataclass(frozen=True)
class Nav:
    merchant: Merchant
    env: str
    env_label: str
    sections: list[Link]
    envs: list[Link]


def nav_for(mp: MerchantPage, section: str) -> Nav:
    root = f"/m/{mp.merchant.id}"
    return Nav(
        merchant=mp.merchant,
        env=mp.env,
        env_label=_(ENV_LABELS[mp.env]),
        sections=[Link(f"{mp.base}{s}", _(label), s == section) for s, label in SECTIONS],
        envs=[
            Link(f"{root}/{e}{section}", _(label), e == mp.env) for e, label in ENV_LABELS.items()
        ],
    )


def frame(session: WebSession | None, *, title: str, **extra: Any) -> dict[str, Any]:
    """The context of a page without a merchant (sign-in, merchant list, errors)."""
    return {
        "title": title,
        "nav": None,
        "signed_in": session is not None,
        "is_admin": bool(session and session.is_admin),
        "csrf": session.csrf_token if session else "",
        "notice": None,
        **extra,
    }


def merchant_frame(mp: MerchantPage, section: str, *, title: str, **extra: Any) -> dict[str, Any]:
    out = frame(mp.session, title=title)
    out.update(nav=nav_for(mp, section), base=mp.base, env=mp.env, merchant=mp.merchant)
    out.update(extra)
    return out
