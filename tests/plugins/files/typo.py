"""A plugin whose hook name has a typo: refused at load time, not silently ignored."""

from impasto.plugins import hookimpl


@hookimpl
def postprocess_results(result, image):  # the hook is postprocess_result
    return None
