"""A plugin that takes its time when a prompt asks for it: a post-processor to cancel a job
during it, and a preprocessor that hangs until the test releases it."""

import time

from impasto.plugins import RejectRequest, hookimpl


@hookimpl
def preprocess_request(request, context):
    if "hang before queue" in request["prompt"]:
        release = context.data_dir / "release-slow"
        deadline = time.monotonic() + 120
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        raise RejectRequest("released")


@hookimpl
def postprocess_result(result, context):
    if "slow" in result.request["prompt"]:
        (context.data_dir / f"slow-{result.job_id}").touch()  # tells the test it is in here
        time.sleep(4)
