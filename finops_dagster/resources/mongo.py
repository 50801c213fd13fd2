"""The CMDB raw zone in MongoDB, as a Dagster resource.

Production uses pymongo. No MongoDB server can run on the development and CI machines, so two
URL schemes select an in-memory stand-in (mongomock-ng) through this same resource:

- `demo://` (options: `demo://?cis=3000&months=3&today=2026-11-22`): the deterministic generated
  CMDB of the demo, the same in every process that asks for it;
- `mongomock://NAME`: an empty in-memory server shared by the process, which tests fill.

Everything else in the project only sees a pymongo `Database`.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import pymongo
from dagster import ConfigurableResource
from pymongo.database import Database
from pymongo.errors import ConfigurationError, PyMongoError

from finops_dagster.resources.mongo_standin import standin_client

log = logging.getLogger(__name__)

DEMO_SCHEME = "demo"
MOCK_SCHEME = "mongomock"


class SourceUnavailable(RuntimeError):
    """A source could not be read; the message names it, never a credential."""


class MongoResource(ConfigurableResource):
    """Read access to the CMDB raw zone (MONGO_URL, MONGO_DB)."""

    url: str
    database: str = "cmdb_raw"
    timeout_ms: int = 10_000

    _standins: ClassVar[dict[str, Any]] = {}
    _standins_lock: ClassVar[threading.Lock] = threading.Lock()

    @property
    def is_standin(self) -> bool:
        return urlsplit(self.url).scheme in (DEMO_SCHEME, MOCK_SCHEME)

    def describe(self) -> str:
        """Where the CMDB is read from, fit for logs and errors (no credentials)."""
        scheme = urlsplit(self.url).scheme
        if scheme == DEMO_SCHEME:
            return f"in-memory MongoDB stand-in with the generated demo CMDB (database {self.database})"
        if scheme == MOCK_SCHEME:
            return f"in-memory MongoDB stand-in {urlsplit(self.url).netloc!r} (database {self.database})"
        try:
            nodes = pymongo.uri_parser.parse_uri(self.url)["nodelist"]
        except (ConfigurationError, ValueError):
            return "MongoDB (unparseable MONGO_URL)"
        hosts = ",".join(f"{host}:{port}" for host, port in nodes)
        return f"MongoDB {hosts} (database {self.database})"

    def db(self) -> Database:
        """The CMDB database, checked reachable: an unreachable server fails here, by name."""
        if self.is_standin:
            return self._standin_client()[self.database]
        client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
            self.url, serverSelectionTimeoutMS=self.timeout_ms, connectTimeoutMS=self.timeout_ms
        )
        try:
            client.admin.command("ping")
        except PyMongoError as error:
            client.close()
            raise SourceUnavailable(
                f"{self.describe()} is unreachable ({type(error).__name__}); check MONGO_URL"
            ) from None
        return client[self.database]

    def _standin_client(self) -> Any:
        with self._standins_lock:
            client = self._standins.get(self.url)
            if client is None:
                client = standin_client()
                if urlsplit(self.url).scheme == DEMO_SCHEME:
                    log.warning("Using %s: not a real MongoDB", self.describe())
                    _fill_demo(client[self.database], self.url)
                self._standins[self.url] = client
            return client


def _fill_demo(database: Any, url: str) -> None:
    from finops_dagster.demo.cmdb import generate_cmdb
    from finops_dagster.demo.estate import build_estate

    options = {key: values[-1] for key, values in parse_qs(urlsplit(url).query).items()}
    today = dt.date.fromisoformat(options["today"]) if "today" in options else dt.date.today()
    generate_cmdb(
        database,
        build_estate(applications=int(options.get("applications", 300))),
        today=today,
        months=int(options.get("months", 3)),
        cis=int(options.get("cis", 3000)),
    )


def mongo_from_env() -> MongoResource:
    """The CMDB resource from MONGO_URL / MONGO_DB / MONGO_TIMEOUT_MS; fails naming MONGO_URL."""
    import os

    from dagster import EnvVar

    from finops_dagster.settings import SettingError, env_int, env_str

    if not os.environ.get("MONGO_URL", "").strip():
        raise SettingError(
            "MONGO_URL is not set: the open_legacy domain reads the CMDB raw zone from MongoDB "
            "(MONGO_URL=demo:// selects the generated demo stand-in)"
        )
    return MongoResource(
        url=EnvVar("MONGO_URL"),
        database=env_str("MONGO_DB", "cmdb_raw"),
        timeout_ms=env_int("MONGO_TIMEOUT_MS", 10_000, minimum=100),
    )
