"""The Webhooks page: an admin's configuration. An operator never reaches it (no menu item; a
direct visit shows a notice and calls nothing); an admin lists, creates (the secret shown once),
edits, disables, rotates, replays and deletes endpoints, each checked against the API."""

from __future__ import annotations

import secrets

from tests.console.conftest import ConsolePage

# A public address, so the API takes it without resolving a name. The endpoint subscribes to
# one type no test makes and is disabled at once, so nothing is ever sent to it.
URL = "https://1.1.1.1/fuli-console-test"


def test_an_operator_sees_a_notice_and_no_endpoint(console: ConsolePage) -> None:
    calls: list[str] = []
    console.page.on("request", lambda request: calls.append(request.url)
                    if "/webhooks/v1" in request.url else None)
    console.sign_in(console.stack.operator_key)
    assert console.page.locator('[data-nav="webhooks"]').count() == 0
    console.page.goto(console.stack.console_url + "#/webhooks")
    console.page.locator('[data-page="webhooks"]').wait_for()
    notice = console.page.get_by_test_id("admins-only")
    notice.wait_for()
    assert "仅管理员可用" in notice.inner_text()
    assert console.page.get_by_test_id("admin-editor").count() == 0
    console.page.wait_for_load_state("networkidle")
    assert calls == []
    # The API refuses the operator's key anyway.
    refused = console.stack.api(console.stack.operator_key).get("/webhooks/v1/endpoints")
    assert refused.status_code == 403
    console.screenshot("webhooks-operator")


def test_an_admin_sees_the_endpoints_the_api_lists(console: ConsolePage) -> None:
    stack = console.stack
    console.sign_in(stack.admin_key)
    console.open("webhooks")
    console.page.get_by_test_id("admin-editor").wait_for()
    assert console.page.get_by_test_id("admins-only").count() == 0
    listed = console.drawer_call("endpoints")
    assert listed == stack.get("/webhooks/v1/endpoints", limit=100)


def confirm(console: ConsolePage) -> None:
    box = console.page.locator(".el-message-box")
    box.wait_for()
    box.locator(".el-button--primary").click()
    box.wait_for(state="hidden")


def endpoint_of(console: ConsolePage, url: str) -> dict[str, object] | None:
    items = console.stack.get("/webhooks/v1/endpoints", limit=100)["items"]
    return next((item for item in items if item["url"] == url), None)


def test_an_admin_manages_an_endpoint(console: ConsolePage) -> None:
    stack = console.stack
    page = console.page
    url = f"{URL}/{secrets.token_hex(4)}"
    console.sign_in(stack.admin_key)
    console.open("webhooks")
    page.get_by_test_id("admin-editor").wait_for()

    # Create: one event type instead of all of them; the secret is shown once.
    page.get_by_test_id("endpoint-create").click()
    dialog = page.get_by_test_id("endpoint-dialog")
    console.field("endpoint-url").fill(url)
    page.get_by_test_id("endpoint-types").click()
    page.locator(".el-select-dropdown__item", has_text="全部事件").first.click()  # off
    page.locator(".el-select-dropdown__item", has_text="CampaignSettled").first.click()
    dialog.locator(".el-dialog__header").click()  # closes the list of types
    page.locator(".el-select-dropdown").first.wait_for(state="hidden")
    console.field("endpoint-description").fill("console test")
    page.get_by_test_id("endpoint-submit").click()
    secret_input = console.field("secret")
    secret_input.wait_for()
    first_secret = secret_input.input_value()
    assert first_secret.startswith("whsec_") and len(first_secret) > 40
    page.get_by_test_id("secret-close").click()
    dialog.wait_for(state="hidden")
    made = endpoint_of(console, url)
    assert made is not None
    assert made["event_types"] == ["CampaignSettled"]
    assert made["description"] == "console test" and made["enabled"] is True
    endpoint_id = str(made["endpoint_id"])

    # Disable.
    page.get_by_test_id(f"endpoint-enabled-{endpoint_id}").click()
    page.wait_for_function(
        "id => !document.querySelector(`[data-testid=endpoint-enabled-${id}]`)"
        ".classList.contains('is-checked')", arg=endpoint_id)
    assert stack.get(f"/webhooks/v1/endpoints/{endpoint_id}")["enabled"] is False

    # Edit the description: the PATCH carries only it.
    page.get_by_test_id(f"edit-{endpoint_id}").click()
    console.field("endpoint-description").fill("console test, edited")
    page.get_by_test_id("endpoint-submit").click()
    dialog.wait_for(state="hidden")
    page.locator('[data-testid="endpoints-table"]', has_text="console test, edited").wait_for()
    edited = stack.get(f"/webhooks/v1/endpoints/{endpoint_id}")
    assert edited["description"] == "console test, edited"
    assert edited["url"] == url and edited["event_types"] == ["CampaignSettled"]
    assert edited["enabled"] is False

    # Rotate: a new secret, once; the old one signs on for a while.
    page.get_by_test_id(f"rotate-{endpoint_id}").click()
    confirm(console)
    page.wait_for_function(
        "old => { const i = document.querySelector('input[data-testid=secret], "
        "[data-testid=secret] input'); return i && i.value && i.value !== old; }",
        arg=first_secret)
    second_secret = console.field("secret").input_value()
    assert second_secret.startswith("whsec_") and second_secret != first_secret
    page.get_by_test_id("secret-close").click()
    assert stack.get(f"/webhooks/v1/endpoints/{endpoint_id}")["previous_secret_expires_at"]

    # Deliveries: none for an endpoint no event reached; a replay of the last day sends none.
    page.get_by_test_id(f"deliveries-{endpoint_id}").click()
    page.locator('[data-testid="deliveries"] [data-state="empty"]').wait_for()
    assert stack.get(f"/webhooks/v1/endpoints/{endpoint_id}/deliveries")["items"] == []
    console.field("replay-window").click()
    page.locator(".el-picker-panel__shortcut", has_text="最近 24 小时").click()
    page.get_by_test_id("replay").click()
    page.locator(".el-message--success", has_text="已重新发送 0 条投递").wait_for()

    # Delete.
    page.get_by_test_id(f"delete-{endpoint_id}").click()
    confirm(console)
    page.locator('[data-testid="endpoints-table"]', has_text=url).wait_for(state="detached")
    gone = stack.api().get(f"/webhooks/v1/endpoints/{endpoint_id}")
    assert gone.status_code == 404
    assert endpoint_of(console, url) is None
    console.screenshot("webhooks-admin")
