from celery import shared_task

from catalog.models import SyncRun
from catalog.services import catalog_sync


@shared_task(name="catalog.tasks.sync_catalog", ignore_result=True)
def sync_catalog(full: bool = False) -> int:
    """Celery beat runs this every CATALOG_SYNC_SECONDS; a run already in progress makes it a no-op."""
    return catalog_sync(trigger=SyncRun.Trigger.BEAT, full=full).pk
