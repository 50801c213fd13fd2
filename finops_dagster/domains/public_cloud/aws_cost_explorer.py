"""AWS Cost Explorer `GetCostAndUsage`: a month's cost per application tag and service.

Called through boto3 (SigV4 signing, retries and credentials are the maintained library's):
`TimePeriod` from the month's first day to the next month's first day (End is exclusive), or to
tomorrow for the current month; granularity MONTHLY; one metric (FINOPS_AWS_CE_METRIC, default
NetAmortizedCost); grouped by the application tag and the SERVICE dimension. Cost Explorer groups
by one tag key only: the first of FINOPS_PUBLIC_CLOUD_TAG_KEYS. Pages follow `NextPageToken`.

The pages are read by `aws_cost_explorer_payloads` (group keys by name, amounts as `Decimal`).

Credentials: FINOPS_AWS_ACCESS_KEY_ID / FINOPS_AWS_SECRET_ACCESS_KEY (and FINOPS_AWS_SESSION_TOKEN)
when set, otherwise the standard AWS chain (environment, profile, web identity, instance role).
Failures become a `SourceError` naming the cause and the setting to check, never a credential.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Mapping
from typing import Any, Self

import boto3
from botocore import exceptions as boto_errors
from botocore.config import Config

from finops_dagster.domains.public_cloud.aws_cost_explorer_payloads import SOURCE, parse_cost_and_usage
from finops_dagster.domains.public_cloud.charges import ChargeGroup, ChargeProblem, ChargeTable, SourceMonth
from finops_dagster.domains.public_cloud.settings import application_tag_key
from finops_dagster.http.errors import SourceError
from finops_dagster.http.pagination import follow
from finops_dagster.releve import next_month
from finops_dagster.settings import SettingError, env_int, env_str

PREFIX = "FINOPS_AWS_CE"
OPERATION = "GetCostAndUsage"
METRICS = ("NetAmortizedCost", "UnblendedCost", "AmortizedCost", "BlendedCost", "NetUnblendedCost")

AUTH_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "MissingAuthenticationToken",
        "ExpiredToken",
        "ExpiredTokenException",
        "AuthFailure",
    }
)
ACCESS_CODES = frozenset({"AccessDenied", "AccessDeniedException"})
THROTTLE_CODES = frozenset(
    {"ThrottlingException", "Throttling", "LimitExceededException", "TooManyRequestsException"}
)
CREDENTIALS_HINT = (
    "check FINOPS_AWS_ACCESS_KEY_ID / FINOPS_AWS_SECRET_ACCESS_KEY (and FINOPS_AWS_SESSION_TOKEN), "
    "or the credentials of the standard AWS chain (role, profile)"
)


class _NoSignedRequestsInLogs(logging.Filter):
    """botocore's DEBUG lines show signed requests: headers (a session token) and canonical requests."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "botocore.auth" and record.levelno <= logging.DEBUG:
            return False
        if isinstance(record.msg, str) and record.msg.startswith("Sending http request"):
            record.msg = "Sending http request (headers not logged)"
            record.args = ()
        return True


_NO_SIGNED_REQUESTS_IN_LOGS = _NoSignedRequestsInLogs()
for _logger in ("botocore.auth", "botocore.endpoint"):
    logging.getLogger(_logger).addFilter(_NO_SIGNED_REQUESTS_IN_LOGS)


class AwsCostExplorer:
    """A month's AWS costs per application tag and service, from Cost Explorer."""

    def __init__(self, client: Any, tag_key: str, metric: str = "NetAmortizedCost") -> None:
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
        self.client = client
        self.tag_key = tag_key
        self.metric = metric

    @classmethod
    def from_env(cls) -> Self:
        metric = env_str(f"{PREFIX}_METRIC", "NetAmortizedCost")
        if metric not in METRICS:
            raise SettingError(f"{PREFIX}_METRIC must be one of {', '.join(METRICS)}, got {metric!r}")
        return cls(ce_client_from_env(), application_tag_key(), metric)

    def request(self, month: dt.date, now: dt.datetime) -> dict[str, Any]:
        """GetCostAndUsage parameters for `month`; End is exclusive (tomorrow for the current month)."""
        end = min(next_month(month), _utc(now).date() + dt.timedelta(days=1))
        return {
            "TimePeriod": {"Start": month.isoformat(), "End": end.isoformat()},
            "Granularity": "MONTHLY",
            "Metrics": [self.metric],
            "GroupBy": [{"Type": "TAG", "Key": self.tag_key}, {"Type": "DIMENSION", "Key": "SERVICE"}],
        }

    def read_month(self, month: dt.date, now: dt.datetime, into: ChargeTable | None = None) -> SourceMonth:
        """The month's costs: a past month in full, the current month up to `now`.

        The provider groups by the application tag itself: its groups carry that one tag, and the
        domain allocates its few groups itself (`into` is not needed here).
        """
        if month.day != 1:
            raise ValueError(f"a month is given by its first day, got {month}")
        result = SourceMonth()
        if _utc(now).date() < month:
            return result  # a month that has not started has no cost yet
        params = self.request(month, now)
        pages = 0

        def fetch(token: str | None) -> tuple[list[ChargeGroup | ChargeProblem], str | None]:
            nonlocal pages
            pages += 1
            page = self._call({**params, "NextPageToken": token} if token else params)
            try:
                groups, problems = parse_cost_and_usage(page, metric=self.metric, month=month, page=pages)
            except ValueError as error:
                raise SourceError(SOURCE, f"{OPERATION}: unexpected answer: {error}") from None
            following = page.get("NextPageToken")
            return [*groups, *problems], str(following) if following else None

        for item in follow(SOURCE, fetch):
            if isinstance(item, ChargeGroup):
                result.groups.append(item)
            else:
                result.problems.append(item)
        result.line_items = len(result.groups) + len(result.problems)
        return result

    def _call(self, params: dict[str, Any]) -> Mapping[str, Any]:
        try:
            page = self.client.get_cost_and_usage(**params)
        except (boto_errors.ClientError, boto_errors.BotoCoreError) as error:
            raise source_error(error) from None
        if not isinstance(page, Mapping):
            raise SourceError(SOURCE, f"{OPERATION}: unexpected answer ({type(page).__name__})")
        return page

    def close(self) -> None:
        self.client.close()


