"""PostgreSQL only: a trigram index on Product.search_text, so `contains` search stays fast.

SQLite (the embedded default) has no pg_trgm; there the search scans, which is fine at
demo size.
"""

from django.db import migrations

CREATE = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX IF NOT EXISTS catalog_product_search_trgm ON catalog_product USING gin (search_text gin_trgm_ops)",
]
DROP = ["DROP INDEX IF EXISTS catalog_product_search_trgm"]


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for sql in CREATE:
            schema_editor.execute(sql)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for sql in DROP:
            schema_editor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [("catalog", "0002_sync_state_and_search")]

    operations = [migrations.RunPython(forwards, backwards)]
