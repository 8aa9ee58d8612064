"""A post-processor that takes its time when a prompt asks for it, to cancel a job during it."""

import time

from impasto.plugins import hookimpl


@hookimpl
def postprocess_result(result, context):
    if "slow" in result.request["prompt"]:
        (context.data_dir / f"slow-{result.job_id}").touch()  # tells the test it is in here
        time.sleep(4)
