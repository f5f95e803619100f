"""Makes `loopback_cluster` (the local Ray cluster these tests start) importable under
--import-mode=importlib."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
