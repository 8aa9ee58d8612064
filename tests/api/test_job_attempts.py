"""A job's ``attempts`` counts the tries a dead worker cut short, the last one included, so it
agrees with the error of a job that ran out of tries. The worker's deaths are what the
supervisor reports to the runner; the job is read back through the API."""

from __future__ import annotations

from litestar.testing import TestClient

from impasto.services.container import Services
from impasto.worker.oom import OUT_OF_MEMORY

KILLED = "worker killed by signal 9 (SIGKILL)"


def _submit(api: TestClient) -> str:
    response = api.post("/api/v1/generate", json={"prompt": "doomed", "width": 64, "height": 64})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def _interrupt(services: Services, job_id: str, reason: str, *, retry: bool = True) -> None:
    job = services.jobs.store.claim_next("worker-0")
    assert job is not None and job.id == job_id
    services.jobs.runner.on_interrupted(job, reason, retry=retry)


def test_a_job_out_of_tries_shows_as_many_attempts_as_its_error_says(
    api: TestClient, services: Services
) -> None:
    job_id = _submit(api)
    for tries in range(1, services.settings.max_attempts):
        _interrupt(services, job_id, KILLED)
        retried = api.get(f"/api/v1/generate/{job_id}").json()
        assert (retried["status"], retried["attempts"]) == ("queued", tries)
    _interrupt(services, job_id, KILLED)
    failed = api.get(f"/api/v1/generate/{job_id}").json()
    assert failed["status"] == "failed"
    assert failed["error"] == f"{KILLED} (tried 3 times)"
    assert failed["attempts"] == 3 == services.settings.max_attempts


def test_a_try_given_up_at_once_is_counted(api: TestClient, services: Services) -> None:
    job_id = _submit(api)
    _interrupt(services, job_id, OUT_OF_MEMORY, retry=False)
    failed = api.get(f"/api/v1/generate/{job_id}").json()
    assert (failed["status"], failed["error"], failed["attempts"]) == ("failed", OUT_OF_MEMORY, 1)


def test_a_stop_of_the_daemon_is_no_try(api: TestClient, services: Services) -> None:
    job_id = _submit(api)
    _interrupt(services, job_id, "daemon stopped")
    back = api.get(f"/api/v1/generate/{job_id}").json()
    assert (back["status"], back["attempts"], back["error"]) == ("queued", 0, None)
