"""WeasyPrint is imported without cffi's library searches, and opens the same libraries as a plain import."""

from __future__ import annotations

import ctypes.util
import platform
import subprocess
import sys

import pytest
from conftest import ROOT

from engine.presentation.templating import ldconfig_finder

LISTING = b"""3 libs found in cache `/etc/ld.so.cache'
\tlibpangoft2-1.0.so.0 (libc6,x86-64) => /lib/x86_64-linux-gnu/libpangoft2-1.0.so.0
\tlibpango-1.0.so.0 (libc6) => /lib/i386-linux-gnu/libpango-1.0.so.0
\tlibpango-1.0.so.0 (libc6,x86-64) => /lib/x86_64-linux-gnu/libpango-1.0.so.0
"""


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.machine() != "x86_64", reason="an x86-64 Linux listing"
)
def test_the_loader_cache_finder_reads_a_listing_as_ctypes_does() -> None:
    find = ldconfig_finder(LISTING)
    assert find("pango-1.0") == "libpango-1.0.so.0"  # the machine's ABI, not the i386 entry
    assert find("pangoft2-1.0") == "libpangoft2-1.0.so.0"
    assert find("pango") is None  # `libpango.` only: a longer name is another library
    assert find("libpango-1.0-0") is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ldconfig is Linux's")
def test_the_loader_cache_finder_answers_as_ctypes_find_library_on_this_machine() -> None:
    listing = subprocess.run(["/sbin/ldconfig", "-p"], capture_output=True, env={"LC_ALL": "C"}, check=True).stdout
    find = ldconfig_finder(listing)
    for name in ("c", "m", "pango-1.0", "gobject-2.0", "fontconfig", "no-such-library-pain-sdm"):
        assert find(name) == ctypes.util.find_library(name), name


LIBRARIES = """
import sys
{imports}
names = ("libgobject", "libpango", "libharfbuzz", "libfontconfig")
maps = open("/proc/self/maps").read().split()
print(sorted({{m for m in maps if m.startswith("/") and m.rsplit("/", 1)[-1].startswith(names)}}))
"""


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_weasyprint_imported_without_searches_opens_the_same_libraries_as_a_plain_import() -> None:
    fast = (
        "import ctypes.util\n"
        "original = ctypes.util.find_library\n"
        "from engine.presentation.templating import import_weasyprint\n"
        "import_weasyprint()\n"
        "assert ctypes.util.find_library is original, 'find_library was left swapped'"
    )
    opened = [
        subprocess.run(
            [sys.executable, "-c", LIBRARIES.format(imports=imports)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=True,
            timeout=120,
        ).stdout
        for imports in (fast, "import weasyprint")
    ]
    assert opened[0] == opened[1]
    assert "libpango" in opened[0]
