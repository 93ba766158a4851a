"""The one exception tree of tuneloop.

```
TuneloopError                 root: catch this to catch anything tuneloop raises
├── UsageError                the caller did something wrong; the message says how to fix it
│   ├── ConfigError           invalid configuration, settings or bundle
│   ├── InvalidInputError     a request body, file or argument that cannot be accepted
│   │   ├── MalformedPayloadError   bytes that do not decode (OTLP protobuf / JSON)
│   │   └── PayloadTooLargeError    a body over the configured limit
│   ├── NotFoundError         a named thing does not exist (in this project)
│   ├── ConflictError         it changed since the caller read it (compare-and-set failed)
│   ├── IllegalTransitionError  a run state machine refused a transition
│   ├── GateFailedError       the version failed its eval gate; force it with a reason
│   └── AuthError             missing or invalid credentials
│       └── PermissionDeniedError   valid credentials, wrong scope or project
└── RuntimeFailure            something outside the caller's control failed
    ├── StoreError            the database refused or is unreachable
    │   └── StoreBusyError    the write queue is full; retry later
    ├── ProviderError         an LLM provider failed; `.retryable`, `.retry_after_s`
    │   ├── ProviderRateLimitError   429: slow down (retryable; honours Retry-After)
    │   ├── ProviderTimeoutError     no answer in time (retryable)
    │   ├── ProviderServerError      5xx or a garbled answer (retryable)
    │   ├── ProviderConnectionError  refused, reset or unreachable (retryable)
    │   ├── ProviderBadRequestError  the provider rejected the request (not retryable)
    │   └── ProviderAuthError        missing, wrong or unauthorized API key (not retryable)
    └── ToolError             a tool failed; `.kind`, `.retryable`, `.retry_after_s`
        ├── ToolTimeoutError         the tool ran past its timeout (retryable)
        ├── ToolTransientError       rate limit, server error or connection (retryable)
        └── ToolOutputError          the tool returned the wrong shape (not retryable)
```
"""


class TuneloopError(Exception):
    """Root of every exception tuneloop raises."""


class UsageError(TuneloopError):
    """The caller did something wrong; the message names the problem and the fix."""


class ConfigError(UsageError):
    """Invalid configuration, settings or bundle."""


class InvalidInputError(UsageError):
    """A request body, file or argument that cannot be accepted."""


class MalformedPayloadError(InvalidInputError):
    """Bytes that do not decode as the declared format."""


class PayloadTooLargeError(InvalidInputError):
    """A body over the configured size limit."""


class NotFoundError(UsageError):
    """A named thing does not exist in the caller's project."""


class ConflictError(UsageError):
    """The thing changed since the caller read it; re-read it and retry (HTTP 409)."""


class IllegalTransitionError(UsageError):
    """A run's state machine refused a transition (from a terminal state, or out of order)."""


class GateFailedError(UsageError):
    """A version failed its eval gate, so it may not start an experiment or rollout unforced."""


class AuthError(UsageError):
    """Missing or invalid credentials."""


class PermissionDeniedError(AuthError):
    """Valid credentials that do not allow this action."""


class RuntimeFailure(TuneloopError):
    """Something outside the caller's control failed."""


class StoreError(RuntimeFailure):
    """The database refused an operation or is unreachable."""


class StoreBusyError(StoreError):
    """The write queue is full; the caller should retry later."""


class ProviderError(RuntimeFailure):
    """An LLM provider failed.

    Attributes:
        retryable: whether the same request may succeed if sent again later.
        retry_after_s: how long the provider asked to wait (Retry-After), if it said.
        status_code: the HTTP status the provider answered, if any.
    """

    retryable: bool = False

    def __init__(
        self,
        message: str = "",
        *,
        retry_after_s: float | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.status_code = status_code


class ProviderRateLimitError(ProviderError):
    """The provider is rate limiting (429); wait `retry_after_s` when it is set."""

    retryable = True


class ProviderTimeoutError(ProviderError):
    """The provider did not answer in time."""

    retryable = True


class ProviderServerError(ProviderError):
    """The provider failed on its side (5xx) or answered something unreadable."""

    retryable = True


class ProviderConnectionError(ProviderError):
    """The provider could not be reached: refused, reset, DNS."""

    retryable = True


class ProviderBadRequestError(ProviderError):
    """The provider rejected the request itself (400, 404, 422); sending it again fails again."""


class ProviderAuthError(ProviderError):
    """The provider refused the credentials (401, 403); fix the API key or its permissions."""


class ToolError(RuntimeFailure):
    """A tool failed.

    Tools raise it (or a subclass) to say how they failed; the runtime's tool runner
    retries the kinds a tool's retry policy lists (``timeout``, ``rate_limit``,
    ``server_error``, ``connection``) and gives up at once on anything else.

    Attributes:
        kind: the failure kind the retry policy matches (``error`` for a plain failure).
        retryable: whether the call may succeed if made again.
        retry_after_s: how long the tool's backend asked to wait, if it said.
    """

    kind: str = "error"
    retryable: bool = False

    def __init__(self, message: str = "", *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ToolTimeoutError(ToolError):
    """The tool ran past its ``timeout_ms``."""

    kind = "timeout"
    retryable = True


class ToolTransientError(ToolError):
    """A failure expected to pass: ``kind`` is ``rate_limit``, ``server_error`` or ``connection``.

    Example:
        ``raise ToolTransientError("inventory API answered 503", kind="server_error")``
    """

    retryable = True

    def __init__(
        self, message: str = "", *, kind: str = "server_error", retry_after_s: float | None = None
    ) -> None:
        if kind not in ("rate_limit", "server_error", "connection"):
            raise InvalidInputError(
                f"ToolTransientError kind must be 'rate_limit', 'server_error' or "
                f"'connection', got {kind!r}; raise ToolTimeoutError for timeouts"
            )
        super().__init__(message, retry_after_s=retry_after_s)
        self.kind = kind


class ToolOutputError(ToolError):
    """The tool returned data that does not match its declared output type."""

    kind = "invalid_output"
