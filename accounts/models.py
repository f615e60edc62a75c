from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.validators import RegexValidator
from django.db import models
from django.urls import reverse

phone_validator = RegexValidator(r"^\+?[0-9][0-9 \-]{6,19}$", "Enter a phone number of 7 to 20 digits.")


class User(AbstractUser):
    """Anyone with an account is a viewer; a HostProfile that staff approved makes a host."""

    display_name = models.CharField(max_length=40, blank=True)

    def __str__(self):
        return self.display_name or self.username

    @property
    def public_name(self) -> str:
        return self.display_name or self.username

    @property
    def is_host(self) -> bool:
        profile = getattr(self, "host_profile", None)
        return profile is not None and profile.status == HostProfile.Status.APPROVED


class HostProfile(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for approval"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="host_profile")
    handle = models.SlugField(max_length=40, unique=True, help_text="Shown in room links and on the host's page.")
    bio = models.CharField(max_length=280, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    applied_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-applied_at"]

    def __str__(self):
        return f"@{self.handle}"

    @property
    def is_approved(self) -> bool:
        return self.status == self.Status.APPROVED


class Address(models.Model):
    """A shipping address. It belongs to one viewer; nobody else may see or use it."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="addresses")
    recipient = models.CharField(max_length=60)
    phone = models.CharField(max_length=24, validators=[phone_validator])
    province = models.CharField(max_length=40)
    city = models.CharField(max_length=40)
    district = models.CharField(max_length=40, blank=True)
    line = models.CharField("street address", max_length=200)
    postal_code = models.CharField(max_length=12, blank=True)
    is_default = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-is_default", "-created_at"]
        verbose_name_plural = "addresses"
        constraints = [
            models.UniqueConstraint(
                fields=["user"], condition=models.Q(is_default=True), name="one_default_address_per_user"
            )
        ]

    def __str__(self):
        return f"{self.recipient}, {self.one_line}"

    def get_absolute_url(self):
        return reverse("accounts:address_edit", args=[self.pk])

    @property
    def one_line(self) -> str:
        parts = [self.line, self.district, self.city, self.province, self.postal_code]
        return ", ".join(p for p in parts if p)

    def as_snapshot(self) -> dict:
        """The address as an order keeps it: later edits never change a placed order."""
        return {
            "recipient": self.recipient,
            "phone": self.phone,
            "province": self.province,
            "city": self.city,
            "district": self.district,
            "line": self.line,
            "postal_code": self.postal_code,
        }
