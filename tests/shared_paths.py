"""Where the real shared data lives: `DNAHNET_SHARED_DATA`, else the `shared/data` folder beside the checkout."""

import os
from pathlib import Path

SHARED_DATA = Path(os.environ.get("DNAHNET_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
