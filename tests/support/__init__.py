"""Helpers the tests import (``from tests.support import reference``): data roots and caches built
for a test, fakes and stand-ins, reference decoders, fault-injection tools. Test modules import
only these (never each other); fixtures live in the nearest ``conftest.py``."""
