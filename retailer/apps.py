from django.apps import AppConfig


class RetailerConfig(AppConfig):
    name = "retailer"
    verbose_name = "Sandbox retailer (partner's system)"
