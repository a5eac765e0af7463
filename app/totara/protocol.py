"""Totara's machine-learning service protocol, the parts that are plain text rules.

Totara's PHP client (server/ml/service/classes/api.php) sends GET requests with two headers:
`X-Totara-Time` (unix seconds, an integer) and `X-Totara-Ml-Key`, the lower-case hex SHA-256 of
that time's decimal digits followed directly by the shared key, no separator
(token_manager::make_token: hash('sha256', $request_time . $CFG->ml_service_key)).

Items are named by Totara's component followed by the numeric id, no separator
(`engage_article12`); responses carry the bare number, which Totara reads with (int).

No Flask and no SQL here: routes parse with these functions and turn ValueError into a 4xx.
"""
from __future__ import annotations

import hashlib
import hmac
import math
import re

# The item types the Totara service answers for (its config `item_types`; the exporter's
# item_data one-hot columns, in this order).
ITEM_TYPES = ("container_course", "container_workspace", "engage_article", "engage_microlearning", "totara_playlist")

# A component name: lower-case letters, digits, underscore, starting with a letter. It must also
# end with a letter: Totara glues the numeric id on without a separator, so a name ending in a
# digit or '_' could not be told apart from the id. Up to 32 characters, as an item kind.
COMPONENT = re.compile(r"[a-z][a-z0-9_]{0,30}[a-z]", re.ASCII)
_ITEM_ID = re.compile(r"([a-z][a-z0-9_]{0,30}[a-z])([0-9]+)", re.ASCII)
_DIGITS = re.compile(r"[0-9]{1,15}", re.ASCII)  # 15 digits: far past any clock, short of int() limits

# The unit holding one item type's items in a Totara tenant (jobs/importers/totara.py): the
# candidates of `item_type`. The tenant's root unit `totara` holds them all and trains its model.
COMPONENT_UNIT = "component:"
ROOT_UNIT = "totara"

# Totara's ids are 64-bit database ids (BIGINT); a larger number names nothing there.
MAX_ID = 2**63 - 1


def sign(timestamp: str | int, shared_key: str) -> str:
    """The X-Totara-Ml-Key value Totara sends with X-Totara-Time = `timestamp`.

    The time is hashed as its canonical decimal digits (Totara's validator casts the header to a
    number before hashing, so "0100" signs as "100").
    """
    if isinstance(timestamp, bool) or not isinstance(timestamp, int | str):
        raise TypeError(f"timestamp must be int or str, got {type(timestamp).__name__}")
    if isinstance(timestamp, str):
        if not _DIGITS.fullmatch(timestamp):
            raise ValueError(f"timestamp must be unix seconds (decimal digits), got {timestamp!r}")
        timestamp = int(timestamp)
    if timestamp < 0:
        raise ValueError(f"timestamp must not be negative, got {timestamp}")
    return hashlib.sha256(f"{timestamp}{shared_key}".encode()).hexdigest()


def check_signature(time_header: str | None, key_header: str | None, shared_key: str, now: float,
                    skew_s: float) -> str | None:
    """None when the two headers authenticate a request at server time `now`; else what is wrong.

    A time exactly `skew_s` away is still accepted, as Totara's own check does (BOUNDARY = 30 s).
    The message names the problem but never the expected key.
    """
    if time_header is None or not time_header.strip():
        return "missing header X-Totara-Time (unix seconds)"
    if key_header is None or not key_header.strip():
        return "missing header X-Totara-Ml-Key"
    text = time_header.strip()
    if not _DIGITS.fullmatch(text):
        shown = text if len(text) <= 40 else text[:40] + "…"
        return f"X-Totara-Time must be unix seconds as an integer, got {shown!r}"
    stamp = int(text)
    offset = stamp - now
    if abs(offset) > skew_s:
        side = "ahead of" if offset > 0 else "behind"
        return (f"X-Totara-Time is {abs(offset):.0f} s {side} the server clock (allowed ±{skew_s:g} s): "
                "check both clocks (NTP)")
    # Bytes, so that a header with non-ASCII text is a wrong key rather than a TypeError.
    given = key_header.strip().lower().encode("utf-8", "surrogatepass")
    if not hmac.compare_digest(given, sign(stamp, shared_key).encode()):
        return "X-Totara-Ml-Key does not match: Totara's ml_service_key and this service's key differ"
    return None


