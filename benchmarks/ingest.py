"""Ingest throughput: tuneloop against Arize Phoenix on the same OTLP/HTTP payloads.

Run: ``.venv/bin/python benchmarks/ingest.py [--spans 200000] [--peer phoenix|none]``.
See benchmarks/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import (
    PHOENIX_VERSION,
    Batch,
    PeerUnavailable,
    SendResult,
    Target,
    exit_on_sigterm,
    poll_until,
    send_batches,
    sqlite_bytes,
    sqlite_rows,
    start_phoenix,
    start_tuneloop,
    tree_cpu_seconds,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans, Span, Status

from tuneloop import semconv as sc

BATCH_SPANS = 512
WORKERS = 4
SPANS_PER_RUN = 6
TARGET_DURABLE_SPANS_S = 20_000
TARGET_PEAK_BYTES = 300 * 1000**2
TARGET_BYTES_PER_SPAN = 1000
MB = 1000**2

# --- realistic agent traces ------------------------------------------------------------

_FIRST = (
    "Maria", "James", "Aiko", "Omar", "Lena", "Pedro", "Chloe", "Ravi", "Sofia", "Tom",
    "Ingrid", "Kwame", "Yuki", "Hana",
)  # fmt: skip
_PRODUCTS = (
    "trail running shoes", "espresso machine", "noise-cancelling headphones", "standing desk",
    "winter jacket", "4K monitor", "cast-iron skillet", "kids' bike helmet", "yoga mat",
    "robot vacuum", "linen duvet cover", "mechanical keyboard",
)  # fmt: skip
_CITIES = (
    "Lyon", "Austin", "Leeds", "Osaka", "Porto", "Denver", "Gdansk", "Tampere", "Accra", "Pune",
    "Cork", "Graz",
)  # fmt: skip
# (what the customer wants, second tool, how the customer says it)
_INTENTS = (
    ("status", "get_shipping_status", "my order {order} still hasn't arrived. It was supposed "
     "to be delivered {days} days ago and the tracking page hasn't changed since {city}."),
    ("refund", "issue_refund", "I returned the {product} from order {order} {days} days ago "
     "and I still don't see the refund on my card. Can you check what's going on?"),
    ("address", "update_address", "I just realised order {order} is going to my old address "
     "in {city}. Can you change it before it ships? I moved last week."),
    ("damaged", "create_return", "the {product} in order {order} arrived with a cracked "
     "casing and the box was crushed. I'd like a replacement, not a refund if possible."),
    ("cancel", "cancel_order", "please cancel order {order}. I ordered the {product} twice "
     "by mistake and only need one of them."),
    ("stock", "check_inventory", "is the {product} back in stock? Order {order} was "
     "cancelled because it was unavailable and I'd still like one before I travel to {city}."),
)  # fmt: skip
_OPENERS = ("Hi,", "Hello there,", "Hey,", "Good morning,", "Hi team,", "")
_CLOSERS = (
    "Thanks a lot.", "This is the second time I'm writing about this.", "Appreciate the help!",
    "I need this sorted by Friday.", "Thank you, {name}", "", "Cheers, {name}",
)  # fmt: skip
_ANSWERS = {
    True: (
        "Thanks for your patience, {name}. I checked order {order}: {detail} "
        "You'll get a confirmation email within the hour. Is there anything else I can help "
        "you with today?",
        "Good news, {name} — order {order} is sorted. {detail} I've added a note to your "
        "account so any of my colleagues can see what we agreed.",
    ),
    False: (
        "I'm sorry, {name}, our order system isn't responding right now so I couldn't finish "
        "this for order {order}. I've escalated it to a colleague who will email you within "
        "24 hours. Your reference is {ref}.",
    ),
}
_DETAILS = {
    "status": "the parcel is at the {city} depot and is scheduled for delivery on {day}.",
    "refund": "the refund of {amount} was issued on {day} and takes 3-5 business days.",
    "address": "the shipping address is now updated; the parcel leaves our warehouse {day}.",
    "damaged": "a replacement {product} ships {day}; a prepaid return label is attached.",
    "cancel": "the duplicate order is cancelled and {amount} will be refunded by {day}.",
    "stock": "the {product} is back in stock in {city}; I reserved one for you until {day}.",
}
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "tomorrow", "today"]
_MODELS = (("gpt-4o", "openai", "gpt-4o-2024-08-06"), ("gpt-4o-mini", "openai", "gpt-4o-mini"))


def _kv(key: str, value: str | int | bool) -> KeyValue:
    kv = KeyValue(key=key)
    if isinstance(value, bool):
        kv.value.bool_value = value
    elif isinstance(value, int):
        kv.value.int_value = value
    else:
        kv.value.string_value = value
    return kv


def _attrs(values: dict[str, str | int | bool]) -> list[KeyValue]:
    return [_kv(key, value) for key, value in values.items()]


def _messages(*items: tuple[str, dict[str, object]]) -> str:
    return json.dumps([{"role": role, "parts": [part]} for role, part in items])


def _text(content: str) -> dict[str, object]:
    return {"type": "text", "content": content}


def _run_spans(rng: random.Random, start_ns: int) -> list[Span]:
    """One agent run: root, guardrail, two chat calls, two tool calls; in end-time order."""
    name, order = rng.choice(_FIRST), f"#{rng.choice('ABCDKMX')}{rng.randrange(10**5, 10**6)}"
    intent, second_tool, ask = rng.choice(_INTENTS)
    slots = {
        "name": name,
        "order": order,
        "product": rng.choice(_PRODUCTS),
        "city": rng.choice(_CITIES),
        "days": rng.randrange(2, 15),
        "day": rng.choice(_DAYS),
        "amount": f"${rng.randrange(12, 480)}.{rng.randrange(100):02d}",
        "ref": f"ESC-{rng.randrange(10**6):06d}",
    }
    question = " ".join(
        part for part in (rng.choice(_OPENERS), ask, rng.choice(_CLOSERS)) if part
    ).format(**slots)
    trace_id, root_id = rng.randbytes(16), rng.randbytes(8)
    unit = f"user-{rng.randrange(20_000):05d}"
    variant = "concise-v2" if int(unit[-5:]) % 2 else "control"
    model, provider, response_model = _MODELS[0] if rng.random() < 0.8 else _MODELS[1]
    ms = 1_000_000
    spans: list[Span] = []

    def child(name: str, begin: int, duration: int, kind: Any, attrs: dict[str, Any]) -> Span:
        span = Span(trace_id=trace_id, span_id=rng.randbytes(8), parent_span_id=root_id)
        span.name, span.kind = name, kind
        span.start_time_unix_nano, span.end_time_unix_nano = begin, begin + duration
        span.attributes.extend(_attrs(attrs))
        spans.append(span)
        return span

    t = start_ns + rng.randrange(1, 4) * ms
    duration = rng.randrange(4, 40) * ms
    guardrail = {
        sc.TL_SPAN_KIND: "guardrail",
        sc.TL_GUARDRAIL_NAME: "pii",
        sc.TL_GUARDRAIL_VERDICT: "allow",
    }
    child("guardrail pii", t, duration, Span.SPAN_KIND_INTERNAL, guardrail)
    t += duration + rng.randrange(1, 5) * ms

    tools = [("lookup_order", {"order_id": order}), (second_tool, {"order_id": order})]
    calls = [
        {
            "type": "tool_call",
            "id": f"call_{rng.getrandbits(64):016x}",
            "name": tool,
            "arguments": args,
        }
        for tool, args in tools
    ]
    first_out = json.dumps([{"role": "assistant", "parts": calls, "finish_reason": "tool_call"}])

    def chat(begin: int, input_messages: str, output_messages: str, out_tokens: int) -> int:
        duration = int(rng.lognormvariate(math.log(900), 0.5)) * ms
        attrs = {
            sc.GEN_AI_OPERATION_NAME: sc.OP_CHAT,
            sc.GEN_AI_REQUEST_MODEL: model,
            sc.GEN_AI_RESPONSE_MODEL: response_model,
            sc.GEN_AI_PROVIDER_NAME: provider,
            sc.GEN_AI_USAGE_INPUT_TOKENS: 420 + len(input_messages) // 4,
            sc.GEN_AI_USAGE_OUTPUT_TOKENS: out_tokens,
            sc.GEN_AI_INPUT_MESSAGES: input_messages,
            sc.GEN_AI_OUTPUT_MESSAGES: output_messages,
        }
        child(f"chat {model}", begin, duration, Span.SPAN_KIND_CLIENT, attrs)
        return begin + duration

    user = ("user", _text(question))
    t = chat(t, _messages(user), first_out, rng.randrange(30, 60)) + rng.randrange(1, 4) * ms

    results: list[tuple[str, dict[str, object]]] = []
    all_ok = True
    for (tool, _args), call in zip(tools, calls, strict=True):
        failed = rng.random() < 0.08
        all_ok = all_ok and not failed
        duration = int(rng.lognormvariate(math.log(120), 0.7)) * ms + ms
        attrs = {
            sc.GEN_AI_OPERATION_NAME: sc.OP_EXECUTE_TOOL,
            sc.GEN_AI_TOOL_NAME: tool,
            sc.GEN_AI_TOOL_CALL_ID: call["id"],
            sc.TL_TOOL_STATUS: sc.TOOL_STATUS_ERROR if failed else sc.TOOL_STATUS_SUCCESS,
        }
        span = child(f"execute_tool {tool}", t, duration, Span.SPAN_KIND_INTERNAL, attrs)
        if failed:
            span.attributes.extend([_kv(sc.ERROR_TYPE, "503"), _kv(sc.TL_TOOL_RETRYABLE, True)])
            span.status.code = Status.STATUS_CODE_ERROR
            span.status.message = f"{tool}: 503 Service Unavailable from orders-api"
            output: dict[str, object] = {"error": "503 Service Unavailable"}
        else:
            output = {"order_id": order, "status": intent, "city": slots["city"], "ok": True}
        results.append(
            ("tool", {"type": "tool_call_response", "id": call["id"], "response": output})
        )
        t += duration + rng.randrange(1, 3) * ms

    detail = _DETAILS[intent].format(**slots)
    answer = rng.choice(_ANSWERS[all_ok]).format(detail=detail[0].upper() + detail[1:], **slots)
    second_in = json.dumps(
        [
            {"role": "user", "parts": [user[1]]},
            {"role": "assistant", "parts": calls},
            *({"role": r, "parts": [p]} for r, p in results),
        ]
    )
    second_out = json.dumps(
        [{"role": "assistant", "parts": [_text(answer)], "finish_reason": "stop"}]
    )
    t = chat(t, second_in, second_out, len(answer) // 4) + rng.randrange(1, 4) * ms

    outcome = "success" if all_ok else rng.choice(("escalated", "failure"))
    spans.sort(key=lambda span: span.end_time_unix_nano)
    root = Span(trace_id=trace_id, span_id=root_id, name="invoke_agent support")
    root.kind = Span.SPAN_KIND_INTERNAL
    root.start_time_unix_nano, root.end_time_unix_nano = start_ns, t
    root.attributes.extend(
        _attrs(
            {
                sc.GEN_AI_OPERATION_NAME: sc.OP_INVOKE_AGENT,
                sc.GEN_AI_AGENT_NAME: "support",
                sc.TL_UNIT_ID: unit,
                sc.TL_SESSION_ID: f"sess-{rng.getrandbits(48):012x}",
                sc.TL_CONFIG_VERSION: "v14" if variant == "control" else "v15",
                sc.FEATURE_FLAG_KEY: "support-prompt",
                sc.FEATURE_FLAG_RESULT_VARIANT: variant,
                sc.TL_RUN_OUTCOME: outcome,
            }
        )
    )
    return [*spans, root]


def generate_batches(total_spans: int, *, seed: int) -> list[Batch]:
    """Whole runs until `total_spans` is reached, packed into requests of BATCH_SPANS spans.

    Spans go out in end-time order, as a BatchSpanProcessor exports them, so a run's
    children often arrive in an earlier request than its root.
    """
    rng = random.Random(seed)
    runs = math.ceil(total_spans / SPANS_PER_RUN)
    # Runs arrive ~30/s and finished before now, like a backlog flushed by a busy agent.
    start_ns = time.time_ns() - int(runs / 30 * 1e9) - 60 * 10**9
    resource = [_kv(sc.SERVICE_NAME, "support-agent"), _kv("deployment.environment", "bench")]
    batches: list[Batch] = []
    pending: list[Span] = []

    def flush() -> None:
        request = ExportTraceServiceRequest()
        resource_spans = request.resource_spans.add()
        resource_spans.resource.attributes.extend(resource)
        resource_spans.scope_spans.append(
            ScopeSpans(
                scope=InstrumentationScope(name="support-agent", version="1.8.2"), spans=pending
            )
        )
        batches.append(Batch(request.SerializeToString(), len(pending)))
        pending.clear()

    for _ in range(runs):
        start_ns += int(rng.expovariate(30) * 1e9)
        for span in _run_spans(rng, start_ns):
            pending.append(span)
            if len(pending) == BATCH_SPANS:
                flush()
    if pending:
        flush()
    return batches


# --- measuring ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Figures:
    """Measurements of one server."""

    name: str
    sent: SendResult
    spans_offered: int
    stored: int
    durable_s: float
    durable_complete: bool
    peak_bytes: int
    peak_pss_bytes: int
    db_bytes: int
    db_spans: int | None
    server_cpu_s: float
    sender_cpu_s: float

    @property
    def accepted_per_s(self) -> float | None:
        seconds = self.sent.accept_seconds
        return self.sent.accepted / seconds if seconds > 0 else None

    @property
    def durable_per_s(self) -> float | None:
        return self.stored / self.durable_s if self.durable_s > 0 else None

    @property
    def bytes_per_span(self) -> float | None:
        spans = self.db_spans or self.stored
        return self.db_bytes / spans if spans else None


def measure(target: Target, batches: Sequence[Batch], *, timeout_s: float) -> Figures:
    """Send, wait until everything is queryable (or the timeout), stop, measure the files."""
    try:
        deadline = time.monotonic() + timeout_s
        server_cpu, sender_cpu = tree_cpu_seconds(target.server.pid), time.process_time()
        print(f"{target.name}: sending {sum(b.spans for b in batches):,} spans ...", flush=True)
        sent = send_batches(
            target.traces_url, batches, headers=target.headers, workers=WORKERS, deadline=deadline
        )
        assert sent.first_send is not None
        print(
            f"{target.name}: {sent.accepted:,} spans acknowledged in {sent.accept_seconds:.1f} s; "
            "waiting until they are queryable ...",
            flush=True,
        )
        shown = time.monotonic()

        def count() -> int | None:
            nonlocal shown
            spans = target.count_spans(target.api)
            if spans is not None and time.monotonic() - shown >= 30:
                shown = time.monotonic()
                print(f"{target.name}: {spans:,} spans queryable", flush=True)
            return spans

        stored, seen_at = poll_until(
            count,
            sent.accepted,
            deadline=deadline,
            interval_s=target.poll_interval_s,
        )
        server_cpu = tree_cpu_seconds(target.server.pid) - server_cpu
        sender_cpu = time.process_time() - sender_cpu
    finally:
        target.api.close()
        target.rss.stop()  # before stopping: the peak must not include shutdown
        target.server.stop()
    db_bytes = sqlite_bytes(target.db_path)
    return Figures(
        name=target.name,
        sent=sent,
        spans_offered=sum(batch.spans for batch in batches),
        stored=stored,
        durable_s=seen_at - sent.first_send,
        durable_complete=stored >= sent.accepted,
        peak_bytes=target.rss.peak,
        peak_pss_bytes=target.rss.peak_pss_bytes,
        db_bytes=db_bytes,
        db_spans=sqlite_rows(target.db_path, "spans"),
        server_cpu_s=server_cpu,
        sender_cpu_s=sender_cpu,
    )


# --- report ------------------------------------------------------------------------------


def _fmt(value: float | None, *, bound: str = "", scale: float = 1.0, digits: int = 0) -> str:
    return "n/a" if value is None else f"{bound}{value / scale:,.{digits}f}"


def _ratio(ours: float | None, peer: float | None, ours_exact: bool, peer_exact: bool) -> str:
    if not ours or not peer or not (ours_exact or peer_exact):
        return ""
    # A lower bound on one side turns the ratio into a bound in one direction.
    bound = "" if ours_exact and peer_exact else ("≥" if peer_exact else "≤")
    ratio = ours / peer
    return f"{bound}{ratio:.{0 if ratio >= 10 else 2}f}x"


def report(ours: Figures | None, peer: Figures | None, peer_note: str | None) -> None:
    """Print the side-by-side table, the targets, and anything that went wrong."""
    sides = [side for side in (ours, peer) if side is not None]
    head = ["", *(f"{s.name} {PHOENIX_VERSION}" if s is peer else s.name for s in sides)]
    if ours and peer:
        head.append("tuneloop/Phoenix")
    rows: list[list[str]] = []

    def row(
        label: str,
        get: Callable[[Figures], float | None],
        *,
        ratio: bool = True,
        exact: Callable[[Figures], bool] = lambda f: True,
        scale: float = 1.0,
        digits: int = 0,
    ) -> None:
        cells = [
            _fmt(get(s), bound="" if exact(s) else "≥", scale=scale, digits=digits) for s in sides
        ]
        if ours and peer:
            cells.append(_ratio(get(ours), get(peer), exact(ours), exact(peer)) if ratio else "")
        rows.append([label, *cells])

    row("spans sent", lambda f: f.spans_offered, ratio=False)
    row("spans acknowledged", lambda f: f.sent.accepted, ratio=False)
    row("accepted spans/s", lambda f: f.accepted_per_s)
    row("durable spans/s", lambda f: f.durable_per_s, exact=lambda f: f.durable_complete)
    row("spans queryable at the end", lambda f: f.stored, ratio=False)
    row(
        "seconds until queryable",
        lambda f: f.durable_s,
        ratio=False,
        exact=lambda f: f.durable_complete,
        digits=1,
    )
    row("peak memory, MB (RSS, tree)", lambda f: f.peak_bytes, scale=MB)
    row("peak memory, MB (PSS, tree)", lambda f: f.peak_pss_bytes, scale=MB)
    row("bytes stored per span", lambda f: f.bytes_per_span)
    row("non-200 responses", lambda f: f.sent.non_200, ratio=False)
    row("429/503 retries", lambda f: f.sent.retries, ratio=False)
    row("server CPU s, first send to end", lambda f: f.server_cpu_s, ratio=False, digits=1)
    row("sender CPU s (this process)", lambda f: f.sender_cpu_s, ratio=False, digits=1)
    widths = [max(len(line[i]) for line in [head, *rows]) for i in range(len(head))]
    print()
    print(
        f"Ingest: OTLP/HTTP protobuf, {BATCH_SPANS} spans per request, {WORKERS} keep-alive "
        "clients, SQLite; MB = 10^6 bytes"
    )
    for line in [head, *rows]:
        print(
            "  ".join(
                [line[0].ljust(widths[0])]
                + [c.rjust(w) for c, w in zip(line[1:], widths[1:], strict=True)]
            )
        )
    for side in sides:
        problems = []
        if side.sent.failures:
            problems.append(f"failed requests {dict(side.sent.failures)}")
        if side.sent.unsent_batches:
            problems.append(f"{side.sent.unsent_batches} batches not sent before the timeout")
        if side.sent.spans_rejected:
            problems.append(f"{side.sent.spans_rejected:,} spans rejected (partial success)")
        if not side.durable_complete:
            problems.append(
                f"only {side.stored:,} of {side.sent.accepted:,} acknowledged spans queryable "
                f"after {side.durable_s:.0f} s: durable spans/s is a lower bound"
            )
        for problem in problems:
            print(f"note: {side.name}: {problem}")
    if peer_note:
        print(f"note: Phoenix not measured: {peer_note}")
    if ours is None:
        return
    print("\nTargets (tuneloop):")
    checks = [
        (
            f"durable ≥ {TARGET_DURABLE_SPANS_S:,} spans/s",
            _fmt(ours.durable_per_s),
            ours.durable_complete and (ours.durable_per_s or 0) >= TARGET_DURABLE_SPANS_S,
        ),
        (
            f"peak memory < {TARGET_PEAK_BYTES // MB} MB",
            _fmt(ours.peak_bytes, scale=MB),
            0 < ours.peak_bytes < TARGET_PEAK_BYTES,
        ),
        (
            f"≤ {TARGET_BYTES_PER_SPAN:,} bytes/span",
            _fmt(ours.bytes_per_span),
            ours.bytes_per_span is not None and ours.bytes_per_span <= TARGET_BYTES_PER_SPAN,
        ),
        (
            "0 non-200 responses",
            str(ours.sent.non_200 + ours.sent.unsent_batches),
            ours.sent.non_200 == 0 and ours.sent.unsent_batches == 0,
        ),
    ]
    for label, value, met in checks:
        print(f"  {label:<28} {value:>10}  {'PASS' if met else 'MISS'}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; exit 1 only when tuneloop itself could not be measured."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=200_000, help="spans sent to tuneloop")
    parser.add_argument("--peer", choices=("phoenix", "none"), default="phoenix")
    parser.add_argument("--peer-spans", type=int, default=50_000, help="spans sent to the peer")
    parser.add_argument(
        "--peer-timeout",
        type=float,
        default=420.0,
        help="seconds from first send until the peer must have stored all",
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="the same for tuneloop")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--tuneloop-bin", type=Path, default=Path(sys.executable).parent / "tuneloop"
    )
    args = parser.parse_args(argv)
    if args.spans < 1 or args.peer_spans < 1:
        parser.error("--spans and --peer-spans must be positive")
    exit_on_sigterm()

    started = time.perf_counter()
    peer_spans = args.peer_spans if args.peer != "none" else 0
    batches = generate_batches(max(args.spans, peer_spans), seed=args.seed)
    ours_batches = batches[: math.ceil(args.spans / BATCH_SPANS)]
    peer_batches = batches[: math.ceil(args.peer_spans / BATCH_SPANS)]
    size = sum(len(batch.body) for batch in batches)
    print(
        f"encoded {sum(b.spans for b in batches):,} spans in {len(batches):,} requests "
        f"({size / MB:,.1f} MB protobuf) in {time.perf_counter() - started:.1f} s"
    )
    ours: Figures | None = None
    peer: Figures | None = None
    peer_note: str | None = None
    with tempfile.TemporaryDirectory(prefix="tuneloop-bench-") as tmp:
        try:
            home = Path(tmp, "tuneloop")
            home.mkdir()
            ours = measure(
                start_tuneloop(home, args.tuneloop_bin), ours_batches, timeout_s=args.timeout
            )
        except (RuntimeError, TimeoutError, OSError, subprocess.SubprocessError) as exc:
            print(f"tuneloop not measured: {exc}", file=sys.stderr)
        if args.peer == "phoenix":
            try:
                home = Path(tmp, "phoenix")
                home.mkdir()
                peer = measure(start_phoenix(home), peer_batches, timeout_s=args.peer_timeout)
            except PeerUnavailable as exc:
                peer_note = str(exc)
            except Exception as exc:  # the peer failing must not hide our own figures
                peer_note = f"{type(exc).__name__}: {exc}"
    report(ours, peer, peer_note)
    return 0 if ours is not None else 1


if __name__ == "__main__":
    sys.exit(main())
