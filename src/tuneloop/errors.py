"""The one exception tree of tuneloop.

```
TuneloopError                 root: catch this to catch anything tuneloop raises
├── UsageError                the caller did something wrong; the message says how to fix it
│   ├── ConfigError           invalid configuration, settings or bundle
│   ├── InvalidInputError     a request body, file or argument that cannot be accepted
│   │   ├── MalformedPayloadError   bytes that do not decode (OTLP protobuf / JSON)
│   │   └── PayloadTooLargeError    a body over the configured limit
│   ├── NotFoundError         a named thing does not exist (in this project)
│   └── AuthError             missing or invalid credentials
│       └── PermissionDeniedError   valid credentials, wrong scope or project
└── RuntimeFailure            something outside the caller's control failed
    ├── StoreError            the database refused or is unreachable
    │   └── StoreBusyError    the write queue is full; retry later
    ├── ProviderError         an LLM provider failed
    └── ToolError             a tool failed
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
    """An LLM provider failed."""


class ToolError(RuntimeFailure):
    """A tool failed."""
