"""The few S3 calls the registry makes, through boto3, with its failures in our own words.

Conditional outcomes become the exceptions `Missing` (404), `Precondition` (412/409) and
`NotModified` (304); everything else becomes one line naming the store, so commands can print it
without a traceback: `StoreConfigurationError` for what retrying cannot fix (missing or wrong
credentials, no such bucket: the line names the variable or flag to fix), else
`StoreUnavailableError` (no route, timeouts, 5xx).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from registry.errors import StoreConfigurationError, StoreUnavailableError

_DELETE_BATCH = 1000  # DeleteObjects' limit per request
_DENIED = frozenset(
    {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "InvalidToken"}
)


class Missing(Exception):
    """404: no such key."""


class Precondition(Exception):
    """412 (or 409 for a concurrent conditional write): the write's condition did not hold."""


class NotModified(Exception):
    """304: the object still has the ETag the caller named."""


def _client() -> Any:
    """An S3 client from the standard AWS chain; path-style addressing for custom endpoints."""
    session = boto3.session.Session()
    custom_endpoint = bool(
        os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    )
    config = Config(
        connect_timeout=2,
        read_timeout=10,
        retries={"max_attempts": 3, "mode": "standard"},
        # We hash every object with sha256 ourselves; skip the SDK's extra CRC32 pass.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        s3={"addressing_style": "path"} if custom_endpoint else None,
    )
    # Signing needs a region; S3-compatible stores accept any, AWS redirects to the right one.
    region = session.region_name or "us-east-1"
    return session.client("s3", region_name=region, config=config)


class S3Client:
    """One bucket's objects: get, put (optionally conditional), list, exists, delete."""

    def __init__(self, bucket: str, location: str) -> None:
        self.bucket = bucket
        self.location = location
        try:
            self._client = _client()
        except BotoCoreError as err:
            raise StoreUnavailableError(f"cannot configure S3 for {location}: {err}") from None
        self.endpoint = str(self._client.meta.endpoint_url)

    def _call(self, operation: str, **kwargs: Any) -> Any:
        try:
            return getattr(self._client, operation)(Bucket=self.bucket, **kwargs)
        except ClientError as err:
            error = err.response.get("Error", {})
            code = str(error.get("Code", ""))
            if code in ("NoSuchKey", "404", "NotFound"):
                raise Missing from None
            if code in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                raise Precondition from None
            if code in ("304", "NotModified"):
                raise NotModified from None
            raise self._unavailable(code, str(error.get("Message", err))) from None
        except NoCredentialsError:
            raise StoreConfigurationError(
                f"registry {self.location}: no S3 credentials found; set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
            ) from None
        except BotoCoreError as err:
            raise StoreUnavailableError(
                f"cannot reach the registry {self.location} at {self.endpoint}: {err}"
            ) from None

    def _unavailable(self, code: str, message: str) -> StoreUnavailableError:
        if code == "NoSuchBucket":
            return StoreConfigurationError(
                f"registry {self.location}: bucket {self.bucket!r} does not exist at "
                f"{self.endpoint}; check --registry / DIGITS_REGISTRY (and AWS_ENDPOINT_URL)"
            )
        if code in _DENIED:
            return StoreConfigurationError(
                f"registry {self.location}: access denied by {self.endpoint} ({code}); check "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            )
        return StoreUnavailableError(
            f"registry {self.location}: {self.endpoint} answered {code}: {message}"
        )

    def get(
        self, key: str, *, if_none_match: str | None = None
    ) -> tuple[bytes, str, dict[str, str]]:
        """Body, ETag and user metadata of ``key`` (Missing / NotModified)."""
        extra = {"IfNoneMatch": if_none_match} if if_none_match is not None else {}
        response = self._call("get_object", Key=key, **extra)
        try:
            body = response["Body"].read()
        except BotoCoreError as err:
            raise StoreUnavailableError(f"reading {key} from {self.location}: {err}") from None
        return body, str(response["ETag"]), dict(response.get("Metadata") or {})

    def put(
        self,
        key: str,
        data: bytes,
        *,
        if_none_match: bool = False,
        if_match: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> str:
        """Write ``key``; create-only or compare-and-swap when asked (Precondition). -> ETag."""
        extra: dict[str, Any] = {"Metadata": metadata} if metadata else {}
        if if_none_match:
            extra["IfNoneMatch"] = "*"
        elif if_match is not None:
            extra["IfMatch"] = if_match
        return str(self._call("put_object", Key=key, Body=data, **extra)["ETag"])

    def exists(self, key: str) -> bool:
        try:
            self._call("head_object", Key=key)
        except Missing:
            return False
        return True

    def list_keys(self, prefix: str) -> Iterator[tuple[str, datetime]]:
        """Every key under ``prefix`` with its LastModified, in key order."""
        token: dict[str, str] = {}
        while True:
            page = self._call("list_objects_v2", Prefix=prefix, **token)
            for item in page.get("Contents", []):
                yield str(item["Key"]), item["LastModified"]
            if not page.get("IsTruncated"):
                return
            token = {"ContinuationToken": page["NextContinuationToken"]}

    def common_prefixes(self, prefix: str) -> list[str]:
        """The next path segment of every key under ``prefix`` (one level, like ``ls``)."""
        names: list[str] = []
        token: dict[str, str] = {}
        while True:
            page = self._call("list_objects_v2", Prefix=prefix, Delimiter="/", **token)
            found = page.get("CommonPrefixes", [])
            names += [str(p["Prefix"])[len(prefix) :].rstrip("/") for p in found]
            if not page.get("IsTruncated"):
                return names
            token = {"ContinuationToken": page["NextContinuationToken"]}

    def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = [{"Key": key} for key in keys[start : start + _DELETE_BATCH]]
            response = self._call("delete_objects", Delete={"Objects": batch, "Quiet": True})
            if errors := response.get("Errors"):
                first = errors[0]
                raise StoreUnavailableError(
                    f"registry {self.location}: could not delete {first.get('Key')}: "
                    f"{first.get('Code')} {first.get('Message')}"
                )
