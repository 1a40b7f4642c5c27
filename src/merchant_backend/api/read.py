"""Read side: the synced Stripe objects and the inbox of one merchant and environment."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from merchant_backend.api.auth import merchant_access, runtime
from merchant_backend.api.errors import not_found
from merchant_backend.api.pagination import Limit, StartingAfter, page
from merchant_backend.runtime import Runtime
from merchant_backend.services import events, reads
from merchant_backend.services.reads import ObjectDetail, StoredObject
from merchant_backend.sync.handlers import dispute_funds
from merchant_backend.validation import Env
from merchant_backend.vocabulary import INBOX_STATES

router = APIRouter(prefix="/api/v1/merchants/{merchant_id}/{env}", tags=["synced state"])

EnvPath = Annotated[Env, Path(description="stage (Stripe test mode) or live")]

# URL segment -> projection type
COLLECTIONS = {
    "payment-intents": "payment_intent",
    "customers": "customer",
    "payment-methods": "payment_method",
    "disputes": "dispute",
}


def shown(item: StoredObject) -> dict[str, Any]:
    out = item.as_json()
    if item.object_type == "dispute":
        out["funds"] = dispute_funds(item.data)
    return out


def _with_history(detail: ObjectDetail) -> dict[str, Any]:
    out = shown(detail.item)
    out["history"] = detail.applied
    return out


@router.get("/account")
def get_account(
    env: EnvPath, merchant_id: str = Depends(merchant_access), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    view = reads.account_of(rt, merchant_id, env)
    if view.data_set is None:
        raise not_found(f"no {env} data set for this merchant yet")
    # The data set's account, not whatever account object came last.
    if view.account is None:
        raise not_found(f"no account.updated event received for {view.data_set.account_id} yet")
    return _with_history(view.account)


def _add_collection(segment: str, object_type: str) -> None:
    def list_objects(
        request: Request,
        env: EnvPath,
        limit: Limit = 10,
        starting_after: StartingAfter = None,
        status: Annotated[str | None, Query(max_length=40)] = None,
        customer: Annotated[str | None, Query(max_length=255)] = None,
        merchant_id: str = Depends(merchant_access),
        rt: Runtime = Depends(runtime),
    ) -> dict[str, Any]:
        items, more = reads.list_objects(
            rt,
            merchant_id,
            env,
            object_type,
            limit=limit,
            starting_after=starting_after,
            status=status,
            customer_id=customer,
        )
        return page(request.url.path, [shown(i) for i in items], more)

    def get_object(
        env: EnvPath,
        object_id: Annotated[str, Path(max_length=255)],
        merchant_id: str = Depends(merchant_access),
        rt: Runtime = Depends(runtime),
    ) -> dict[str, Any]:
        detail = reads.object_detail(rt, merchant_id, env, object_type, object_id, waiting=False)
        if detail is None:
            raise not_found(f"no {object_type} {object_id} in {env}")
        return _with_history(detail)

    router.add_api_route(f"/{segment}", list_objects, methods=["GET"], name=f"list_{object_type}s")
    router.add_api_route(
        f"/{segment}/{{object_id}}", get_object, methods=["GET"], name=f"get_{object_type}"
    )


for _segment, _type in COLLECTIONS.items():
    _add_collection(_segment, _type)


@router.get("/events")
def list_events(
    request: Request,
    env: EnvPath,
    limit: Limit = 10,
    starting_after: StartingAfter = None,
    type: Annotated[str | None, Query(max_length=120)] = None,
    state: Annotated[str | None, Query(pattern="^(" + "|".join(INBOX_STATES) + ")$")] = None,
    object_id: Annotated[str | None, Query(max_length=255)] = None,
    merchant_id: str = Depends(merchant_access),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    items, more = reads.list_events(
        rt,
        merchant_id,
        env,
        limit=limit,
        starting_after=starting_after,
        type_=type,
        state=state,
        object_id=object_id,
    )
    return page(request.url.path, [i.as_json() for i in items], more)


@router.get("/events/{evt_id}")
def get_event(
    env: EnvPath,
    evt_id: Annotated[str, Path(max_length=255)],
    merchant_id: str = Depends(merchant_access),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    entry = reads.get_event(rt, merchant_id, env, evt_id)
    if entry is None:
        raise not_found(f"no event {evt_id} in {env}")
    return entry.as_json(with_payload=True)


@router.post("/events/{evt_id}/replay")
def replay_event(
    env: EnvPath,
    evt_id: Annotated[str, Path(max_length=255)],
    merchant_id: str = Depends(merchant_access),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    """Put the event back in line; the worker applies it again (harmless if already applied)."""
    entry = events.replay_event(rt, merchant_id, env, evt_id)
    if entry is None:
        raise not_found(f"no event {evt_id} in {env}")
    return entry.as_json()
