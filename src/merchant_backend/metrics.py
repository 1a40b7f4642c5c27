"""Prometheus metrics, one registry per process (served at ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

WEBHOOKS = Counter(
    "merchant_backend_webhooks_total",
    "Webhook deliveries by outcome (stored, duplicate, ignored, rejected, unavailable).",
    ["env", "outcome"],
)
WEBHOOK_REJECTIONS = Counter(
    "merchant_backend_webhook_rejections_total",
    "Rejected webhook deliveries by reason; livemode/account mismatches mean a misconfiguration.",
    ["env", "reason"],
)
INGEST_BATCH = Histogram(
    "merchant_backend_ingest_batch_size",
    "Events committed together by the inbox writer (group commit).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
INGEST_COMMIT_SECONDS = Histogram(
    "merchant_backend_ingest_commit_seconds",
    "Time to commit one inbox batch.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
EVENTS_PROCESSED = Counter(
    "merchant_backend_events_processed_total",
    "Inbox events handled by workers, by result (applied, failed, dead).",
    ["result"],
)
WORKER_BATCH_SECONDS = Histogram(
    "merchant_backend_worker_batch_seconds",
    "Time to apply one batch of events.",
)
EVENT_APPLY_LAG = Histogram(
    "merchant_backend_event_apply_lag_seconds",
    "From an event's arrival (its 2xx, or its fetch by reconcile) to its projection being "
    "applied and committed, by source (webhook, reconcile); retries included.",
    ["source"],
    buckets=(
        0.001,
        0.0025,
        0.005,
        0.01,
        0.025,
        0.05,
        0.1,
        0.25,
        0.5,
        1.0,
        2.5,
        5.0,
        10.0,
        30.0,
        60.0,
        300.0,
        3600.0,
    ),
)
INBOX_BACKLOG = Gauge(
    "merchant_backend_inbox_backlog",
    "Events waiting to be applied (pending or failed), as last seen by this process's worker.",
)
STRIPE_API_CALLS = Counter(
    "merchant_backend_stripe_api_calls_total",
    "Calls to Stripe's API by operation and outcome.",
    ["operation", "outcome"],
)
OUTBOUND_DELIVERIES = Counter(
    "merchant_backend_outbound_deliveries_total",
    "Outbound notification attempts by outcome (delivered, retrying, failed).",
    ["outcome"],
)
OUTBOUND_LAG = Histogram(
    "merchant_backend_outbound_lag_seconds",
    "Time from a change being committed to its notification being delivered.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86400),
)
OUTBOUND_DISABLED = Counter(
    "merchant_backend_outbound_destinations_disabled_total",
    "Destinations disabled because every delivery failed for the disable period.",
)
BULKHEAD_IN_USE = Gauge(
    "merchant_backend_bulkhead_in_use",
    "Requests running inside a bulkhead (e.g. waiting on Stripe), in this process.",
    ["bulkhead"],
)
BULKHEAD_REFUSALS = Counter(
    "merchant_backend_bulkhead_refusals_total",
    "Requests refused with 429 because a bulkhead was full, by which bound (per_key, total).",
    ["bulkhead", "scope"],
)
AUTH_FAILURES = Counter(
    "merchant_backend_auth_failures_total",
    "Failed authentications by channel (api, web) and answer (refused = 401, limited = 429).",
    ["channel", "outcome"],
)
