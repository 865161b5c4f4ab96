"""Templates are compiled once per source (the code kept in the cache folder); WeasyPrint imports without searches."""

from __future__ import annotations

import ctypes.util
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import jinja2
import pytest
from conftest import ROOT

from engine.presentation.templating import KeptCParses, TemplateCodeCache, ldconfig_finder

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


def fresh_python(code: str) -> str:
    """What `code` prints, run in a new interpreter (where nothing is imported yet)."""
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True, timeout=120
    )
    return run.stdout


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
    opened = [fresh_python(LIBRARIES.format(imports=imports)) for imports in (fast, "import weasyprint")]
    assert opened[0] == opened[1]
    assert "libpango" in opened[0]


DEFERRED = """
import sys
from engine.presentation import templating
{setup}
weasyprint = templating.import_weasyprint()
import weasyprint.pdf.fonts as fonts
deferred = sorted(templating.DEFERRED_IMPORTS)
print(sorted(m for m in deferred if m in sys.modules))
import fontTools.varLib.instancer as instancer
if fonts.instantiateVariableFont is instancer.instantiateVariableFont:
    print("the instancer's own function")
else:
    instancer.instantiateVariableFont = lambda font, axes, static: ("instanced", font, axes, static)
    print(fonts.instantiateVariableFont("font", {{"wght": 700}}, static=True))
import fontTools.subset
print(fonts.subset.Options is fontTools.subset.Options and fonts.subset.Subsetter is fontTools.subset.Subsetter)
"""


def deferred_run(setup: str = "") -> list[str]:
    return fresh_python(DEFERRED.format(setup=setup)).splitlines()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the deferred import is Linux's")
def test_the_font_modules_a_summary_does_not_use_are_imported_only_when_weasyprint_uses_them() -> None:
    """fontTools' subsetter and instancer are not imported with WeasyPrint; what WeasyPrint took from them
    reaches the real modules once used (the instancer's function called through, the subsetter's classes)."""
    not_imported, called, same_classes = deferred_run()
    assert not_imported == "[]"
    assert called == "('instanced', 'font', {'wght': 700}, True)"
    assert same_classes == "True"


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the deferred import is Linux's")
def test_a_name_a_stand_in_lacks_imports_the_module_itself() -> None:
    """A WeasyPrint that imports another name from a deferred module gets it from the module itself."""
    lacking = 'templating.DEFERRED_IMPORTS["fontTools.varLib.instancer"] = ()'
    imported, function, same_classes = deferred_run(lacking)
    assert imported == "['fontTools.varLib.instancer']", "that module only is imported with WeasyPrint"
    assert function == "the instancer's own function"
    assert same_classes == "True"


def environment_with_cache(folder: Path, templates: Path) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates), bytecode_cache=TemplateCodeCache(folder), auto_reload=False
    )


def refusing_to_compile(env: jinja2.Environment, monkeypatch: pytest.MonkeyPatch) -> jinja2.Environment:
    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("compiled again, not read from the cache")

    monkeypatch.setattr(env, "compile", refuse)
    return env


def test_a_compiled_template_is_read_back_from_the_cache_and_renders_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "page.html").write_text("Hello {{ name }}{% for i in items %} {{ i }}{% endfor %}\n", "utf-8")
    first = environment_with_cache(tmp_path / "cache", templates).get_template("page.html")
    (stored,) = (tmp_path / "cache").iterdir()
    second = refusing_to_compile(environment_with_cache(tmp_path / "cache", templates), monkeypatch)
    rendered = second.get_template("page.html").render(name="Ann", items=[1, 2])
    assert rendered == first.render(name="Ann", items=[1, 2]) == "Hello Ann 1 2"
    assert stored.read_bytes().startswith(b"{")  # a header line, then the code


def compiles(folder: Path, templates: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    """How many times a fresh environment compiled page.html to render it, and what it rendered."""
    env = environment_with_cache(folder, templates)
    calls: list[str] = []
    compile_ = env.compile

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[0])
        return compile_(*args, **kwargs)

    monkeypatch.setattr(env, "compile", counted)
    rendered = env.get_template("page.html").render(x=1)
    return len(calls), rendered


def test_a_changed_template_or_a_damaged_or_foreign_file_is_compiled_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    templates, cache = tmp_path / "templates", tmp_path / "cache"
    templates.mkdir()
    page = templates / "page.html"
    page.write_text("one {{ x }}", "utf-8")
    assert compiles(cache, templates, monkeypatch) == (1, "one 1")
    assert compiles(cache, templates, monkeypatch) == (0, "one 1")
    page.write_text("two {{ x }}", "utf-8")
    assert compiles(cache, templates, monkeypatch) == (1, "two 1")
    (stored,) = cache.iterdir()
    header, _, body = stored.read_bytes().partition(b"\n")
    stored.write_bytes(header + b"\n" + body[:-8])  # truncated: the digest no longer matches
    assert compiles(cache, templates, monkeypatch) == (1, "two 1")
    foreign = json.loads(header) | {"python": "0000"}  # compiled by another Python
    stored.write_bytes(json.dumps(foreign).encode() + b"\n" + body)
    assert compiles(cache, templates, monkeypatch) == (1, "two 1")
    assert compiles(cache, templates, monkeypatch) == (0, "two 1")


