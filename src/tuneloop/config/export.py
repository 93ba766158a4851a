"""Writing a version back out as files: a YAML config and one text file per prompt.

Only values that differ from the defaults are written, so the file reads like one a
person wrote; loading it again gives the same effective config and the same hash.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tuneloop.config.model import AgentConfig
from tuneloop.errors import ConfigError

_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")


def export_files(
    config: AgentConfig,
    *,
    config_name: str = "agent.yaml",
    prompt_dir: str = "prompts",
    header: str | None = None,
) -> dict[str, str]:
    """The files of an export: relative path → text.

    Prompts whose names are safe file names go to ``prompt_dir/NAME.txt`` and are
    referenced as ``{file: ...}``; any other prompt stays inline.
    """
    data = config.model_dump(mode="json", exclude_defaults=True)
    # The model is required, so it is always written even if someone gives it a default.
    data = {"model": config.model.model_dump(mode="json"), **data}
    files: dict[str, str] = {}
    prompts: dict[str, object] = {}
    for name, text in config.prompts.items():
        if _SAFE_NAME.match(name):
            relative = f"{prompt_dir}/{name}.txt"
            files[relative] = text
            prompts[name] = {"file": relative}
        else:
            prompts[name] = text
    if prompts:
        data["prompts"] = prompts
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
    comment = "".join(f"# {line}\n" for line in (header or "").splitlines())
    files[config_name] = comment + body
    return files


def write_export(
    config: AgentConfig,
    directory: Path,
    *,
    config_name: str = "agent.yaml",
    header: str | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Write :func:`export_files` under ``directory``; returns the paths written.

    Raises:
        ConfigError: a file exists and ``overwrite`` is false (nothing is written then).
    """
    files = export_files(config, config_name=config_name, header=header)
    targets = {directory / relative: text for relative, text in files.items()}
    existing = sorted(str(path) for path in targets if path.exists())
    if existing and not overwrite:
        raise ConfigError(
            f"export would overwrite {', '.join(existing)}; choose another directory "
            "or pass --force"
        )
    for path, text in targets.items():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot write {str(path)!r}: {exc}") from None
    return sorted(targets)
