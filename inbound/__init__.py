"""The one gate for what clients send: websocket frames, callback headers and bodies, form text.

Every entry point (the room consumer, the signed callbacks, the sandbox retailer's API,
the media hooks, the JSON endpoints, the forms) hands what it received to a function
here before anything else looks at it. A value that breaks a limit raises `Refused`
with a stable `code` (docs/protocol.md, "Limits") and a sentence a person understands;
nothing a client sends gets past this module as an exception of another kind.

Limits, the same everywhere:

- size: a websocket frame at most WS_MAX_FRAME_BYTES (4096) bytes, each body its
  endpoint's own limit;
- depth: JSON nested at most MAX_DEPTH (8) arrays/objects deep. Python's parser
  recurses, so deeper input is refused before it is parsed;
- text: no U+0000, no other control character (C0 other than tab, newline and carriage
  return, DEL, C1), no unpaired UTF-16 surrogate (a lone "\\ud800" escape), in any string,
  object keys included: PostgreSQL refuses NUL, UTF-8 cannot carry a lone surrogate, and
  a reply echoing either could not be sent;
- numbers: integers within +-(2**53 - 1) (what every JSON client can hold exactly),
  no NaN or Infinity;
- signed-callback headers: a timestamp is 1-12 ASCII digits, a signature is ASCII hex.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_DEPTH = 8
MAX_SAFE_INTEGER = 2**53 - 1
MAX_TIMESTAMP_DIGITS = 12
MAX_SIGNATURE_CHARS = 128

# C0 controls but tab, LF and CR; DEL and C1; every UTF-16 surrogate half. json.loads turns
# a proper pair ("\\ud83d\\ude00") into one character, so any half left in a str is unpaired.
_BAD_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_DIGITS = re.compile(rf"[0-9]{{1,{MAX_TIMESTAMP_DIGITS}}}", re.ASCII)
_HEX = re.compile(rf"[0-9a-fA-F]{{1,{MAX_SIGNATURE_CHARS}}}", re.ASCII)

BAD_TEXT_MESSAGE = "Text may not contain control characters, U+0000 or half of a surrogate pair."


class Refused(ValueError):
    """Input that breaks a limit: `code` is documented (docs/protocol.md), `message` is for people."""

    def __init__(self, code: str, message: str, *, ref: str | int | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref  # a message's own `ref`, when it is clean enough to echo


# --- text -------------------------------------------------------------------------------------


def text_ok(value: str) -> bool:
    return _BAD_TEXT.search(value) is None


def check_text(value: str) -> str:
    """`value` unchanged, or Refused("bad_text")."""
    if _BAD_TEXT.search(value) is not None:
        raise Refused("bad_text", BAD_TEXT_MESSAGE)
    return value


# --- JSON -------------------------------------------------------------------------------------


def _refuse_constant(name: str):
    raise Refused("bad_json", f"{name} is not a JSON number.")


def _too_deep(text: str, limit: int) -> bool:
    """True if arrays/objects nest deeper than `limit`, brackets inside strings aside."""
    if text.count("[") + text.count("{") <= limit:
        return False  # nearly every frame: nothing to scan
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == "[" or ch == "{":
            depth += 1
            if depth > limit:
                return True
        elif ch == "]" or ch == "}":
            depth -= 1
    return False


def _check_values(value: Any) -> None:
    if isinstance(value, str):
        check_text(value)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise Refused("bad_number", f"Whole numbers must lie within ±{MAX_SAFE_INTEGER}.")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise Refused("bad_number", "Numbers must be finite.")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_text(key)
            _check_values(item)
    elif isinstance(value, list):
        for item in value:
            _check_values(item)


def parse_json(raw: str | bytes, *, max_bytes: int, max_depth: int = MAX_DEPTH) -> Any:
    """Parse a JSON document within the limits above, or raise Refused:
    too_big, bad_json (not UTF-8, not JSON, NaN/Infinity), too_deep, bad_text, bad_number."""
    value = _load(raw, max_bytes=max_bytes, max_depth=max_depth)
    _check_values(value)
    return value


def _load(raw: str | bytes, *, max_bytes: int, max_depth: int) -> Any:
    if len(raw) > max_bytes:
        raise Refused("too_big", f"Messages are limited to {max_bytes} bytes.")
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Refused("bad_json", "That is not UTF-8 text.")
    else:
        text = raw
        if len(text.encode("utf-8", "surrogatepass")) > max_bytes:
            raise Refused("too_big", f"Messages are limited to {max_bytes} bytes.")
    if _too_deep(text, max_depth):
        raise Refused("too_deep", f"JSON may nest at most {max_depth} levels deep.")
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except Refused:
        raise
    except (ValueError, RecursionError):  # RecursionError: belt and braces, _too_deep comes first
        raise Refused("bad_json", "That is not valid JSON.")
    return value


def parse_message(raw: str, *, max_bytes: int) -> dict:
    """A client's websocket message: a JSON object with a string `type`, within the limits."""
    payload = _load(raw, max_bytes=max_bytes, max_depth=MAX_DEPTH)
    try:
        _check_values(payload)
    except Refused as exc:
        exc.ref = ref_of(payload) if isinstance(payload, dict) else None
        raise
    if not isinstance(payload, dict) or not isinstance(payload.get("type"), str):
        raise Refused("invalid", 'Send a JSON object with a "type".')
    return payload


def ref_of(payload: dict) -> str | int | None:
    """The `ref` a reply may echo: a string or an integer within the limits, else None."""
    ref = payload.get("ref")
    if isinstance(ref, bool) or not isinstance(ref, str | int):
        return None
    if isinstance(ref, str) and not text_ok(ref):
        return None
    if isinstance(ref, int) and not -MAX_SAFE_INTEGER <= ref <= MAX_SAFE_INTEGER:
        return None
    return ref


# --- headers of signed callbacks ----------------------------------------------------------------


def unix_timestamp(value: str | None) -> int | None:
    """Unix seconds from a header: 1-12 ASCII digits, else None (superscripts, Arabic-Indic
    digits, signs and spaces are not a timestamp, though str.isdigit() and int() take some)."""
    if not isinstance(value, str) or not _DIGITS.fullmatch(value):
        return None
    return int(value)


def hex_signature(value: str | None) -> str | None:
    """A signature header: ASCII hex, else None (hmac.compare_digest raises on non-ASCII str)."""
    if not isinstance(value, str) or not _HEX.fullmatch(value):
        return None
    return value


def content_length(value: str | None) -> int | None:
    """A Content-Length header: ASCII digits (an absent header is 0), else None."""
    if value is None or value == "":
        return 0
    return int(value) if re.fullmatch(r"[0-9]{1,18}", value, re.ASCII) else None
