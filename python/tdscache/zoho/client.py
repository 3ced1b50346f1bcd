"""UnifiedZohoClient: one async httpx client for Zoho Books and Zoho Inventory list endpoints, with
the OAuth refresh-token flow, retries (429/5xx/transport) and raw page bodies for native hashing.
It never parses a whole page: deciding what to write is the cache's job, storing it the database's.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import random
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, AsyncGenerator, Awaitable, Callable

import httpx

from .types import EntityType, ZohoApi, resolve_entity_type

# Zoho's largest page; fewer pages means fewer calls against the 100-per-minute limit.
MAX_PER_PAGE = 200


class ZohoError(Exception):
    """Base of every error this client raises."""


class ZohoAPIError(ZohoError):
    """A request that failed for good: a 4xx other than 401/429, or 429/5xx/transport errors that
    outlived the retries. `status` is None when no HTTP response arrived at all."""

    def __init__(self, message: str, *, status: int | None = None, code: int | None = None,
                 url: str = "", attempts: int = 1) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.url = url
        self.attempts = attempts


class ZohoAuthError(ZohoAPIError):
    """The refresh token was refused, or a fresh access token was still answered with 401."""


class ZohoMalformedPageError(ZohoError):
    """A page answered 200 but its body is not the JSON page we expect. Carries the raw bytes so the
    caller can log them; the entities on it are unknown and must be reported failed, never skipped."""

    def __init__(self, entity_type: EntityType, page: int, body: bytes, reason: str) -> None:
        super().__init__(f"malformed {entity_type.value} page {page} ({len(body)} bytes): {reason}")
        self.entity_type = entity_type
        self.page = page
        self.body = body
        self.reason = reason


@dataclass(frozen=True)
class RawPage:
    body: bytes
    has_more: bool
    page: int


@dataclass
class ZohoClientConfig:
    client_id: str
    client_secret: str
    refresh_token: str
    organization_id: str
    # Per data centre: accounts.zoho.eu / .in / .sa ... with the matching zohoapis domain below.
    accounts_url: str = "https://accounts.zoho.com"
    books_base_url: str = "https://www.zohoapis.com/books/v3"
    inventory_base_url: str = "https://www.zohoapis.com/inventory/v1"
    per_page: int = MAX_PER_PAGE
    timeout_s: float = 30.0
    connect_timeout_s: float = 10.0
    # Retries per request after the first attempt, for 429, 5xx and transport errors.
    max_retries: int = 5
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    # A server asking for more than this is treated as down rather than waited on.
    max_retry_after_s: float = 120.0
    # Refresh this long before expiry so a token never dies between our check and Zoho's.
    token_refresh_margin_s: float = 60.0
    # Malformed pages in a row after which the listing is abandoned (see iter_page_outcomes).
    max_consecutive_malformed: int = 3

    def __post_init__(self) -> None:
        for name in ("client_id", "client_secret", "refresh_token", "organization_id"):
            if not str(getattr(self, name)).strip():
                raise ValueError(f"ZohoClientConfig.{name} is empty")
        if not 1 <= self.per_page <= MAX_PER_PAGE:
            raise ValueError(f"per_page must be within [1, {MAX_PER_PAGE}], got {self.per_page}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.max_consecutive_malformed < 1:
            raise ValueError(f"max_consecutive_malformed must be >= 1, got {self.max_consecutive_malformed}")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> ZohoClientConfig:
        """Read ZOHO_CLIENT_ID, ZOHO_CLIENT_SECRET, ZOHO_REFRESH_TOKEN, ZOHO_ORGANIZATION_ID and the
        optional ZOHO_ACCOUNTS_URL, ZOHO_BOOKS_BASE_URL, ZOHO_INVENTORY_BASE_URL."""
        env = dict(os.environ if environ is None else environ)
        values: dict[str, Any] = {}
        for field_name in ("client_id", "client_secret", "refresh_token", "organization_id",
                           "accounts_url", "books_base_url", "inventory_base_url"):
            key = "ZOHO_" + field_name.upper()
            if key in env:
                values[field_name] = env[key]
        values.update(overrides)
        missing = [f for f in ("client_id", "client_secret", "refresh_token", "organization_id")
                   if f not in values]
        if missing:
            raise ValueError("missing Zoho settings: " + ", ".join("ZOHO_" + m.upper() for m in missing))
        return cls(**values)


_PAGE_CONTEXT_KEY = b'"page_context"'
_JSON_WHITESPACE = b" \t\r\n"


def read_has_more(body: bytes) -> bool | None:
    """`page_context.has_more_page` read from the tail of a page body without parsing the records.

    Zoho ends every list response with the page_context member, so we accept it only when it is the
    last member of the top-level object: the key sits after ',' or '{', and the object after it is
    followed by nothing but the final '}'. A "page_context" key inside a record fails that test (a
    ']' or '}' of the record follows), and so does a truncated body. None means "cannot tell"; the
    caller then treats the page as malformed. This does not prove the records part is valid JSON:
    whoever parses or hashes the body must still reject it (a wrong has_more could skip pages, a bad
    record body only fails that page).
    """
    tail_end = len(body.rstrip(_JSON_WHITESPACE))
    if tail_end == 0 or body[tail_end - 1:tail_end] != b"}":
        return None
    at = body.rfind(_PAGE_CONTEXT_KEY, 0, tail_end)
    if at <= 0:
        return None
    before = body[:at].rstrip(_JSON_WHITESPACE)
    if not before or before[-1:] not in (b",", b"{"):
        return None
    after = body[at + len(_PAGE_CONTEXT_KEY):tail_end - 1].lstrip(_JSON_WHITESPACE)
    if after[:1] != b":":
        return None
    try:
        context = json.loads(after[1:])
    except ValueError:  # includes UnicodeDecodeError
        return None
    if not isinstance(context, dict):
        return None
    has_more = context.get("has_more_page")
    return has_more if isinstance(has_more, bool) else None


def _retry_after_s(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def _error_fields(response: httpx.Response) -> tuple[int | None, str]:
    try:
        payload = response.json()
    except ValueError:
        return None, response.text[:200]
    if isinstance(payload, dict):
        code = payload.get("code")
        message = payload.get("message") or payload.get("error") or ""
        return (code if isinstance(code, int) else None), str(message)
    return None, str(payload)[:200]


class UnifiedZohoClient:
    """Async client for the Books and Inventory list endpoints of one organization.

    Not thread safe; safe to share between tasks of one event loop (token refresh is serialized).
    `sleep` and `clock` are injectable so tests can check waits without waiting.
    """

    def __init__(self, config: ZohoClientConfig, *, transport: httpx.AsyncBaseTransport | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(config.timeout_s, connect=config.connect_timeout_s),
        )
        self._sleep = sleep
        self._clock = clock
        self._access_token: str | None = None
        self._token_valid_until = 0.0
        self._token_lock = asyncio.Lock()
        self.token_refreshes = 0
        self.retries = 0

    async def __aenter__(self) -> UnifiedZohoClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- OAuth -------------------------------------------------------------------------------------

    async def access_token(self) -> str:
        """The cached access token, refreshed when it is within the margin of its expiry."""
        if self._access_token is not None and self._clock() < self._token_valid_until:
            return self._access_token
        async with self._token_lock:
            if self._access_token is not None and self._clock() < self._token_valid_until:
                return self._access_token
            return await self._refresh_token()

    async def _refresh_token(self) -> str:
        url = self.config.accounts_url.rstrip("/") + "/oauth/v2/token"
        response = await self._send("POST", url, data={
            "grant_type": "refresh_token",
            "refresh_token": self.config.refresh_token,
            "client_id": self.config.client_id,
            "client_secret": self.config.client_secret,
        })
        self.token_refreshes += 1
        try:
            payload = response.json()
        except ValueError:
            payload = None
        # Zoho answers a refused refresh token with {"error": "invalid_code"}, sometimes with 200.
        if (response.status_code != 200 or not isinstance(payload, dict)
                or not isinstance(payload.get("access_token"), str)):
            reason = payload.get("error") if isinstance(payload, dict) else response.text[:200]
            raise ZohoAuthError(f"token refresh refused by {url}: {reason}",
                                status=response.status_code, url=url)
        expires_in = float(payload.get("expires_in") or 3600)
        margin = min(self.config.token_refresh_margin_s, expires_in / 2)
        self._access_token = payload["access_token"]
        self._token_valid_until = self._clock() + expires_in - margin
        return str(payload["access_token"])

    def _drop_token(self, token: str) -> None:
        # Only the token that failed: a concurrent task may already have refreshed it.
        if self._access_token == token:
            self._access_token = None

    # -- HTTP with retries -------------------------------------------------------------------------

    def _backoff_s(self, attempt: int) -> float:
        delay = min(self.config.backoff_max_s, self.config.backoff_base_s * 2.0 ** (attempt - 1))
        # Jitter spreads clients that failed together; up to +10% never shortens a wait.
        return delay * (1 + random.random() * 0.1)

    async def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One request, retried on transport errors, 429 and 5xx; other statuses are returned."""
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._http.request(method, url, **kwargs)
            except httpx.TransportError as exc:
                if attempt > self.config.max_retries:
                    raise ZohoAPIError(f"{method} {url} failed after {attempt} attempts: {exc!r}",
                                       url=url, attempts=attempt) from exc
                self.retries += 1
                await self._sleep(self._backoff_s(attempt))
                continue
            if response.status_code != 429 and response.status_code < 500:
                return response
            if attempt > self.config.max_retries:
                code, message = _error_fields(response)
                raise ZohoAPIError(
                    f"{method} {url} answered {response.status_code} after {attempt} attempts: {message}",
                    status=response.status_code, code=code, url=url, attempts=attempt)
            wait = _retry_after_s(response)
            if wait is None:
                wait = self._backoff_s(attempt)
            elif wait > self.config.max_retry_after_s:
                code, message = _error_fields(response)
                raise ZohoAPIError(
                    f"{method} {url} asked to retry after {wait:.0f} s (limit {self.config.max_retry_after_s:.0f} s)",
                    status=response.status_code, code=code, url=url, attempts=attempt)
            self.retries += 1
            await self._sleep(wait)

    async def _get_api(self, url: str, params: dict[str, str | int]) -> httpx.Response:
        """GET with the access token; a 401 drops the token, refreshes once and retries once."""
        refreshed = False
        while True:
            token = await self.access_token()
            response = await self._send("GET", url, params=params,
                                        headers={"Authorization": f"Zoho-oauthtoken {token}"})
            if response.status_code == 401 and not refreshed:
                self._drop_token(token)
                refreshed = True
                continue
            if response.status_code == 200:
                return response
            code, message = _error_fields(response)
            error = ZohoAuthError if response.status_code == 401 else ZohoAPIError
            raise error(f"GET {url} answered {response.status_code} (code {code}): {message}",
                        status=response.status_code, code=code, url=url)

    # -- list endpoints ----------------------------------------------------------------------------

    def endpoint_url(self, entity_type: EntityType | str) -> str:
        entity = resolve_entity_type(entity_type)
        base = self.config.books_base_url if entity.api is ZohoApi.BOOKS else self.config.inventory_base_url
        return base.rstrip("/") + "/" + entity.path

    async def fetch_page_raw(self, entity_type: EntityType | str, page: int) -> RawPage:
        """One list page as the server sent it. Raises ZohoMalformedPageError when its tail carries
        no readable page_context (see read_has_more), ZohoAPIError/ZohoAuthError otherwise."""
        entity = resolve_entity_type(entity_type)
        if page < 1:
            raise ValueError(f"page numbers start at 1, got {page}")
        response = await self._get_api(self.endpoint_url(entity), {
            "organization_id": self.config.organization_id,
            "page": page,
            "per_page": self.config.per_page,
        })
        body = response.content
        has_more = read_has_more(body)
        if has_more is None:
            raise ZohoMalformedPageError(entity, page, body, "no readable page_context at the end of the body")
        return RawPage(body=body, has_more=has_more, page=page)

    async def _page_outcome(self, entity: EntityType, page: int) -> RawPage | ZohoMalformedPageError:
        try:
            return await self.fetch_page_raw(entity, page)
        except ZohoMalformedPageError as exc:
            return exc

    async def iter_page_outcomes(self, entity_type: EntityType | str, *, start_page: int = 1,
                                 prefetch: bool = True) -> AsyncGenerator[RawPage | ZohoMalformedPageError, None]:
        """Every page of a listing, malformed ones yielded as their error instead of raised.

        Walking rule after a malformed page: its has_more is unknown and so is its length, so it is
        taken as full and the next page is fetched; a well-formed page decides again (past the end
        Zoho answers an empty page with has_more false). Guessing "short" instead could drop every
        later page, a silent skip. After `max_consecutive_malformed` malformed pages in a row the
        walk stops and the last error is yielded with nothing after it: the caller must record the
        listing as incomplete.

        With `prefetch`, page n+1 is requested while the caller works on page n (only when page n
        says there is more), so network time overlaps hashing and database writes. API errors
        (ZohoAPIError) are raised where the failing page would have been yielded.
        """
        entity = resolve_entity_type(entity_type)
        page = start_page
        malformed_run = 0
        pending: asyncio.Task[RawPage | ZohoMalformedPageError] | None = asyncio.ensure_future(
            self._page_outcome(entity, page))
        try:
            while pending is not None:
                outcome = await pending
                pending = None
                if isinstance(outcome, RawPage):
                    malformed_run = 0
                    more = outcome.has_more
                else:
                    malformed_run += 1
                    more = malformed_run < self.config.max_consecutive_malformed
                if more and prefetch:
                    pending = asyncio.ensure_future(self._page_outcome(entity, page + 1))
                yield outcome
                if not more:
                    return
                page += 1
                if pending is None:
                    pending = asyncio.ensure_future(self._page_outcome(entity, page))
        finally:
            if pending is not None:
                pending.cancel()
                try:
                    await pending
                except (asyncio.CancelledError, ZohoError):
                    pass

    async def iter_pages_raw(self, entity_type: EntityType | str) -> AsyncGenerator[RawPage, None]:
        """Every page until has_more_page is false; raises on the first malformed page."""
        outcomes = self.iter_page_outcomes(entity_type)
        try:
            async for outcome in outcomes:
                if isinstance(outcome, ZohoMalformedPageError):
                    raise outcome
                yield outcome
        finally:
            await outcomes.aclose()

    async def list_all(self, entity_type: EntityType | str) -> list[dict[str, Any]]:
        """Every record of a listing as dicts (convenience; the sync path keeps pages as bytes)."""
        entity = resolve_entity_type(entity_type)
        records: list[dict[str, Any]] = []
        async for page in self.iter_pages_raw(entity):
            records.extend(parse_page_records(entity, page.page, page.body))
        return records


def parse_page_records(entity: EntityType, page: int, body: bytes) -> list[dict[str, Any]]:
    """The records of a page body; ZohoMalformedPageError when the body is not the expected JSON."""
    try:
        payload = json.loads(body)
    except ValueError as exc:  # includes UnicodeDecodeError
        raise ZohoMalformedPageError(entity, page, body, f"invalid JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise ZohoMalformedPageError(entity, page, body, "top level is not an object")
    records = payload.get(entity.list_key)
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise ZohoMalformedPageError(entity, page, body, f"{entity.list_key!r} is not a list of objects")
    return records