def split_item_id(text: str) -> tuple[str, int]:
    """('engage_article', 12) from 'engage_article12'; ValueError saying what is wrong."""
    if not isinstance(text, str) or not text:
        raise ValueError("item id is empty: expected a component name followed by a number, e.g. 'engage_article12'")
    match = _ITEM_ID.fullmatch(text)
    if match is None:
        shown = text if len(text) <= 60 else text[:60] + "…"
        if text != text.lower() and _ITEM_ID.fullmatch(text.lower()):
            problem = "must be lower case"
        elif not text[-1:].isdigit():
            problem = "does not end with the item's number"
        elif not text[0].isalpha():
            problem = "does not start with a component name"
        elif re.search(r"_[0-9]+\Z", text):
            problem = "has '_' before the number (Totara writes none)"
        else:
            problem = "is not a component name (lower-case letters, digits, '_') followed by a number"
        raise ValueError(f"item id {shown!r} {problem}; expected e.g. 'engage_article12'")
    component, digits = match.groups()
    if len(digits) > 1 and digits[0] == "0":
        # Totara never writes one; accepting it would give one item two names.
        raise ValueError(f"item id {text!r}: the number has a leading zero")
    number = int(digits) if len(digits) <= 19 else MAX_ID + 1
    if number > MAX_ID:
        raise ValueError(f"item id {text[:60]!r}: the number is larger than a Totara id can be ({MAX_ID})")
    return component, number


def join_item_id(component: str, number: int) -> str:
    """'engage_article12' from ('engage_article', 12): the name Totara uses in its exports."""
    if not isinstance(component, str) or not COMPONENT.fullmatch(component):
        raise ValueError(f"component {component!r} must be lower-case letters, digits and '_', "
                         "start and end with a letter, up to 32 characters")
    if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= MAX_ID:
        raise ValueError(f"item number must be an integer from 0 to {MAX_ID}, got {number!r}")
    return f"{component}{number}"


def parse_item_type(text: str | None) -> str:
    """The `item_type` query parameter: one of ITEM_TYPES."""
    if text not in ITEM_TYPES:
        raise ValueError(f"item_type must be one of {', '.join(ITEM_TYPES)}; got {text!r}")
    return text


def parse_id(text: str | None, name: str) -> int:
    """A non-negative integer query parameter (`tenant`, `totara_user_id`), named in the message."""
    if text is None or text == "":
        raise ValueError(f"{name} is required (an integer)")
    if not _DIGITS.fullmatch(text):
        raise ValueError(f"{name} must be a non-negative integer, got {text[:40]!r}")
    return int(text)


def parse_n_items(text: str | None, maximum: int, default: int = 10) -> int:
    """The `n_items` query parameter: 1 or more, at most `maximum` (a larger one is refused with a
    message naming the maximum: Totara's blocks ask for a handful, so a huge count is a mistake)."""
    if text is None or text == "":
        return min(default, maximum)
    if not _DIGITS.fullmatch(text) or int(text) < 1:
        raise ValueError(f"n_items must be a positive integer, got {text[:40]!r}")
    if int(text) > maximum:
        raise ValueError(f"n_items must be at most {maximum}, got {text[:20]}")
    return int(text)


def items_body(items: list[tuple[int, float]]) -> dict:
    """The success body of /user-items and /similar-items: {"success": true, "items": [[id, score], ...]}.

    Totara keeps the order and reads each id with (int); the score only ranks. A NaN would make
    the body invalid JSON, which Totara cannot parse at all, so it is refused here.
    """
    if not all(math.isfinite(score) for _, score in items):
        raise ValueError("an item score is not a finite number")
    return {"success": True, "items": [[int(number), round(float(score), 4)] for number, score in items]}
