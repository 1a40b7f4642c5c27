"""The Stripe data set of a merchant and environment: show (masked), store, change, delete.

PUT stores the data set (create or replace): the account id and publishable key are the data
set and must be sent; secrets left out keep their stored values (they cannot be read back to
resend). PATCH changes only the fields sent, on a data set that exists. Either way the data
set as it would be after the change is validated as a whole, and a refused change stores
nothing.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Response

from merchant_backend.api.auth import merchant_access, runtime
from merchant_backend.api.errors import ApiError, not_found
from merchant_backend.runtime import Runtime
from merchant_backend.services import datasets as data_sets
from merchant_backend.services.inputs import DataSetBody
from merchant_backend.validation import DataSetInput, Env

router = APIRouter(prefix="/api/v1/merchants/{merchant_id}/stripe", tags=["stripe data sets"])

EnvPath = Annotated[Env, Path(description="stage (Stripe test mode) or live")]


@router.get("/{env}")
def get_data_set(
    env: EnvPath, merchant_id: str = Depends(merchant_access), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    stored = data_sets.get_data_set(rt, merchant_id, env)
    if stored is None:
        raise not_found(f"no {env} data set for this merchant yet")
    return stored.as_json(rt.settings.public_url)


@router.put("/{env}")
def put_data_set(
    env: EnvPath,
    body: DataSetBody,
    merchant_id: str = Depends(merchant_access),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    data = DataSetInput(
        account_id=body.account_id,
        publishable_key=body.publishable_key,
        secret_key=body.secret_key,
        webhook_signing_secret=body.webhook_signing_secret,
    )
    stored = data_sets.save_data_set(rt, merchant_id, env, data)
    return stored.as_json(rt.settings.public_url)


@router.patch("/{env}")
def patch_data_set(
    env: EnvPath,
    body: DataSetBody,
    merchant_id: str = Depends(merchant_access),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    """Change only the fields sent; the others keep their stored values."""
    nulls = [name for name in body.model_fields_set if getattr(body, name) is None]
    if nulls:
        raise ApiError(
            422,
            "invalid_request",
            f"{nulls[0]} is null: leave a field out to keep its stored value",
            nulls[0],
        )
    data = DataSetInput(
        account_id=body.account_id,
        publishable_key=body.publishable_key,
        secret_key=body.secret_key,
        webhook_signing_secret=body.webhook_signing_secret,
    )
    stored = data_sets.change_data_set(rt, merchant_id, env, data)
    return stored.as_json(rt.settings.public_url)


@router.delete("/{env}", status_code=204)
def delete_data_set(
    env: EnvPath, merchant_id: str = Depends(merchant_access), rt: Runtime = Depends(runtime)
) -> Response:
    if not data_sets.delete_data_set(rt, merchant_id, env):
        raise not_found(f"no {env} data set for this merchant")
    return Response(status_code=204)
