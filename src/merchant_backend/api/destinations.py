"""Outbound destinations and the change feed (docs/outbound.md).

A merchant's own: ``/api/v1/merchants/{merchant_id}/{env}/destinations…`` (its token or the
admin token). The operator's installation-wide ones, which receive every merchant's changes:
``/api/v1/destinations…?env=ENV`` (admin token). The same verbs on both. The feed:
``/api/v1/merchants/{merchant_id}/{env}/changes``.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from merchant_backend.api.auth import admin, merchant_access, runtime
from merchant_backend.api.errors import not_found
from merchant_backend.runtime import Runtime
from merchant_backend.services import notifications
from merchant_backend.services.access import Principal
from merchant_backend.validation import Env

EnvPath = Annotated[Env, Path(description="stage (Stripe test mode) or live")]
EnvQuery = Annotated[Env, Query(description="stage (Stripe test mode) or live")]
DestinationId = Annotated[str, Path(max_length=40, description="dst_…")]

merchant_router = APIRouter(
    prefix="/api/v1/merchants/{merchant_id}/{env}", tags=["outbound notifications"]
)
admin_router = APIRouter(prefix="/api/v1/destinations", tags=["outbound notifications"])

T = TypeVar("T")


# --- Shapes, for the OpenAPI document (the handlers return the use cases' as_json()) ---


class Cause(BaseModel):
    event_id: str = Field(description="the Stripe event that caused the change (evt_…)")
    event_type: str
    event_created: int = Field(description="Stripe's created, unix seconds")


class MessageData(BaseModel):
    object: dict[str, Any] | None = Field(
        description="the Stripe object as synced (what the read API returns under 'object'); "
        "null for a test message"
    )
    previous_status: str | None = Field(description="the status it replaced, where it has one")
    cause: Cause | None = Field(description="null when the change is our own Stripe call's answer")
    destination_id: str | None = Field(default=None, description="test messages only")


class Message(BaseModel):
    """An outbound message: pushed (signed per Standard Webhooks) and listed by the feed."""

    id: str = Field(description="msg_…; the webhook-id header, the same on every retry")
    type: str = Field(description="<object_type>.changed, or test")
    merchant_id: str | None
    env: str
    sequence: int = Field(description="grows per merchant and environment; 0 for test messages")
    created: int = Field(description="when the change was committed, unix seconds")
    data: MessageData


class ChangesPage(BaseModel):
    data: list[Message]
    has_more: bool
    next_cursor: str = Field(description="pass as 'after' for the next page")


class DestinationShape(BaseModel):
    id: str
    merchant_id: str | None = Field(description="null: installation-wide (the operator's)")
    env: str
    url: str
    description: str
    object_types: list[str]
    enabled: bool
    disabled_reason: str | None
    secret_hint: str
    failing_since: int | None = Field(description="first failure since the last success")
    last_success_at: int | None
    created: int
    updated: int
    deliveries: dict[str, int] = Field(description="count per state")


class DestinationWithSecret(DestinationShape):
    secret: str = Field(description="whsec_…: shown only in this answer")


class TestOutcome(BaseModel):
    message_id: str
    outcome: str = Field(description="delivered, retrying, failed or queued")
    status_code: int | None
    error: str | None
    duration_ms: float | None


class DeliveryShape(BaseModel):
    id: int
    message_id: str
    type: str
    merchant_id: str | None = Field(
        description="whose change the message carries (None for a test message)"
    )
    sequence: int
    state: str = Field(description="pending, delivering, retrying, delivered or failed")
    attempts: int
    next_attempt_at: float | None
    last_attempt_at: float | None
    last_status: int | None
    last_error: str | None
    last_excerpt: str | None
    last_duration_ms: float | None
    delivered_at: float | None
    created: int


class AttemptShape(BaseModel):
    at: float
    message_id: str
    attempt: int
    status_code: int | None
    duration_ms: float
    excerpt: str | None
    error: str | None


class DeliveryLogShape(BaseModel):
    destination: DestinationShape
    data: list[DeliveryShape]
    has_more: bool
    attempts: list[AttemptShape] = Field(description="the latest attempts, newest first")


class DestinationList(BaseModel):
    object: str = "list"
    data: list[DestinationShape]
    has_more: bool


def _doc(model: type[BaseModel], status: int = 200) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": model}}


def document_webhooks(app: FastAPI) -> None:
    """The notification we send, as an OpenAPI 3.1 webhook of the document."""

    @app.webhooks.post("object.changed")
    def object_changed(body: Message) -> None:
        """Sent to each destination for every change of a projection (and ``test`` on demand),
        signed per Standard Webhooks: headers ``webhook-id`` (the message id, the same on
        retries), ``webhook-timestamp`` and ``webhook-signature`` (``v1,`` + base64
        HMAC-SHA256 of ``{id}.{timestamp}.{body}`` with the destination's ``whsec_`` secret).
        Answer 2xx within 10 s; anything else is retried with backoff for about 3 days."""


class DestinationBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(
        default=None, max_length=2000, description="https://… (http only in stage)"
    )
    description: str | None = Field(default=None, max_length=500)
    object_types: list[str] | None = Field(
        default=None,
        description="payment_intent, customer, payment_method, dispute, account (default: all)",
    )
    enabled: bool | None = None

    def data(self) -> notifications.DestinationInput:
        return notifications.DestinationInput(
            url=self.url,
            description=self.description,
            object_types=self.object_types,
            enabled=self.enabled,
        )


class ReplayBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message_id: str | None = Field(default=None, max_length=40, description="one message (msg_…)")
    failed_since: float | None = Field(
        default=None, ge=0, description="every failed delivery of a message from then on (unix s)"
    )


@contextmanager
def _mapped() -> Iterator[None]:
    """A missing destination as the API's 404 (invalid input is mapped app-wide: 422)."""
    try:
        yield
    except notifications.DestinationNotFound as exc:
        raise not_found(exc.message) from None


def _call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    with _mapped():
        return fn(*args, **kwargs)


def _routes(router: APIRouter, owner_dep: Callable[..., str | None], env_param: Any) -> None:
    """The same verbs for a merchant's destinations and for the operator's."""

    def list_destinations(
        env: env_param, owner: str | None = Depends(owner_dep), rt: Runtime = Depends(runtime)
    ) -> dict[str, Any]:
        views = _call(notifications.list_destinations, rt, owner, env)
        return {"object": "list", "data": [v.as_json() for v in views], "has_more": False}

    def create_destination(
        env: env_param,
        body: DestinationBody,
        response: Response,
        owner: str | None = Depends(owner_dep),
        rt: Runtime = Depends(runtime),
    ) -> dict[str, Any]:
        made = _call(notifications.create_destination, rt, owner, env, body.data())
        response.status_code = 201
        response.headers["Cache-Control"] = "no-store"  # the secret is in the body
        return made.as_json()

    def get_destination(
        env: env_param,
        destination_id: DestinationId,
        owner: str | None = Depends(owner_dep),
        rt: Runtime = Depends(runtime),
    ) -> dict[str, Any]:
        return _call(notifications.get_destination, rt, owner, env, destination_id).as_json()

    def update_destination(
        env: env_param,
        destination_id: DestinationId,
        body: DestinationBody,
        owner: str | None = Depends(owner_dep),
        rt: Runtime = Depends(runtime),
    ) -> dict[str, Any]:
        return _call(
            notifications.update_destination, rt, owner, env, destination_id, body.data()
        ).as_json()

    def delete_destination(
        env: env_param,
        destination_id: DestinationId,
        owner: str | None = Depends(owner_dep),
        rt: Runtime = Depends(runtime),
    ) -> Response:
        _call(notifications.delete_destination, rt, owner, env, destination_id)
        return Response(status_code=204)

    def rotate_secret(
        env: env_param,
        destination_id: DestinationId,
        response: Response,
        owner: str | None = Depends(owner_dep),
        rt: Runtime = Depends(runtime),
    ) -> dict[str, Any]:
        response.headers["Cache-Control"] = "no-store"
        return _call(notifications.rotate_secret, rt, owner, env, destination_id).as_json()

    def send_test(
        env: env_param,
        destination_id: DestinationId,
        owner: str | None = Depends(owner_dep),
        rt: Runtime = Depends(runtime),
    ) -> dict[str, Any]:
        return _call(notifications.send_test, rt, owner, env, destination_id).as_json()

    def deliveries(
        env: env_param,
        destination_id: DestinationId,
        limit: Annotated[int, Query(ge=1, le=100)] = 50,
        before: Annotated[
            int | None, Query(ge=1, description="id of a delivery: older ones")
        ] = None,
        state: Annotated[
            str | None, Query(pattern="^(" + "|".join(notifications.DELIVERY_STATES) + ")$")
        ] = None,
        owner: str | None = Depends(owner_dep),
        rt: Runtime = Depends(runtime),
    ) -> dict[str, Any]:
        log = _call(
            notifications.delivery_log,
            rt,
            owner,
            env,
            destination_id,
            limit=limit,
            before=before,
            state=state,
        )
        return log.as_json()

    def replay(
        env: env_param,
        destination_id: DestinationId,
        body: ReplayBody,
        owner: str | None = Depends(owner_dep),
        rt: Runtime = Depends(runtime),
    ) -> dict[str, Any]:
        count = _call(
            notifications.replay,
            rt,
            owner,
            env,
            destination_id,
            message_id=body.message_id,
            failed_since=body.failed_since,
        )
        return {"replayed": count}

    base = "/destinations" if router is merchant_router else ""
    one = f"{base}/{{destination_id}}"
    router.add_api_route(base, list_destinations, methods=["GET"], responses=_doc(DestinationList))
    router.add_api_route(
        base,
        create_destination,
        methods=["POST"],
        status_code=201,
        responses=_doc(DestinationWithSecret, 201),
    )
    router.add_api_route(one, get_destination, methods=["GET"], responses=_doc(DestinationShape))
    router.add_api_route(
        one, update_destination, methods=["PATCH"], responses=_doc(DestinationShape)
    )
    router.add_api_route(one, delete_destination, methods=["DELETE"], status_code=204)
    router.add_api_route(
        f"{one}/rotate-secret",
        rotate_secret,
        methods=["POST"],
        responses=_doc(DestinationWithSecret),
    )
    router.add_api_route(f"{one}/test", send_test, methods=["POST"], responses=_doc(TestOutcome))
    router.add_api_route(
        f"{one}/deliveries", deliveries, methods=["GET"], responses=_doc(DeliveryLogShape)
    )
    router.add_api_route(f"{one}/replay", replay, methods=["POST"])


def _merchant_owner(merchant_id: str = Depends(merchant_access)) -> str | None:
    return merchant_id


def _operator(_: Principal = Depends(admin)) -> str | None:
    return None  # installation-wide: no merchant


_routes(merchant_router, _merchant_owner, EnvPath)
_routes(admin_router, _operator, EnvQuery)


@merchant_router.get("/changes", responses=_doc(ChangesPage))
async def changes(
    env: EnvPath,
    after: Annotated[
        str | None, Query(max_length=20, description="next_cursor of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    wait: Annotated[float, Query(ge=0, le=30, description="seconds to wait for a change")] = 0,
    merchant_id: str = Depends(merchant_access),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    """Messages in ``sequence`` order after the cursor; with ``wait`` an empty page waits and
    answers as soon as a change is committed. Waiting holds no thread."""
    with _mapped():
        page = await notifications.changes_async(
            rt, merchant_id, env, after=after, limit=limit, wait=wait
        )
    return page.as_json()
