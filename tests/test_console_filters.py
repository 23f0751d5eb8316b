"""The consoles write numbers, phone numbers and moments one way everywhere."""

from datetime import UTC, datetime, timedelta, timezone

from dashboard.templatetags.console import phone, thousands, when


def test_phone_numbers_are_written_with_a_plus_and_other_ids_as_they_are():
    assert phone("14155550001") == "+14155550001"
    assert phone("120363424509607235@g.us") == "120363424509607235@g.us"
    assert phone("98765432101@lid") == "98765432101@lid"
    assert phone("") == phone(None) == "—"


def test_numbers_have_thousands_separators():
    assert thousands(1234567) == "1,234,567"
    assert thousands("10000") == "10,000"
    assert thousands(None) == "—"
    assert thousands("n/a") == "n/a"


def test_moments_are_written_in_utc_to_the_minute_from_the_api_text_or_a_datetime():
    assert when("2026-12-07T11:31:35Z") == "2026-12-07 11:31 UTC"
    plus_two = timezone(timedelta(hours=2))
    assert when(datetime(2026, 12, 7, 13, 31, tzinfo=plus_two)) == "2026-12-07 11:31 UTC"
    assert when(datetime(2026, 12, 7, 11, 31, tzinfo=UTC)) == "2026-12-07 11:31 UTC"
    assert when(None) == "—" and when("not a time") == "not a time"
