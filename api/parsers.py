"""The API's one request parser: DRF's JSON parser, with the bodies Python's json module
accepts but the service cannot hold refused as malformed (`invalid_request`), not left to fail
later as a 500."""

from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


def _has_lone_surrogate(value: Any) -> bool:
    """A string (a key too) with half of a UTF-16 pair (`"\\udfff"`): valid JSON, but no
    UTF-8 text, database or log can hold it."""
    if isinstance(value, str):
        if value.isascii():
            return False
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(item) for item in value)
    return False


class StrictJsonParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("it is nested too deeply") from None
        if _has_lone_surrogate(data):
            raise ParseError("a string holds an unpaired UTF-16 surrogate (\\ud800-\\udfff)")
        return data
