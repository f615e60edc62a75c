"""`python manage.py seed_demo`: demo data for the whole product. Safe to run again."""

from django.core.management.base import BaseCommand

from accounts.demo import DEMO_LOGINS, seed_people
from catalog.demo import seed_catalog
from retailer.seed import seed_sandbox_catalog
from streams.demo import seed_rooms


class Command(BaseCommand):
    help = "Create the demo retailer, catalog, host, room, viewer and staff user (idempotent)."

    def handle(self, *args, **options):
        people = seed_people()
        sandbox = seed_sandbox_catalog()
        catalog = seed_catalog()
        self.stdout.write(
            f"Sandbox retailer: {sandbox['products']} products ({sandbox['created']} new, "
            f"{sandbox['images_drawn']} pictures drawn). Catalog sync {catalog['sync']}: "
            f"{catalog['created']} created, {catalog['updated']} updated; "
            f"{catalog['sellable']} of {catalog['products']} products sell in live rooms."
        )
        seed_rooms(host=people["host"].host_profile)

        self.stdout.write(self.style.SUCCESS("Demo data ready. Log in at http://127.0.0.1:8000/accounts/login/"))
        for role, username, password, _ in DEMO_LOGINS:
            self.stdout.write(f"  {role:<7} {username:<8} / {password}")
        self.stdout.write("  admin at http://127.0.0.1:8000/admin/ (staff login)")
