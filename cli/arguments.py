"""argparse types shared by the command groups: each refuses a bad value with a message that says
what to give."""
from __future__ import annotations

import argparse


def tenant_id(text: str) -> str:
    from app.access.tenants import check_name

    try:
        return check_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def tenant_option(parser, help_text: str) -> None:
    parser.add_argument("--tenant", type=tenant_id, default="default", help=help_text)


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, got {value}")
    return value


def display_name(text: str) -> str:
    if not 1 <= len(text.strip()) <= 200:
        raise argparse.ArgumentTypeError("give a name of 1-200 characters")
    return text.strip()


def non_negative(text: str) -> int:
    if text == "0":
        return 0
    return positive(text)


def port_number(text: str) -> int:
    value = positive(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a port is at most 65535, got {value}")
    return value