def source_error(error: Exception) -> SourceError:
    """A boto3/botocore failure as a SourceError a person can act on; the server's text only for
    validation errors (it names a parameter), never a credential."""
    if isinstance(error, boto_errors.ClientError):
        details = error.response.get("Error", {})
        metadata = error.response.get("ResponseMetadata", {})
        code = str(details.get("Code") or "unknown")
        status = metadata.get("HTTPStatusCode")
        attempts = int(metadata.get("RetryAttempts") or 0) + 1
        if code in AUTH_CODES:
            problem = f"authentication refused ({code}); {CREDENTIALS_HINT}"
        elif code in ACCESS_CODES:
            problem = (
                f"access denied ({code}); the identity needs ce:GetCostAndUsage "
                "(and Cost Explorer enabled on the management account)"
            )
        elif code in THROTTLE_CODES:
            problem = f"still throttled ({code}) after retries; raise {PREFIX}_RETRIES or run later"
        elif code == "DataUnavailableException":
            problem = "Cost Explorer has no data for this period yet (DataUnavailableException)"
        elif code == "ValidationException":
            message = str(details.get("Message") or "")[:200]
            problem = f"request refused (ValidationException): {message}"
        else:
            problem = f"request refused ({code})"
        return SourceError(SOURCE, f"{OPERATION}: {problem}", status=status, attempts=attempts)
    if isinstance(error, boto_errors.NoCredentialsError | boto_errors.PartialCredentialsError):
        return SourceError(SOURCE, f"{OPERATION}: no usable AWS credentials; {CREDENTIALS_HINT}")
    if isinstance(error, boto_errors.SSLError):
        return SourceError(
            SOURCE,
            f"{OPERATION}: TLS verification failed; check FINOPS_CA_BUNDLE / {PREFIX}_CA_BUNDLE",
        )
    if isinstance(error, boto_errors.ConnectionError | boto_errors.HTTPClientError):
        return SourceError(
            SOURCE,
            f"{OPERATION}: Cost Explorer unreachable after retries ({type(error).__name__}); "
            f"check {PREFIX}_REGION / {PREFIX}_ENDPOINT_URL and the network path to AWS",
        )
    return SourceError(SOURCE, f"{OPERATION}: failed ({type(error).__name__})")


def ce_client_from_env() -> Any:
    """A boto3 Cost Explorer client from FINOPS_AWS_* settings (the standard chain when no key is set)."""
    region = env_str(f"{PREFIX}_REGION", "us-east-1")
    endpoint_url = env_str(f"{PREFIX}_ENDPOINT_URL", "") or None
    if endpoint_url and not endpoint_url.startswith(("https://", "http://")):
        raise SettingError(f"{PREFIX}_ENDPOINT_URL must be an http(s) URL")
    key_id = env_str("FINOPS_AWS_ACCESS_KEY_ID", "") or None
    secret = os.environ.get("FINOPS_AWS_SECRET_ACCESS_KEY", "").strip() or None
    token = os.environ.get("FINOPS_AWS_SESSION_TOKEN", "").strip() or None
    if bool(key_id) != bool(secret):
        missing = "FINOPS_AWS_SECRET_ACCESS_KEY" if key_id else "FINOPS_AWS_ACCESS_KEY_ID"
        raise SettingError(
            f"{missing} is not set: FINOPS_AWS_ACCESS_KEY_ID and FINOPS_AWS_SECRET_ACCESS_KEY go together "
            "(set neither to use the standard AWS credential chain)"
        )
    if token and not key_id:
        raise SettingError(
            "FINOPS_AWS_SESSION_TOKEN is set without FINOPS_AWS_ACCESS_KEY_ID / FINOPS_AWS_SECRET_ACCESS_KEY"
        )
    timeout_ms = env_int(f"{PREFIX}_TIMEOUT_MS", env_int("HTTP_TIMEOUT_MS", 30_000, minimum=1), minimum=1)
    retries = env_int(f"{PREFIX}_RETRIES", env_int("HTTP_RETRIES", 3))
    ca_bundle = os.environ.get(f"{PREFIX}_CA_BUNDLE") or os.environ.get("FINOPS_CA_BUNDLE") or None
    if ca_bundle and not os.path.isfile(ca_bundle):
        raise SettingError(f"{PREFIX}_CA_BUNDLE / FINOPS_CA_BUNDLE: no such file {ca_bundle}")
    config = Config(
        region_name=region,
        connect_timeout=timeout_ms / 1000,
        read_timeout=timeout_ms / 1000,
        retries={"total_max_attempts": retries + 1, "mode": "standard"},
        user_agent_extra="finops-dagster",
    )
    session = boto3.session.Session(
        aws_access_key_id=key_id, aws_secret_access_key=secret, aws_session_token=token, region_name=region
    )
    return session.client("ce", endpoint_url=endpoint_url, config=config, verify=ca_bundle)


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)
