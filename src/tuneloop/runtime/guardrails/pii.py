"""Personal data and secrets: emails, phone numbers, cards, IBANs, IP addresses, API keys.

Candidates are found by pattern and then checked the way the number itself is
defined (Luhn for cards, ISO 13616 mod-97 for IBANs, the address grammar for IPs), so
an order number that merely looks like a card is left alone.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Literal, get_args

from tuneloop.runtime.guardrails.base import Finding
from tuneloop.runtime.guardrails.text import non_overlapping

PiiKind = Literal["secret", "iban", "credit_card", "email", "ip_address", "phone"]
PII_KINDS: tuple[PiiKind, ...] = get_args(PiiKind)

_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}(?![\w-])"
)
_CARD = re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])")
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}(?![A-Za-z0-9])")
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_PHONE = re.compile(
    r"(?<![\w+#/])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]?\d{2,4}){1,4}(?![\w/])"
)
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_SECRETS = (
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"(?<![\w-])sk-(?:proj-|ant-[a-z0-9]+-)?[A-Za-z0-9_-]{20,}"),
    re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA)[0-9A-Z]{16}(?![A-Z0-9])"),
    re.compile(r"(?<!\w)gh[pousr]_[A-Za-z0-9]{36,}"),
    re.compile(r"(?<!\w)github_pat_[A-Za-z0-9_]{40,}"),
    re.compile(r"(?<!\w)xox[abprs]-[A-Za-z0-9-]{10,}"),
    re.compile(r"(?<!\w)AIza[0-9A-Za-z_-]{35}"),
    re.compile(r"(?<!\w)tlk_[a-z0-9]{12}_[A-Za-z0-9_-]{20,}"),
    re.compile(r"(?<!\w)eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    re.compile(r"(?i)(?<=\bbearer )[A-Za-z0-9._~+/-]{20,}=*"),
)
# ``password: hunter2hunter2`` — only the value is the secret.
_ASSIGNED_SECRET = re.compile(
    r"(?i)\b(?:api[_-]?key|secret(?:[_-]?key)?|access[_-]?token|auth[_-]?token|token|"
    r"password|passwd|pwd)\b[\"']?\s*[:=]\s*[\"']?(?P<value>[^\s\"',;]{8,})"
)


def luhn_valid(digits: str) -> bool:
    """Whether a string of digits passes the Luhn check (payment card numbers)."""
    if not digits.isdigit() or len(digits) < 2:
        return False
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def iban_valid(text: str) -> bool:
    """Whether ``text`` (spaces allowed) is an IBAN with a correct ISO 13616 mod-97 check."""
    iban = text.replace(" ", "").upper()
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}", iban):
        return False
    moved = iban[4:] + iban[:4]
    return int("".join(str(int(char, 36)) for char in moved)) % 97 == 1


def card_number_plausible(digits: str) -> bool:
    """Whether ``digits`` has a card network's prefix and length and passes Luhn."""
    if not luhn_valid(digits):
        return False
    length, head2, head4 = len(digits), int(digits[:2]), int(digits[:4])
    if digits[0] == "4":
        return length in (13, 16, 19)  # Visa
    if head2 in (34, 37):
        return length == 15  # American Express
    if 51 <= head2 <= 55 or 2221 <= head4 <= 2720:
        return length == 16  # Mastercard
    if head2 in (30, 36, 38, 39):
        return 14 <= length <= 19  # Diners Club
    if digits[0] in "56":
        return 12 <= length <= 19  # Discover, UnionPay, Maestro, JCB (35 is handled above)
    return head2 == 35 and 16 <= length <= 19  # JCB


def _emails(text: str) -> Iterable[Finding]:
    for match in _EMAIL.finditer(text):
        yield Finding("email", match.start(), match.end())


def _cards(text: str) -> Iterable[Finding]:
    for match in _CARD.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if 13 <= len(digits) <= 19 and card_number_plausible(digits):
            yield Finding("credit_card", match.start(), match.end())


def _ibans(text: str) -> Iterable[Finding]:
    for match in _IBAN.finditer(text):
        candidate = match.group()
        # The pattern may run into a following upper-case word: drop trailing groups.
        while len(candidate.replace(" ", "")) >= 15:
            if iban_valid(candidate):
                yield Finding("iban", match.start(), match.start() + len(candidate))
                break
            if " " not in candidate:
                break
            candidate = candidate.rsplit(" ", 1)[0]


def _ips(text: str) -> Iterable[Finding]:
    for pattern in (_IPV4, _IPV6):
        for match in pattern.finditer(text):
            try:
                ipaddress.ip_address(match.group())
            except ValueError:
                continue
            yield Finding("ip_address", match.start(), match.end())


def _phones(text: str) -> Iterable[Finding]:
    for match in _PHONE.finditer(text):
        candidate = match.group()
        digits = re.sub(r"\D", "", candidate)
        formatted = candidate.startswith("+") or bool(re.search(r"[ .()-]", candidate))
        if not 8 <= len(digits) <= 15 or _ISO_DATE.fullmatch(candidate):
            continue
        # A bare run of digits is an id more often than a phone unless it is 10+ long.
        if formatted or len(digits) >= 10:
            yield Finding("phone", match.start(), match.end())


def _secrets(text: str) -> Iterable[Finding]:
    for pattern in _SECRETS:
        for match in pattern.finditer(text):
            yield Finding("secret", match.start(), match.end())
    for match in _ASSIGNED_SECRET.finditer(text):
        yield Finding("secret", match.start("value"), match.end("value"))


_DETECTORS: Mapping[PiiKind, Callable[[str], Iterable[Finding]]] = MappingProxyType(
    {
        "secret": _secrets,
        "iban": _ibans,
        "credit_card": _cards,
        "email": _emails,
        "ip_address": _ips,
        "phone": _phones,
    }
)


def pii_detector(kinds: Iterable[PiiKind] = PII_KINDS) -> Callable[[str], list[Finding]]:
    """A detector for the chosen kinds; where two overlap, the more specific one wins.

    Secrets come first, then IBANs, cards, emails, IPs and phones last: a card number
    is also a run of digits a phone pattern would take.
    """
    chosen = [kind for kind in PII_KINDS if kind in set(kinds)]

    def detect(text: str) -> list[Finding]:
        return non_overlapping(finding for kind in chosen for finding in _DETECTORS[kind](text))

    return detect
