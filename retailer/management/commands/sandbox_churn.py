"""`python manage.py sandbox_churn`: move the sandbox retailer along in time so a sync has work."""

from django.core.management.base import BaseCommand

from retailer.services import sandbox_churn


class Command(BaseCommand):
    help = "Change some sandbox prices and stock, retire a few products, move one to a third-party seller."

    def add_arguments(self, parser):
        parser.add_argument("--seed", type=int, default=None, help="random seed, for a repeatable churn")
        parser.add_argument("--prices", type=int, default=20)
        parser.add_argument("--stock", type=int, default=40)
        parser.add_argument("--retire", type=int, default=2)
        parser.add_argument("--flip", type=int, default=1, help="self-operated products moved to a third-party seller")

    def handle(self, *args, **options):
        counts = sandbox_churn(
            seed=options["seed"],
            price_changes=options["prices"],
            stock_changes=options["stock"],
            retirements=options["retire"],
            flips_to_third_party=options["flip"],
        )
        self.stdout.write(
            self.style.SUCCESS("Sandbox retailer changed: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        )
