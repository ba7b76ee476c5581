import pathlib
import sys

# The vector runner module lives beside the tests.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
