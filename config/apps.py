from django.apps import AppConfig


class ConfigConfig(AppConfig):
    """Not a feature app: registers the production safety checks (config/checks.py)."""

    name = "config"
    label = "livemart_config"
    verbose_name = "Site configuration"

    def ready(self):
        from config import checks  # noqa: F401 (registers the checks)
