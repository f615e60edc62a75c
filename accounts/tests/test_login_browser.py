"""Log in through the real page in Chromium, at phone and desktop width."""

import pytest

from accounts import services

pytestmark = pytest.mark.browser


def test_viewer_logs_in_through_the_real_page(live_url, page, screenshot):
    services.user_signup(username="wang", password="tulip-garden-42", display_name="Wang Lei")

    page.goto(live_url + "/")
    screenshot("home-anonymous")
    page.get_by_role("link", name="Log in").first.click()
    screenshot("login")

    page.get_by_label("Username").fill("wang")
    page.get_by_label("Password").fill("wrong-password")
    page.get_by_role("button", name="Log in").click()
    assert page.get_by_role("alert").is_visible()
    assert "correct username and password" in page.get_by_role("alert").inner_text()
    screenshot("login-error")

    page.get_by_label("Password").fill("tulip-garden-42")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(live_url + "/")
    assert page.get_by_label("Account menu for Wang Lei").is_visible()
    screenshot("home-logged-in")

    page.goto(live_url + "/accounts/addresses/")
    assert page.get_by_text("No addresses yet").is_visible()
    screenshot("addresses-empty")
