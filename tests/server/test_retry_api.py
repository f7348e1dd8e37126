"""``POST /v1/runs/{run_id}/steps/{step_id}/retry`` (and ``/v1/runs/{run_id}/retry``).

A step that failed once is re-opened with the steps it skipped; the engine drives the
run again and it completes. Each test failed before the endpoints existed (404).
"""

from __future__ import annotations

from luminaguard.hypervisor.fake import Outcome
from luminaguard.server.models import Retried
from tests.server.test_app import Api, api, plan_of, problem  # noqa: F401 (the fixture)

# ruff: noqa: F811  (the api fixture is a parameter of each test)

FLAKY = """\
    - {id: flaky, agent: a, run: "echo flaky >> /work/flaky.log"}
    - {id: after, agent: a, run: "echo after > /work/after.txt", needs: [flaky]}
"""


def failed_once(api: Api, run_id: str = "r") -> None:
    api.harness.backend.on("echo flaky >> /work/flaky.log", Outcome(exit_code=1), times=1)
    api.harness.backend.on("echo flaky >> /work/flaky.log")
    api.harness.backend.on("echo after > /work/after.txt")
    api.start()
    assert api.submit(plan_of(api, FLAKY), run_id).status_code == 201
    api.settle()
    run = api.get(f"/v1/runs/{run_id}").json()
    assert run["state"] == "failed"
    assert [s["state"] for s in run["steps"]] == ["failed", "skipped"]


def test_a_failed_step_is_retried_through_the_api_and_the_run_completes(api: Api) -> None:
    failed_once(api)
    path = "/v1/runs/r/steps/flaky/retry"
    assert api.post(path, {}, role="viewer").status_code == 403
    assert api.post(path, {}, role="submitter").status_code == 403
    response = api.post(path, {"reason": "transient"}, role="approver")
    assert response.status_code == 200, response.json()
    done = Retried.model_validate(response.json())
    assert (done.by, done.retried, done.reopened) == ("approver", ["flaky"], ["after"])
    api.settle()
    run = api.get("/v1/runs/r").json()
    assert run["state"] == "succeeded"
    assert [s["state"] for s in run["steps"]] == ["succeeded", "succeeded"]
    again = api.post(path, {}, role="approver")
    assert again.status_code == 409
    assert "only a failed step" in problem(again).error


def test_every_failed_step_at_once_and_unknown_names(api: Api) -> None:
    failed_once(api)
    assert api.post("/v1/runs/nope/retry", {}, role="approver").status_code == 404
    assert api.post("/v1/runs/r/steps/nope/retry", {}, role="approver").status_code == 404
    assert api.post("/v1/runs/r/retry", {"steps": ["after"]}, role="approver").status_code == 409
    response = api.post("/v1/runs/r/retry", {}, role="approver")
    assert response.status_code == 200
    assert Retried.model_validate(response.json()).retried == ["flaky"]
    api.settle()
    assert api.get("/v1/runs/r").json()["state"] == "succeeded"
