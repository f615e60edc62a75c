import pytest

from retailer.models import SandboxProduct
from retailer.seed import seed_sandbox_catalog

pytestmark = pytest.mark.django_db


def test_sandbox_admin_is_labelled_and_can_churn_and_retire(admin_client):
    seed_sandbox_catalog()
    index = admin_client.get("/admin/").content.decode()
    assert "Sandbox retailer (partner&#x27;s system)" in index
    some = SandboxProduct.objects.order_by("pk").first()
    before = SandboxProduct.objects.order_by("-seq").values_list("seq", flat=True).first()
    response = admin_client.post(
        "/admin/retailer/sandboxproduct/", {"action": "churn", "_selected_action": [some.pk], "index": 0}, follow=True
    )
    assert "Sandbox changed: price_changes 20" in response.content.decode()
    admin_client.post(
        "/admin/retailer/sandboxproduct/", {"action": "retire", "_selected_action": [some.pk], "index": 0}
    )
    some.refresh_from_db()
    assert some.status == SandboxProduct.Status.RETIRED and some.seq > before
