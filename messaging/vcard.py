"""The vCard of a contact card, as WhatsApp's own apps write it (the `waid` parameter makes
the number tappable as a WhatsApp chat)."""


def _escaped(text: str) -> str:
    """A vCard text value (RFC 6350, 3.4): backslash, comma, semicolon and newlines escaped."""
    return (text.replace("\\", "\\\\").replace(",", "\\,").replace(";", "\\;")
            .replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n"))


def vcard(name: str, phone_number: str) -> str:
    """A vCard 3.0 for `name` at `phone_number` (international digits, no +)."""
    return ("BEGIN:VCARD\nVERSION:3.0\n"
            f"N:;{_escaped(name)};;;\nFN:{_escaped(name)}\n"
            f"TEL;type=CELL;type=VOICE;waid={phone_number}:+{phone_number}\n"
            "END:VCARD")
