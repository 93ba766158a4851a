"""Reading config and bundle files: YAML or JSON, errors with line and column, prompt files.

A prompt may live in its own file so it is reviewed as code::

    prompts:
      system: {file: prompts/system.txt}

The path is relative to the file that names it; loading replaces the reference with
the file's text, so a stored version always holds the prompt itself.
"""

from __future__ import annotations

import json
from collections.abc import Hashable
from pathlib import Path
from typing import Any, Literal

import yaml

from tuneloop.config.bundle import Bundle
from tuneloop.config.model import AgentConfig
from tuneloop.errors import ConfigError

DocumentFormat = Literal["yaml", "json"]


class _StrictLoader(yaml.SafeLoader):
    """A safe loader that refuses a key written twice in one mapping (YAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):
                continue  # SafeConstructor reports unhashable keys itself
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key!r} appears twice in one mapping (first at line "
                    f"{seen[key].start_mark.line + 1}); keep one",
                    key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def format_of(path: Path) -> DocumentFormat:
    """``json`` for ``.json`` files, ``yaml`` for anything else."""
    return "json" if path.suffix.lower() == ".json" else "yaml"


def parse_document(text: str, *, source: str, fmt: DocumentFormat = "yaml") -> Any:
    """Parse YAML or JSON text.

    Raises:
        ConfigError: the text does not parse; the message gives the line and column.
    """
    if fmt == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"{source}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
            ) from None
    try:
        # _StrictLoader is a SafeLoader: it builds plain data, never Python objects.
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "cannot parse"
        raise ConfigError(f"{source}: invalid YAML{where}: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {exc}") from None


def read_document(path: Path) -> Any:
    """Read and parse one YAML or JSON file.

    Raises:
        ConfigError: the file cannot be read or does not parse.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {str(path)!r}: {exc}") from None
    return parse_document(text, source=str(path), fmt=format_of(path))


def read_prompt_file(reference: Any, *, base_dir: Path, where: str) -> str:
    """The text a ``{file: PATH}`` reference points to, relative to ``base_dir``.

    Raises:
        ConfigError: the reference is malformed or the file cannot be read.
    """
    if set(reference) != {"file"} or not isinstance(reference["file"], str):
        raise ConfigError(
            f"{where}: a prompt is either text or {{file: PATH}}; got keys {sorted(reference)}"
        )
    path = base_dir / reference["file"]
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: cannot read prompt file {str(path)!r}: {exc}") from None


def resolve_prompt_files(data: Any, *, base_dir: Path, source: str) -> Any:
    """``data`` with every ``prompts.NAME: {file: PATH}`` replaced by the file's text."""
    if not isinstance(data, dict) or not isinstance(data.get("prompts"), dict):
        return data
    prompts = {
        name: (
            read_prompt_file(value, base_dir=base_dir, where=f"{source}: prompts.{name}")
            if isinstance(value, dict)
            else value
        )
        for name, value in data["prompts"].items()
    }
    return {**data, "prompts": prompts}


def config_from_text(
    text: str, *, source: str, fmt: DocumentFormat = "yaml", base_dir: Path | None = None
) -> AgentConfig:
    """Parse and validate a config; prompt files resolve against ``base_dir`` when given.

    Raises:
        ConfigError: invalid YAML/JSON (line and column), unknown keys or values (path).
    """
    data = parse_document(text, source=source, fmt=fmt)
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: an agent config is a mapping with at least `model:`")
    if base_dir is not None:
        data = resolve_prompt_files(data, base_dir=base_dir, source=source)
    return AgentConfig.from_data(data, source=source)


def load_config_file(path: Path) -> AgentConfig:
    """Load an agent config from a YAML or JSON file, reading its prompt files.

    Raises:
        ConfigError: the file, a prompt file, or the config in it is invalid.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {str(path)!r}: {exc}") from None
    return config_from_text(
        text, source=str(path), fmt=format_of(path), base_dir=path.parent.resolve()
    )


def _resolve_bundle_prompt_files(data: Any, *, base_dir: Path, source: str) -> Any:
    # An operation that sets a prompt may point at a file, as a config's prompts may.
    if not isinstance(data, dict) or not isinstance(data.get("recommendations"), list):
        return data
    recommendations = []
    for i, rec in enumerate(data["recommendations"]):
        if isinstance(rec, dict) and isinstance(rec.get("change"), dict | list):
            ops = rec["change"] if isinstance(rec["change"], list) else [rec["change"]]
            rec = {**rec, "change": [_resolve_op(op, i, base_dir, source) for op in ops]}
        recommendations.append(rec)
    return {**data, "recommendations": recommendations}


def _resolve_op(op: Any, index: int, base_dir: Path, source: str) -> Any:
    if not (isinstance(op, dict) and isinstance(op.get("value"), dict)):
        return op
    path = op.get("path")
    if not isinstance(path, str) or not path.startswith("/prompts/") or "file" not in op["value"]:
        return op
    where = f"{source}: recommendations.{index}: {path}"
    return {**op, "value": read_prompt_file(op["value"], base_dir=base_dir, where=where)}


def load_bundle_file(path: Path) -> Bundle:
    """Load a bundle from YAML or JSON; prompt values may be ``{file: PATH}`` references.

    Raises:
        ConfigError: the file does not parse (line and column) or is not a valid bundle.
    """
    data = read_document(path)
    data = _resolve_bundle_prompt_files(data, base_dir=path.parent.resolve(), source=str(path))
    return Bundle.from_data(data, source=str(path))
