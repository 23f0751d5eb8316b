"""The OpenAPI schema and the offline docs page."""

import re

import pytest

pytestmark = pytest.mark.django_db(transaction=True)


def test_schema_is_open_and_lists_error_codes_per_operation(anon):
    response = anon.get("/v1/schema")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    account_get = schema["paths"]["/v1/account"]["get"]
    codes_401 = account_get["responses"]["401"]["content"]["application/json"]["schema"]
    assert set(codes_401["properties"]["error"]["properties"]["code"]["enum"]) == {
        "missing_api_key", "invalid_api_key", "expired_api_key",
    }
    assert "429" in account_get["responses"] and "503" in account_get["responses"]
    assert "200" in account_get["responses"]


def test_docs_page_works_offline(anon):
    response = anon.get("/v1/docs")
    assert response.status_code == 200
    assert "text/html" in response.headers["content-type"]
    sources = re.findall(r'(?:src|href)="([^"]+)"', response.text)
    assert sources, "the page loads its UI assets"
    assert all(not s.startswith(("http://", "https://", "//")) for s in sources), sources
    for asset in [s for s in sources if s.endswith(".js")]:
        assert anon.get(asset).status_code == 200, asset


def test_the_guides_are_served_and_linked_from_the_reference(anon):
    """The guides (docs/, built by ./scripts/test before the suite runs, as ./scripts/serve
    builds them) are served at /docs/, offline like the reference, which links to them."""
    description = anon.get("/v1/schema").json()["info"]["description"]
    assert "(/docs/)" in description
    index = anon.get("/docs/")
    assert index.status_code == 200, "the guides are not built: run ./scripts/test"
    assert "WhatsApp API service" in index.text
    pages = set(re.findall(r'href="([a-z]+/)"', index.text))
    assert {"api/", "settings/", "architecture/"} <= pages, pages
    settings_page = anon.get("/docs/settings/")
    assert settings_page.status_code == 200
    assert "WEBHOOK_MAX_IN_FLIGHT" in settings_page.text  # the README's table, included
    # Nothing loaded from elsewhere (a link to the theme's site is only a link).
    assets = re.findall(r'src="([^"]+)"', index.text) + re.findall(
        r'<link[^>]+rel="stylesheet"[^>]+href="([^"]+)"', index.text)
    assert assets and all(not a.startswith(("http://", "https://", "//")) for a in assets)
    for asset in assets:
        assert anon.get(f"/docs/{asset}").status_code == 200, asset


def test_every_keyed_operation_says_it_takes_the_key_and_has_its_own_id(anon):
    """So that "Try it out" sends the key; and one id per operation (no generated suffixes)."""
    schema = anon.get("/v1/schema").json()
    assert schema["components"]["securitySchemes"]["ApiKey"] == {"type": "http",
                                                                 "scheme": "bearer"}
    ids = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            ids.append(operation["operationId"])
            open_ = path in ("/v1/health",)
            assert operation.get("security") == (None if open_ else [{"ApiKey": []}]), (
                path, method)
    assert len(ids) == len(set(ids))
    assert {"messages_send_image", "messages_send_audio"} <= set(ids)


def test_the_schema_is_generated_without_a_warning():
    from io import StringIO

    from django.core.management import call_command

    errors = StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=StringIO(),
                 stderr=errors)
    assert "Warning" not in errors.getvalue()
