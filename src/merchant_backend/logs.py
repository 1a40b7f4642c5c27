"""Structured logs (JSON lines by default) with a last-line guard against leaked secrets."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

# Anything shaped like a Stripe secret or one of our tokens is cut down to its kind.
_SECRET = re.compile(r"\b((?:sk|rk)_(?:test|live)|whsec|mbt|mbs)_[A-Za-z0-9_+/=-]{4,}")


def redact(text: str) -> str:
    return _SECRET.sub(lambda m: m.group(1) + "_[redacted]", text)


def error_text(exc: BaseException, limit: int = 300) -> str:
    """``Type: message`` of an error for a log line or a stored ``last_error``: its first line
    only, redacted and cut to ``limit``.

    The lines after the first are where a database error carries values: PostgreSQL's
    ``DETAIL:  Failing row contains (…)`` holds the refused row (an event's payload, a
    customer's e-mail), and SQLAlchemy appends the statement. The first line names the
    constraint or the problem, which is what an operator acts on.
    """
    message = str(exc).strip().split("\n", 1)[0]
    return redact(f"{type(exc).__name__}: {message}")[:limit]


def _redact_processor(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in list(event_dict.items()):
        if isinstance(value, str):
            event_dict[key] = redact(value)
    return event_dict


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in args)
        return True


class _AlembicContextFilter(logging.Filter):
    """Alembic says which dialect and DDL mode it assumes at every start, migrating or not:
    two INFO lines an operator reads at each ``serve`` and can do nothing with. What a start
    changed ("Running upgrade 0007 -> 0008 …") still shows."""

    NOISE = ("Context impl ", "Will assume ")

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith(self.NOISE))


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is now, not to the stream of the first log call.

    Loggers are cached on first use; binding them to a stream that is later replaced (a test
    runner's capture, a daemon's redirect) would make them write to a closed file.
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _to_a_person() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def setup(level: str = "INFO", json: bool | None = True) -> None:
    """``json=None``: text for a person at a terminal, JSON lines for everything else."""
    if json is None:
        json = not _to_a_person()
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    stamp = structlog.processors.TimeStamper(fmt="iso", utc=True)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            stamp,
            structlog.processors.format_exc_info,
            _redact_processor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
    # Records of the standard library (uvicorn, alembic, tracebacks of failed requests) go
    # through the same redaction and renderer, so stderr is one JSON object per line.
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            stamp,
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _redact_processor,
            renderer,
        ],
    )
    handler = logging.StreamHandler(_CurrentStderr())
    handler.addFilter(_RedactingFilter())
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    # The Stripe SDK logs two INFO lines per request: debugging detail, not news.
    debug = level.upper() == "DEBUG"
    logging.getLogger("stripe").setLevel(logging.DEBUG if debug else logging.WARNING)
    # httpx logs every request at INFO (serve's own readiness probe, outbound deliveries).
    logging.getLogger("httpx").setLevel(logging.DEBUG if debug else logging.WARNING)
    migration_log = logging.getLogger("alembic.runtime.migration")
    for old in [f for f in migration_log.filters if isinstance(f, _AlembicContextFilter)]:
        migration_log.removeFilter(old)
    if not debug:
        migration_log.addFilter(_AlembicContextFilter())


def get(name: str) -> Any:
    return structlog.get_logger(name)
