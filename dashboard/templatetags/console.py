"""How the consoles write numbers and phone numbers: one way everywhere."""

from datetime import UTC, datetime

from django import template

register = template.Library()


@register.filter
def phone(value: str | None) -> str:
    """A number as `+<digits>`; a WhatsApp id that is not a number (a group's, a hidden one)
    as it is; nothing as an em dash."""
    if not value:
        return "—"
    return f"+{value}" if value.isdigit() else value


@register.filter
def thousands(value: int | None) -> str:
    """1234567 as 1,234,567."""
    if value is None or value == "":
        return "—"
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return str(value)


@register.filter
def when(value) -> str:
    """A moment as `2026-12-07 11:31 UTC`, from a datetime or the API's ISO 8601 text."""
    if not value:
        return "—"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
