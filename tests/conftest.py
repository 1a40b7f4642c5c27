"""Shared fixtures: a throw-away database (SQLite or PostgreSQL), a runtime, an app client.

``--db sqlite`` (default) or ``--db postgresql``: the whole suite runs on either. The
PostgreSQL database is created for this run and dropped at its end.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine, text

from merchant_backend import clock as clock_module
from merchant_backend.asgi import create_app
from merchant_backend.crypto import generate_key
from merchant_backend.runtime import Runtime
from merchant_backend.settings import Settings
from merchant_backend.store import datasets, db
from merchant_backend.store import merchants as merchant_store
from merchant_backend.store.db import create_db_engine
from merchant_backend.store.migrate import upgrade
from merchant_backend.store.schema import metadata
from merchant_backend.sync.worker import Worker
from merchant_backend.validation import DataSetInput

ADMIN_TOKEN = "admin-" + secrets.token_hex(16)
MASTER_KEY = generate_key()
SIGNING_SECRET = "whsec_" + secrets.token_hex(16)
SECRET_KEY = "sk_test_" + secrets.token_hex(12) + "4242"
LIVE_SECRET_KEY = "sk_live_" + secrets.token_hex(12) + "9999"
LIVE_SIGNING_SECRET = "whsec_" + secrets.token_hex(16)
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
# The fake-Stripe fixtures (fake, stage) that several test modules share.
pytest_plugins = ["tests.stripe_helpers"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--db", default="sqlite", choices=["sqlite", "postgresql"])
    parser.addoption("--pg-admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")


def pytest_report_header(config: pytest.Config) -> str:
    return f"database: {config.getoption('--db')}"


class FakeClock:
    """The time every caller of ``clock.now()`` sees while a test holds the ``clock`` fixture.

    It follows the wall clock until the test sets it; from then on it stands still until the
    test moves it. Tests that judge time set it instead of racing the wall clock (a loaded
    machine can take seconds between two lines).
    """

    def __init__(self) -> None:
        self.t: float | None = None

    def __call__(self) -> float:
        return time.time() if self.t is None else self.t

    def set(self, t: float) -> float:
        self.t = t
        return t

    def freeze(self) -> int:
        """Stop at the present whole second (returned), so ``int(clock.now())`` is exact."""
        return int(self.set(float(int(time.time()))))

    def advance(self, seconds: float) -> None:
        self.t = self() + seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """The clock seam in the test's hands: ``clock.set``/``freeze``/``advance``."""
    fake = FakeClock()
    monkeypatch.setattr(clock_module, "now", fake)
    return fake


@pytest.fixture(scope="session")
def db_kind(request: pytest.FixtureRequest) -> str:
    return str(request.config.getoption("--db"))


@pytest.fixture(scope="session")
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, db_kind: str
) -> Iterator[str]:
    if db_kind == "sqlite":
        path = tmp_path_factory.mktemp("db") / "test.db"
        yield f"sqlite:///{path}"
        return
    with _pg_database(str(request.config.getoption("--pg-admin-url"))) as url:
        yield url


@contextlib.contextmanager
def _pg_database(admin_url: str) -> Iterator[str]:
    """A new, empty PostgreSQL database for as long as the block runs."""
    name = f"mb_test_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin_url.rsplit("/", 1)[0]
    try:
        yield f"postgresql+psycopg://{base.split('://', 1)[1]}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def empty_engine(request: pytest.FixtureRequest, db_kind: str, tmp_path: Path) -> Iterator[Engine]:
    """An engine on a database of its own with no tables yet (for migration tests)."""
    with contextlib.ExitStack() as stack:
        if db_kind == "sqlite":
            url = f"sqlite:///{tmp_path / 'empty.db'}"
        else:
            url = stack.enter_context(_pg_database(str(request.config.getoption("--pg-admin-url"))))
        engine = create_db_engine(url)
        stack.callback(engine.dispose)
        yield engine


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    eng = create_db_engine(database_url)
    upgrade(eng)
    yield eng
    eng.dispose()


def _clean(engine: Engine) -> None:
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            names = ", ".join(t.name for t in metadata.sorted_tables)
            conn.execute(text(f"TRUNCATE {names} CASCADE"))
        else:
            for table in reversed(metadata.sorted_tables):
                conn.execute(table.delete())


@pytest.fixture
def server_db(
    db_kind: str, database_url: str, runtime: Runtime, tmp_path: Path
) -> Iterator[tuple[str, Engine]]:
    """The database for a real `serve` process: a fresh SQLite file (a process of its own must
    not share the test's open file), or the PostgreSQL test database (cleaned after the test)."""
    if db_kind == "postgresql":
        yield database_url, runtime.engine
        return
    url = f"sqlite:///{tmp_path / 'server.db'}"
    engine = create_db_engine(url)
    upgrade(engine)
    try:
        yield url, engine
    finally:
        engine.dispose()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        master_key=SecretStr(MASTER_KEY),
        master_key_file=str(tmp_path / "unused.key"),
        admin_token=SecretStr(ADMIN_TOKEN),
        public_url="https://merchant-backend.example",
        worker_backoff_base=2.0,
        log_json=True,
        # Tests that send many wrong tokens on purpose (from one test client address) are not
        # about the guessing limit; tests/test_auth_limits.py sets its own small limits.
        auth_failures_per_address="10000/minute",
        auth_failures_per_target="10000/minute",
    )


@pytest.fixture
def runtime(settings: Settings, engine: Engine) -> Iterator[Runtime]:
    rt = Runtime(settings, engine=engine)
    yield rt
    _clean(engine)


@pytest.fixture
def app(runtime: Runtime) -> Any:
    return create_app(runtime, run_worker=False)


@pytest.fixture
def client(app: Any) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


@pytest.fixture
def worker(runtime: Runtime) -> Worker:
    return Worker(runtime.engine, runtime.settings, worker_id="test-worker")


@dataclass
class MerchantCtx:
    id: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def make_merchant(runtime: Runtime, name: str = "Test Shop") -> MerchantCtx:
    with db.write(runtime.engine) as conn:
        merchant, token = merchant_store.create(conn, name)
    return MerchantCtx(merchant.id, token)


def add_data_set(
    runtime: Runtime,
    merchant_id: str,
    env: str = "stage",
    *,
    account_id: str = "acct_1PgafTB7WZ01zgkW",
    signing_secret: str | None = None,
    secret_key: str | None = None,
) -> None:
    live = env == "live"
    data = DataSetInput(
        account_id=account_id,
        publishable_key=("pk_live_" if live else "pk_test_") + "TYooMQauvdEDq54NiTphI7jx",
        secret_key=secret_key or (LIVE_SECRET_KEY if live else SECRET_KEY),
        webhook_signing_secret=signing_secret or (LIVE_SIGNING_SECRET if live else SIGNING_SECRET),
    )
    with db.write(runtime.engine) as conn:
        datasets.save(conn, runtime.keys.get(), merchant_id, env, data)  # type: ignore[arg-type]


@pytest.fixture
def merchant(runtime: Runtime) -> MerchantCtx:
    return make_merchant(runtime)


@pytest.fixture
def connected(runtime: Runtime, merchant: MerchantCtx) -> MerchantCtx:
    """A merchant with a complete stage and live data set."""
    add_data_set(runtime, merchant.id, "stage")
    add_data_set(runtime, merchant.id, "live")
    return merchant


@pytest.fixture
def admin_auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}
