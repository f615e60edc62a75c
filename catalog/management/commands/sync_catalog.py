"""`python manage.py sync_catalog [--full]`: pull the retailer's catalog feed now."""

from django.core.management.base import BaseCommand, CommandError

from catalog.models import SyncRun
from catalog.services import catalog_sync


class Command(BaseCommand):
    help = "Pull the partner retailer's catalog feed (incrementally from the saved cursor, or --full)."

    def add_arguments(self, parser):
        parser.add_argument("--full", action="store_true", help="read the whole feed and withdraw what is gone")

    def handle(self, *args, **options):
        run = catalog_sync(trigger=SyncRun.Trigger.COMMAND, full=options["full"])
        summary = (
            f"Sync {run.pk} {run.get_status_display().lower()}: {run.created} created, {run.updated} updated, "
            f"{run.withdrawn} withdrawn, {run.rejected} rejected, {run.unchanged} unchanged, "
            f"{run.price_changes} price changes, {run.pages} page(s)"
        )
        if run.duration is not None:
            summary += f", {run.duration.total_seconds():.2f} s"
        for error in run.errors[:20]:
            self.stdout.write(self.style.WARNING(f"  rejected {error.get('sku') or '?'}: {error.get('error')}"))
        if run.status == SyncRun.Status.FAILED:
            raise CommandError(f"{summary}. {run.message}")
        self.stdout.write(self.style.SUCCESS(summary) if run.status == SyncRun.Status.SUCCEEDED else summary)
        if run.message:
            self.stdout.write(run.message)
