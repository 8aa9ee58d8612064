"""A plugin that raises on purpose: only the job it touched may fail."""

from impasto.plugins import hookimpl

__version__ = "1.2.3"


@hookimpl
def preprocess_request(request):
    if "crash before queue" in request["prompt"]:
        raise KeyError("no such thing")


@hookimpl
def postprocess_result(result, image):
    if "explode" in result.request["prompt"]:
        raise RuntimeError("boom on purpose")
