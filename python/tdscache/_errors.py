"""The tdscache exception hierarchy: one base class, a subclass per failure a caller can act on.

Every exception carries the C status code (the numbers of capi/tdscache.h, which never change),
its name and, for input errors, the byte offset where the problem was found. The native module
raises these classes through error_class(); nothing here imports the native module.
"""

from __future__ import annotations

from typing import Optional


class Error(Exception):
    """Base class of every tdscache error."""

    def __init__(self, message: str, status: int = -25, status_name: str = "internal",
                 offset: Optional[int] = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.status_name = status_name
        self.offset = offset

    def __str__(self) -> str:
        where = f" (at byte {self.offset})" if self.offset is not None else ""
        return f"{self.message}{where} [{self.status_name}]"


class InputError(Error, ValueError):
    """The JSON or the Python data cannot be canonicalized (malformed, NaN, too deep...)."""


class PageError(InputError):
    """An API page body has no items array, or an item is not an object or has no id."""


class ConfigError(Error, ValueError):
    """A bad option: an unparseable Redis URL, an invalid JSON Pointer, an unknown scheme."""


class CacheUnavailableError(Error, ConnectionError):
    """Redis could not be used: unreachable, connection lost, protocol error, breaker open."""


class CacheTimeoutError(CacheUnavailableError, TimeoutError):
    """A connect or command deadline passed."""


class TLSError(CacheUnavailableError):
    """TLS handshake or certificate verification failed."""


class AuthError(CacheUnavailableError):
    """AUTH was rejected, or the ACL user lacks a permission."""


class ServerError(Error):
    """Redis answered with an error reply (OOM, READONLY, ...)."""


class InternalError(Error):
    """A bug inside tdscache; the message says where."""


_CLASSES: dict[int, type[Error]] = {
    -1: ConfigError,           # invalid_argument
    -2: InternalError,         # out_of_memory
    -3: InputError,            # json_malformed
    -4: InputError,            # utf8_invalid
    -5: InputError,            # depth_exceeded
    -6: InputError,            # number_nan_inf
    -7: InputError,            # number_out_of_range
    -8: InputError,            # duplicate_key
    -9: InputError,            # lone_surrogate
    -10: PageError,            # item_not_object
    -11: PageError,            # item_no_id
    -12: PageError,            # page_malformed
    -13: ConfigError,          # pointer_invalid
    -14: ConfigError,          # url_invalid
    -15: CacheUnavailableError,  # connect_failed
    -16: CacheTimeoutError,    # timeout
    -17: CacheUnavailableError,  # io
    -18: CacheUnavailableError,  # protocol
    -19: TLSError,             # tls
    -20: AuthError,            # auth
    -21: ServerError,          # server_error
    -22: CacheUnavailableError,  # circuit_open
    -23: CacheUnavailableError,  # cluster
    -24: Error,                # not_found
    -25: InternalError,        # internal
}


def error_class(status: int) -> type[Error]:
    """The exception class for a C status code."""
    return _CLASSES.get(status, Error)


__all__ = [
    "Error", "InputError", "PageError", "ConfigError", "CacheUnavailableError", "CacheTimeoutError",
    "TLSError", "AuthError", "ServerError", "InternalError", "error_class",
]
