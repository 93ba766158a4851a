"""Tool contracts: `@tool` / `Tool(...)`, schemas from type hints, the result envelope.

A tool is a plain function (sync or async). Its parameters' type hints become a
pydantic model that validates the model's arguments and gives the JSON schema the
provider sees; its return type validates what it returns. Every call ends in one
envelope, ``{status: success|partial|error, data, metadata}``.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, cast, get_type_hints, overload

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model
from pydantic_core import PydanticSerializationError, to_jsonable_python

from tuneloop.config.model import SideEffect
from tuneloop.errors import ConfigError, ToolOutputError
from tuneloop.runtime.providers.base import Message, ToolSpec

ToolStatus = Literal["success", "partial", "error"]
SIDE_EFFECT_RANK: Mapping[SideEffect, int] = MappingProxyType(
    {"read": 0, "write": 1, "external": 2}
)
_SECTION = re.compile(
    r"^(Args|Arguments|Parameters|Returns|Yields|Raises|Examples?|Notes?|Attributes|See Also):\s*$"
)
_ARG_LINE = re.compile(r"^(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


@dataclass(frozen=True, slots=True)
class ToolResult:
    """The envelope every tool call ends in.

    Attributes:
        status: ``success``; ``partial`` (degraded: a fallback answered, or the tool
            said so); ``error`` (``metadata["error"]`` says what and whether to retry).
        data: the tool's output as JSON data.
        metadata: how the result came about (attempts, cache hit, fallback, replay...).
    """

    status: ToolStatus
    data: Any = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def success(cls, data: Any = None, **metadata: Any) -> ToolResult:
        """A complete result."""
        return cls("success", data, metadata)

    @classmethod
    def partial(cls, data: Any = None, **metadata: Any) -> ToolResult:
        """A usable but incomplete or degraded result."""
        return cls("partial", data, metadata)

    @classmethod
    def error(
        cls,
        kind: str,
        message: str,
        *,
        retryable: bool = False,
        details: list[dict[str, Any]] | None = None,
        **metadata: Any,
    ) -> ToolResult:
        """A failed call: ``kind`` is machine-readable, ``message`` tells the model what to do."""
        error: dict[str, Any] = {"type": kind, "message": message, "retryable": retryable}
        if details:
            error["details"] = details
        return cls("error", None, {**metadata, "error": error})

    @property
    def error_kind(self) -> str | None:
        """The error's kind (``timeout``, ``invalid_arguments``...) when the status is error."""
        error = self.metadata.get("error")
        return str(error["type"]) if isinstance(error, Mapping) else None

    @property
    def error_message(self) -> str | None:
        """The error's message when the status is error."""
        error = self.metadata.get("error")
        return str(error["message"]) if isinstance(error, Mapping) else None

    def with_metadata(self, **metadata: Any) -> ToolResult:
        """The same result with more metadata."""
        return ToolResult(self.status, self.data, {**self.metadata, **metadata})

    def to_dict(self) -> dict[str, Any]:
        """Plain data: the envelope."""
        return {"status": self.status, "data": self.data, "metadata": dict(self.metadata)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ToolResult:
        """The inverse of `to_dict`."""
        return cls(data["status"], data.get("data"), dict(data.get("metadata") or {}))

    def to_content(self) -> str:
        """What the model reads: status, data, and the error when there is one."""
        body: dict[str, Any] = {"status": self.status, "data": self.data}
        if self.status == "error":
            body["error"] = self.metadata.get("error")
        return json.dumps(body, ensure_ascii=False, default=str)

    def to_message(self, call_id: str, *, name: str | None = None) -> Message:
        """The tool message answering the call ``call_id``."""
        return Message.tool(call_id, self.to_content(), name=name)


@dataclass(frozen=True, slots=True)
class ToolContext:
    """What a tool may know about its call; declare a parameter of this type to get it.

    Pass ``idempotency_key`` to the system a write tool changes (a payment API's
    ``Idempotency-Key`` header) so a retried call is recognized there too.
    """

    tool: str
    call_id: str
    idempotency_key: str
    attempt: int


@dataclass(frozen=True, slots=True)
class ArgumentCheck:
    """The model's arguments, validated: the values to call with, or what is wrong."""

    values: BaseModel | None
    data: dict[str, Any]
    problems: tuple[dict[str, Any], ...] = ()

    @property
    def ok(self) -> bool:
        """Whether the arguments are valid."""
        return self.values is not None


class Tool:
    """A function the model can call, with validated arguments and output.

    Example:
        ```python
        @tool(side_effect="write")
        async def issue_refund(order_id: str, amount_cents: int) -> Refund:
            # The docstring's summary describes the tool, its Args: the parameters.
            ...
        ```

    Args:
        fn: the function; its docstring's summary and ``Args:`` describe the tool.
        name: the tool's name (default: the function's).
        description: overrides the docstring's summary.
        side_effect: ``read``, ``write`` or ``external``; the config may only raise it.
        requires_approval: always ask a human first; the config may only add approval.
        output_type: validate the output against this type instead of the return hint.

    Raises:
        ConfigError: the signature cannot be described as a JSON object (``*args``,
            positional-only parameters, unresolvable hints).
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        side_effect: SideEffect = "read",
        requires_approval: bool = False,
        output_type: Any = None,
    ) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", self.name):
            raise ConfigError(
                f"tool name {self.name!r} must be 1-64 letters, digits, '_' or '-' "
                "(what providers accept); pass name="
            )
        if side_effect not in SIDE_EFFECT_RANK:
            raise ConfigError(f"tool {self.name!r}: unknown side_effect {side_effect!r}")
        summary, arg_docs = _parse_docstring(inspect.getdoc(fn) or "")
        self.description = description or summary or self.name
        self.side_effect: SideEffect = side_effect
        self.requires_approval = requires_approval
        self.is_async = inspect.iscoroutinefunction(fn)
        self.context_param: str | None = None
        self.input_model = self._input_model(arg_docs)
        self._output = self._output_adapter(output_type)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the function directly, as if it were not a tool."""
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Tool({self.name!r}, side_effect={self.side_effect!r})"

    def schema(self) -> dict[str, Any]:
        """The JSON schema of the arguments (what the provider's tool list carries)."""
        schema = self.input_model.model_json_schema()
        schema.pop("title", None)
        schema.setdefault("properties", {})
        return schema

    def spec(self, description: str | None = None) -> ToolSpec:
        """The tool as the model sees it; ``description`` overrides (from the config)."""
        return ToolSpec(self.name, description or self.description, self.schema())

    def check_arguments(self, raw: str | Mapping[str, Any]) -> ArgumentCheck:
        """Validate the model's arguments (JSON text or a dict); never raises."""
        if isinstance(raw, str):
            try:
                parsed = json.loads(raw) if raw.strip() else {}
            except json.JSONDecodeError as exc:
                problem = {
                    "loc": "",
                    "msg": f"arguments are not valid JSON: {exc.msg} at line {exc.lineno} "
                    f"column {exc.colno}",
                    "type": "json_invalid",
                }
                return ArgumentCheck(None, {}, (problem,))
        else:
            parsed = dict(raw)
        if not isinstance(parsed, dict):
            problem = {
                "loc": "",
                "msg": f"arguments must be a JSON object, got {type(parsed).__name__}",
                "type": "object_type",
            }
            return ArgumentCheck(None, {}, (problem,))
        try:
            values = self.input_model.model_validate(parsed)
        except ValidationError as exc:
            problems = tuple(
                {
                    "loc": ".".join(str(part) for part in error["loc"]),
                    "msg": error["msg"],
                    "type": error["type"],
                }
                for error in exc.errors(include_url=False, include_context=False)
            )
            return ArgumentCheck(None, parsed, problems)
        return ArgumentCheck(values, values.model_dump(mode="json"))

    async def invoke(self, values: BaseModel, context: ToolContext | None = None) -> Any:
        """Call the function with validated arguments (a sync one in a worker thread)."""
        kwargs = {name: getattr(values, name) for name in type(values).model_fields}
        if self.context_param is not None:
            kwargs[self.context_param] = context
        if self.is_async:
            return await cast(Callable[..., Awaitable[Any]], self.fn)(**kwargs)
        # A thread, so a blocking tool cannot stall the loop and its timeout still fires.
        return await asyncio.to_thread(self.fn, **kwargs)

    def check_output(self, value: Any) -> ToolResult:
        """The envelope for what the function returned, validated against its output type.

        A function may return a `ToolResult` itself (to report ``partial``); its data
        is validated the same way.

        Raises:
            ToolOutputError: the output does not match the declared type, or is not JSON.
        """
        status: ToolStatus = "success"
        metadata: Mapping[str, Any] = {}
        if isinstance(value, ToolResult):
            if value.status == "error":
                return value  # the tool reports its own failure; nothing to validate
            status, metadata, value = value.status, value.metadata, value.data
        try:
            if self._output is not None:
                data = self._output.dump_python(self._output.validate_python(value), mode="json")
            else:
                data = to_jsonable_python(value)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'output'}: {e['msg']}"
                for e in exc.errors(include_url=False)
            )
            raise ToolOutputError(
                f"tool {self.name!r} returned the wrong shape: {problems}; fix the tool or "
                "its return type"
            ) from None
        except PydanticSerializationError as exc:
            raise ToolOutputError(
                f"tool {self.name!r} returned data that is not JSON: {exc}; return JSON-able "
                "values or pydantic models"
            ) from None
        return ToolResult(status, data, metadata)

    def _hints(self) -> dict[str, Any]:
        try:
            return get_type_hints(self.fn)
        except (NameError, TypeError) as exc:
            raise ConfigError(
                f"tool {self.name!r}: cannot resolve its type hints ({exc}); define the types "
                "at module level"
            ) from None

    def _input_model(self, arg_docs: Mapping[str, str]) -> type[BaseModel]:
        hints = self._hints()
        fields: dict[str, Any] = {}
        for pname, param in inspect.signature(self.fn).parameters.items():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
                raise ConfigError(
                    f"tool {self.name!r}: parameter {pname!r} cannot be passed by name from "
                    "JSON arguments; use plain or keyword-only parameters"
                )
            annotation = hints.get(pname, Any)
            if annotation is ToolContext:
                self.context_param = pname
                continue
            default = ... if param.default is param.empty else param.default
            fields[pname] = (annotation, Field(default, description=arg_docs.get(pname)))
        model_name = "".join(part.title() for part in re.split(r"[_-]", self.name)) + "Arguments"
        try:
            return create_model(model_name, __config__=ConfigDict(extra="forbid"), **fields)
        except (TypeError, ValueError, NameError) as exc:
            raise ConfigError(
                f"tool {self.name!r}: cannot build its argument schema: {exc}"
            ) from None

    def _output_adapter(self, output_type: Any) -> TypeAdapter[Any] | None:
        if output_type is None:
            output_type = self._hints().get("return", Any)
        if output_type is Any or output_type is ToolResult:
            return None
        return TypeAdapter(output_type)


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    side_effect: SideEffect = "read",
    requires_approval: bool = False,
    output_type: Any = None,
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    side_effect: SideEffect = "read",
    requires_approval: bool = False,
    output_type: Any = None,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a function a `Tool`: ``@tool`` or ``@tool(side_effect="write", ...)``."""

    def wrap(function: Callable[..., Any]) -> Tool:
        return Tool(
            function,
            name=name,
            description=description,
            side_effect=side_effect,
            requires_approval=requires_approval,
            output_type=output_type,
        )

    return wrap if fn is None else wrap(fn)


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """The summary (text before the first section) and the ``Args:`` descriptions."""
    summary: list[str] = []
    args: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    for line in doc.splitlines():
        stripped = line.strip()
        header = _SECTION.match(stripped)
        if header and not line.startswith((" ", "\t")):
            section, current = header.group(1), None
            continue
        if section is None:
            summary.append(stripped)
        elif section in ("Args", "Arguments", "Parameters") and stripped:
            match = _ARG_LINE.match(stripped)
            if match and len(line) - len(line.lstrip()) <= 4:
                current = match.group(1).lstrip("*")
                args[current] = match.group(2).strip()
            elif current is not None:
                args[current] = f"{args[current]} {stripped}".strip()
    paragraphs = " ".join(line or "\n\n" for line in summary).split("\n\n")
    text = "\n\n".join(" ".join(p.split()) for p in paragraphs if p.strip())
    return text, args
