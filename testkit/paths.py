"""Where the repository and its bundled files are."""
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "sample"  # the bundled real Xetra sample, in the bucket layout
CONFIGS = REPO / "configs"
