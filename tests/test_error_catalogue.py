"""The catalogue holds every code of the seed document, the error catalogue the service was
born from (kept word for word in tests/data/error-codes.txt), with its status, message and
troubleshooting text, exactly."""

import re
from pathlib import Path

import pytest

from api.errors import CATALOGUE, SEED_CODES

SEED = Path(__file__).resolve().parent / "data" / "error-codes.txt"
ROW = re.compile(r"^([a-z_]+) (\d{3}) (.+)$")


def seed_rows() -> dict[str, tuple[int, str]]:
    if not SEED.exists():
        pytest.fail(f"seed document not found at {SEED}")
    rows = {}
    for line in SEED.read_text().splitlines():
        match = ROW.match(line.strip())
        if match and "_" in match.group(1):
            rows[match.group(1)] = (int(match.group(2)), match.group(3))
    return rows


def test_seed_table_is_parsed_whole():
    assert len(seed_rows()) == 31


def test_catalogue_has_every_seed_code_with_its_status_message_and_troubleshooting():
    for code, (status, text) in seed_rows().items():
        entry = CATALOGUE[code]
        assert entry.status == status, code
        # The seed's row is "<description> <troubleshooting>" with no separator between them.
        assert text == f"{entry.message} {entry.troubleshooting}", code


def test_seed_codes_are_exactly_the_seed_rows():
    assert set(seed_rows()) == SEED_CODES


def test_codes_beyond_the_seed_are_documented_in_the_api_guide():
    guide = (Path(__file__).resolve().parents[1] / "docs" / "api.md").read_text()
    for code in set(CATALOGUE) - SEED_CODES:
        assert f"`{code}`" in guide, code
