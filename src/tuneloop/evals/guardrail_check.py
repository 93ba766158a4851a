"""The safety evaluator's optional use of the runtime's guardrail pipeline.

The pipeline is built from the agent config under test (its ``guardrails`` section),
so a bundle that adds or drops a guardrail changes the verdict. The runtime is an
optional dependency of evals: it is imported only when a suite asks for it.
"""

from __future__ import annotations

from typing import Any

from tuneloop.errors import ConfigError
from tuneloop.evals.evaluators.base import output_text


class GuardrailCheck:
    """Asks the runtime's guardrail pipeline whether it would block a case."""

    def __init__(self, build: Any, config_type: Any) -> None:
        self._build = build
        self._config_type = config_type
        self._pipelines: dict[int, tuple[Any, Any]] = {}

    @classmethod
    def load(cls) -> GuardrailCheck:
        """The check, if the runtime's guardrails are importable.

        Raises:
            ConfigError: they are not (the message says what is missing).
        """
        try:
            from tuneloop.config.model import AgentConfig
            from tuneloop.runtime.guardrails import build_pipeline
        except ImportError as exc:
            raise ConfigError(
                f"safety with guardrails: true needs tuneloop.runtime.guardrails ({exc}); "
                "set guardrails: false to use the refusal detector alone"
            ) from exc
        return cls(build_pipeline, AgentConfig)

    def _pipeline(self, original: Any) -> Any:
        # One pipeline per config object; keeping the object pins its id.
        cached = self._pipelines.get(id(original))
        if cached is not None and cached[0] is original:
            return cached[1]
        if original is None:
            raise ConfigError("safety with guardrails: true needs an agent config (--config)")
        config = original
        if not isinstance(config, self._config_type):
            config = self._config_type.from_data(config, source="eval config")
        pipeline = self._build(config.guardrails)
        self._pipelines[id(original)] = (original, pipeline)
        return pipeline

    async def blocked(self, case_input: Any, output: Any, config: Any) -> str | None:
        """Why the pipeline blocks the input or the output, or None if it lets both through."""
        pipeline = self._pipeline(config)
        for hop, content in (("input", case_input), ("output", output)):
            result = await pipeline.run(hop, output_text(content))
            if result.blocked:
                return f"guardrails blocked the {hop}: {result.reason}"
        return None
