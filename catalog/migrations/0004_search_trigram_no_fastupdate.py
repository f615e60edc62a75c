"""PostgreSQL only: write trigram index entries directly instead of through GIN's pending list.

With fastupdate on, rows a sync inserts wait in the pending list until a vacuum; the planner
then prices the index as slow and scans the table instead. Catalog writes are rare batches
(syncs), searches are constant, so direct index updates are the better trade.
"""

from django.db import migrations


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER INDEX IF EXISTS catalog_product_search_trgm SET (fastupdate = off)")


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER INDEX IF EXISTS catalog_product_search_trgm RESET (fastupdate)")


class Migration(migrations.Migration):
    dependencies = [("catalog", "0003_product_search_trigram")]

    operations = [migrations.RunPython(forwards, backwards)]
