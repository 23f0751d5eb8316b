"""Model fields shared by the apps."""

from django.db import models


class ValuesJSONField(models.JSONField):
    """A JSONField that `bulk_create` writes as a VALUES row per object.

    On PostgreSQL, Django 5.2's `bulk_create` sends each column as one array (`UNNEST`), unless
    a field has `get_placeholder`. psycopg's client-side quoting escapes every `"` of every JSON
    document in such an array with a Python regular expression, which made a batch of receipts'
    events cost 6 % more CPU per message than one literal per row (measured by instruction count,
    `bench/README.md`). Other columns keep the array: for them it is the cheaper way."""

    def get_placeholder(self, value, compiler, connection) -> str:
        return "%s"
