"""Input models shared by the adapters: the API reads them from JSON, the web pages from forms.

Pydantic models, so both apply the same limits and patterns; the CLI checks its own options.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints


class MerchantCreate(BaseModel):
    # Stripped before the length check, so "   " is refused rather than stored as "".
    # No NUL (PostgreSQL text cannot hold it) and no line break (it would forge a line
    # wherever the name is printed) (issue 9).
    name: Annotated[
        str,
        StringConstraints(
            strip_whitespace=True, min_length=1, max_length=200, pattern=r"^[^\x00\r\n]+$"
        ),
    ]


class DataSetBody(BaseModel):
    """Secrets may be left out to keep the stored ones (only the first save needs the key)."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    account_id: str | None = None
    publishable_key: str | None = None
    secret_key: str | None = None
    webhook_signing_secret: str | None = None


class PaymentIntentBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: int = Field(ge=1, le=99_999_999, description="in the currency's smallest unit")
    currency: str = Field(pattern=r"^[A-Za-z]{3}$", description="ISO code, e.g. usd")
    customer: str | None = Field(default=None, max_length=255, pattern=r"^cus_[A-Za-z0-9]+$")
    payment_method: str | None = Field(default=None, max_length=255, pattern=r"^pm_[A-Za-z0-9_]+$")
    capture_method: Literal["automatic", "automatic_async", "manual"] | None = None
    description: str | None = Field(default=None, max_length=1000)
    metadata: (
        dict[Annotated[str, Field(max_length=40)], Annotated[str, Field(max_length=500)]] | None
    ) = Field(default=None, max_length=50)
    confirm: bool = False


class CaptureBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount_to_capture: int | None = Field(default=None, ge=1, le=99_999_999)


class CancelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cancellation_reason: (
        Literal["duplicate", "fraudulent", "requested_by_customer", "abandoned"] | None
    ) = None
