"""The Tasks page against the rewards API: the walkthrough's tasks, a task's funnel as its
stats answer it, and the API's 422 message on a bad task."""

from __future__ import annotations

import json

from tests.console.conftest import ConsolePage


def open_tasks(console: ConsolePage) -> None:
    console.sign_in(console.stack.operator_key)
    console.open("tasks")
    console.page.get_by_test_id("task-list").wait_for()
    # The list is there before its rows: they come with the API's answer, all at once.
    console.page.locator("[data-task-id]").first.wait_for()


def test_the_list_shows_the_tasks_the_api_lists(console: ConsolePage) -> None:
    listed = console.stack.get("/rewards/v1/tasks")["items"]
    assert len(listed) >= 4  # the walkthrough's tasks
    open_tasks(console)
    cells = console.page.locator("[data-task-id]")
    assert [cells.nth(i).get_attribute("data-task-id") for i in range(cells.count())] == [
        task["task_id"] for task in listed]
    console.screenshot("tasks-list")


def test_the_funnel_is_the_stats_api_s_answer(console: ConsolePage) -> None:
    stack = console.stack
    task_id = next(task["task_id"] for task in stack.get("/rewards/v1/tasks")["items"]
                   if task["task_id"].startswith("checkin-"))
    open_tasks(console)
    console.page.locator(f'[data-task-id="{task_id}"]').click()
    (bars,) = console.series("tasks-stats")
    stats = stack.get(f"/rewards/v1/tasks/{task_id}/stats")
    assert bars == [stats["started"], stats["completed"], stats["claimed"], stats["rewarded"]]
    assert stats["rewarded"] == 1  # the walkthrough's streak, paid once
    assert console.drawer_call("stats") == stats
    console.screenshot("tasks-stats")


def test_a_refused_task_shows_the_api_s_422_message(console: ConsolePage) -> None:
    stack = console.stack
    task = next(task for task in stack.get("/rewards/v1/tasks")["items"]
                if task["task_id"].startswith("checkin-"))
    open_tasks(console)
    page = console.page
    page.locator(f'[data-task-id="{task["task_id"]}"]').click()
    page.get_by_test_id("task-edit").click()
    editor = page.locator('textarea[data-testid="task-form-body"], '
                          '[data-testid="task-form-body"] textarea').first
    body = json.loads(editor.input_value())
    assert body["name"] == task["name"] and body["reward"] == {"points": 70}
    body["condition"]["count"] = 0
    editor.fill(json.dumps(body))
    page.get_by_test_id("task-form-save").click()
    error = page.get_by_test_id("task-error")
    error.wait_for()

    refused = stack.api(stack.operator_key).put(f"/rewards/v1/tasks/{task['task_id']}",
                                                json=body)
    assert refused.status_code == 422
    envelope = refused.json()["error"]
    assert envelope["message"] in error.inner_text()
    assert f"422 {envelope['code']}" in error.inner_text()
    console.expect_errors(1)  # the browser logs the refused request
    # Nothing changed.
    assert stack.get(f"/rewards/v1/tasks/{task['task_id']}")["condition"]["count"] == 1