C_DECLARATIONS = "typedef struct { int x, y; } Point; typedef unsigned int glyph_t; int area(Point *p);"


def counted_original(calls: list[str]) -> Any:
    import cffi.cparser  # type: ignore[import-untyped]

    original = cffi.cparser.Parser._parse

    def parse(parser: Any, csource: str) -> Any:
        calls.append(csource)
        return original(parser, csource)

    return parse


def test_a_kept_c_parse_is_the_parse_cffi_makes_and_is_read_back_only_when_it_matches(tmp_path: Path) -> None:
    import pickle

    import cffi.cparser

    path = tmp_path / "c-parses.pickle"
    calls: list[str] = []
    original = counted_original(calls)

    def parsed_again(versions: dict[str, str], parser: Any = None) -> bool:
        before = len(calls)
        KeptCParses(path, versions).parse(parser or cffi.cparser.Parser(), C_DECLARATIONS, original)
        return len(calls) > before

    first = KeptCParses(path, {"cffi": "1"})
    parsed = first.parse(cffi.cparser.Parser(), C_DECLARATIONS, original)
    first.save()
    again = KeptCParses(path, {"cffi": "1"}).parse(cffi.cparser.Parser(), C_DECLARATIONS, original)
    assert len(calls) == 1, "read back, not parsed again"
    assert pickle.dumps(again) == pickle.dumps(parsed) == pickle.dumps(original(cffi.cparser.Parser(), C_DECLARATIONS))
    declared = cffi.cparser.Parser()
    declared.parse(C_DECLARATIONS)
    assert parsed_again({"cffi": "1"}, declared), "other declared type names make another preamble: parsed"
    assert parsed_again({"cffi": "2"}), "another cffi's file is not read"
    if hasattr(os, "getuid"):
        path.chmod(0o666)
        assert parsed_again({"cffi": "1"}), "a file others could have written is not read (a pickle runs what it reads)"
        path.chmod(0o600)
    assert not parsed_again({"cffi": "1"})
    path.write_bytes(path.read_bytes().replace(b"area", b"size"))
    assert parsed_again({"cffi": "1"}), "an edited file is not read"


def test_the_kept_c_parses_are_the_most_recently_used(tmp_path: Path) -> None:
    import cffi.cparser

    from engine.presentation.templating import KEPT_C_PARSES

    calls: list[str] = []
    original = counted_original(calls)
    kept = KeptCParses(tmp_path / "c-parses.pickle", {"cffi": "1"})
    parser = cffi.cparser.Parser()
    texts = [f"int f{i}(void);" for i in range(KEPT_C_PARSES + 5)]
    kept.parse(parser, texts[0], original)
    for text in texts[1:]:
        kept.parse(parser, texts[0], original)  # used again: stays
        kept.parse(parser, text, original)
    kept.save()
    calls.clear()
    reread = KeptCParses(tmp_path / "c-parses.pickle", {"cffi": "1"})
    for text in [texts[0], *texts[-(KEPT_C_PARSES - 1) :]]:
        reread.parse(parser, text, original)
    assert calls == []
    reread.parse(parser, texts[1], original)
    assert calls == [texts[1]], "the least recently used went"


KEPT_RUN = """
import cffi.cparser
calls = []
original = cffi.cparser.Parser._parse
def counted(parser, csource):
    calls.append(csource)
    return original(parser, csource)
cffi.cparser.Parser._parse = counted
from engine.presentation import templating
weasyprint = templating.import_weasyprint()
from weasyprint.text.ffi import ffi
assert ffi.sizeof(ffi.typeof("hb_codepoint_t[123]")) == 123 * ffi.sizeof("hb_codepoint_t")
print(len(calls))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the kept parses serve the Linux import")
def test_weasyprint_s_declarations_and_the_types_it_names_later_are_parsed_once(tmp_path: Path) -> None:
    env = {**os.environ, "PAIN_SDM_CACHE": str(tmp_path)}
    runs = [
        subprocess.run(
            [sys.executable, "-c", KEPT_RUN], capture_output=True, text=True, cwd=ROOT, env=env, check=True, timeout=120
        ).stdout.strip()
        for _ in range(2)
    ]
    assert int(runs[0]) >= 2, "the first import parses the declarations, then the types named after it"
    assert runs[1] == "0", "the next import reads them all back"
