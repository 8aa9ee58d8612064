"""A plugin that raises (or returns nonsense) on purpose: only the job it touched may fail."""

from impasto.plugins import hookimpl

__version__ = "1.2.3"


@hookimpl
def preprocess_request(request):
    prompt = request["prompt"]
    if "crash before queue" in prompt:
        raise KeyError("no such thing")
    if "exit before queue" in prompt:
        raise SystemExit(3)  # what an argparse inside a plugin does
    if "interrupt before queue" in prompt:
        raise KeyboardInterrupt
    if "numbered prompt" in prompt:
        return {**request, "prompt": 5}
    return None


@hookimpl
def postprocess_result(result, image):
    prompt = result.request["prompt"]
    if "explode" in prompt:
        raise RuntimeError("boom on purpose")
    if "exit after" in prompt:
        raise SystemExit(3)
    if "interrupt after" in prompt:
        raise KeyboardInterrupt
    if "wrong type" in prompt:
        return "not an image"
    return None
