import sys
from pathlib import Path

# the shared helpers in tests/gradcheck.py import as a plain module
sys.path.insert(0, str(Path(__file__).parent))
