"""The accept path's shortcut through input validation (`InputSerializer.validated_plain`)
must answer exactly as full DRF validation does: the same data for what it takes, and for
everything else it steps aside so that full validation gives its exact errors."""

import pytest
from rest_framework import serializers

from api.errors import ApiError
from api.serializers import InputSerializer, StrictCharField
from api.views import ApiView
from messaging.views import MediaSendInput, TextSendInput


def _full(serializer_class, data):
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _outcome(validate, serializer_class, data):
    try:
        return "ok", dict(validate(serializer_class, data))
    except ApiError as error:
        return "api_error", error.code, error.status_code, error.details
    except serializers.ValidationError as error:
        return "validation_error", error.detail


BODIES = [
    {"sessionId": "ses_1", "to": "14155552671", "text": "hello"},
    {"sessionId": "ses_1", "to": "+14155552671", "text": "  spaced text  "},
    {"sessionId": " ses_1 ", "to": "14155552671", "text": "hello"},  # trimmed by DRF
    {"sessionId": "ses_1", "to": "14155552671", "text": "x" * 4097},  # too long
    {"sessionId": "ses_1", "to": "12", "text": "hello"},  # bad number
    {"sessionId": "ses_1", "to": "12", "text": "x" * 4097},  # two errors: the first wins
    {"sessionId": "ses_1", "to": "14155552671", "text": ""},
    {"sessionId": "ses_1", "to": "14155552671", "text": "   "},
    {"sessionId": "", "to": "14155552671", "text": "hello"},
    {"sessionId": "   ", "to": "14155552671", "text": "hello"},
    {"sessionId": "ses_1", "to": "14155552671", "text": "nul\x00byte"},
    {"sessionId": "ses_1", "to": "14155552671", "text": "surrogate \ud800"},
    {"sessionId": "ses_1", "to": 14155552671, "text": "hello"},
    {"sessionId": "ses_1", "to": "14155552671", "text": 5},
    {"sessionId": None, "to": "14155552671", "text": "hello"},
    {"sessionId": "ses_1", "to": "14155552671", "text": True},
    {"sessionId": "ses_1", "to": "14155552671"},
    {"sessionId": "ses_1", "to": "14155552671", "text": "hello", "extra": 1},
    {"sessionId": "ses_1", "to": "14155552671", "txt": "hello"},
    {},
    [],
    "a string",
    None,
]


@pytest.mark.parametrize("data", BODIES)
def test_the_shortcut_answers_as_full_validation_does(data):
    assert _outcome(ApiView.validated, TextSendInput, data) == \
        _outcome(_full, TextSendInput, data)


def test_the_shortcut_takes_a_plain_body_and_steps_aside_for_the_rest():
    plain = {"sessionId": "ses_1", "to": "+14155552671", "text": "hello"}
    assert TextSendInput.validated_plain(plain) == {
        "sessionId": "ses_1", "to": "14155552671", "text": "hello"}
    assert TextSendInput.validated_plain({**plain, "sessionId": " ses_1"}) is None
    assert TextSendInput.validated_plain({**plain, "extra": "x"}) is None
    # Optional fields and length limits: always full validation.
    assert MediaSendInput.validated_plain(
        {"sessionId": "s", "to": "14155552671", "url": "https://example.com/a.png"}) is None


def test_a_field_check_raising_a_validation_error_leaves_it_to_full_validation():
    class Checked(InputSerializer):
        first = StrictCharField()
        second = StrictCharField()

        def validate_first(self, value):
            raise serializers.ValidationError("first is wrong")

        def validate_second(self, value):
            raise serializers.ValidationError("second is wrong")

    data = {"first": "a", "second": "b"}
    assert Checked.validated_plain(data) is None
    _kind, detail = _outcome(ApiView.validated, Checked, data)
    assert set(detail) == {"first", "second"}  # both, as DRF collects them


def test_an_object_level_check_is_never_skipped():
    class WithObjectCheck(InputSerializer):
        only = StrictCharField()

        def validate(self, attrs):
            raise serializers.ValidationError("refused as a whole")

    assert WithObjectCheck.validated_plain({"only": "a"}) is None
    with pytest.raises(serializers.ValidationError):
        ApiView.validated(WithObjectCheck, {"only": "a"})
