"""How the consoles write numbers and phone numbers: one way everywhere."""

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
