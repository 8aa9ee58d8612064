"""Ray reads its authentication mode (and its other environment settings) once per process,
when it is first imported: the test clusters' environment is set before any test module here
is imported, since some import the Ray worker modules (and so Ray) at their top. Imported
before those modules are, whatever order the files run in."""

from __future__ import annotations

import os

from tests.cluster.raycluster import ENV

os.environ.update(ENV)
