"""``python -m impasto_watermark IMAGE...``."""

import sys

from impasto_watermark import main

sys.exit(main())
