"""The one Jinja environment for every rendered document (the summary, the rulebook book).

Templates live in engine/presentation/templates/ and ship inside the wheel as package data. HTML
templates are autoescaped, so text a user typed (a label, a concern, a clinician's name)
can never become markup. Markdown templates (`*.md.j2`) are not HTML-escaped by Jinja;
they pass user text through the `md` filter, which neutralises Markdown and HTML syntax.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import importlib
import importlib.util
import logging
import marshal
import os
import pickle
import re
import struct
import subprocess
import sys
import threading
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import jinja2
from jinja2 import BytecodeCache, Environment, FileSystemLoader, StrictUndefined, select_autoescape
from jinja2.bccache import Bucket

from engine.errors import UsageError
from engine.model.parse_cache import (
    cache_folder,
    private_cache_path,
    read_cache_bytes,
    read_private_cache_bytes,
    write_cache_bytes,
    write_private_cache_bytes,
)

TEMPLATES = Path(__file__).resolve().parent / "templates"

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#!|>~])")
_LINE_START = re.compile(r"^(?:\d+[.)](?=\s|$)|[-+=])")
"""What is markup only at the start of a line: a list bullet or number, a rule or heading underline."""


def md_escape(text: object) -> str:
    """Plain text made safe for Markdown: no HTML tags, no Markdown markup, one line.

    Every character Markdown reads as markup is escaped, so no text becomes a link, an image, a
    heading, code or HTML; `-`, `+`, `=` and a number's `.` or `)` only where they would start a
    list or a rule (ids such as `ESI-CAND` stay as they are written).
    """
    value = " ".join(str(text).split())
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _LINE_START.sub(lambda m: f"{m.group()[:-1]}\\{m.group()[-1]}", _MD_SPECIAL.sub(r"\\\1", value))


def md_escape_lines(text: object) -> str:
    """Text of several lines (a note) made safe for Markdown as `md_escape` makes one line, its line breaks kept.

    Each line is escaped on its own; lines end in a hard break, and a blank line still parts paragraphs.
    """
    paragraphs = re.split(r"\n\s*\n", str(text).strip())
    lines = ([md_escape(line) for line in p.splitlines() if line.strip()] for p in paragraphs)
    return "\n\n".join("  \n".join(group) for group in lines if group)


CODE_FORMAT = "pain-sdm/template-code/1"


class TemplateCodeCache(BytecodeCache):
    """Compiled templates kept in the user's cache folder, so a command does not compile them again.

    Jinja names each template's file (`bucket.key`) and gives the checksum of its source; a file
    is used only when its header names this format, Jinja's and Python's versions and that
    checksum, and its digest holds. Anything else is compiled again (and rewritten).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _header(self, bucket: Bucket) -> dict[str, str]:
        python = importlib.util.MAGIC_NUMBER.hex()
        return {"format": CODE_FORMAT, "jinja": jinja2.__version__, "python": python, "source": bucket.checksum}

    def load_bytecode(self, bucket: Bucket) -> None:
        body = read_cache_bytes(self.folder / f"{bucket.key}.code", self._header(bucket))
        if body is None:
            return
        try:
            code = marshal.loads(body)  # noqa: S302  # our own file, digest checked: trusted as Python trusts a .pyc
        except (EOFError, ValueError, TypeError):
            return
        if isinstance(code, types.CodeType):
            bucket.code = code

    def dump_bytecode(self, bucket: Bucket) -> None:
        if bucket.code is not None:
            write_cache_bytes(self.folder / f"{bucket.key}.code", self._header(bucket), marshal.dumps(bucket.code))


def _code_cache() -> TemplateCodeCache | None:
    folder = cache_folder()
    return None if folder is None else TemplateCodeCache(folder / "templates")


@functools.cache
def environment() -> Environment:
    """The shared environment: autoescape on (off only for `.md.j2`), undefined names are errors."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(
            enabled_extensions=("html", "htm", "xml"), disabled_extensions=("md.j2",), default=True
        ),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,  # templates ship with the package: compiled once, never checked on disk again
        bytecode_cache=_code_cache(),
    )
    env.filters["md"] = md_escape
    env.filters["md_lines"] = md_escape_lines
    return env


def html_to_pdf(html: str, tagged: bool = False) -> bytes:
    """Print a rendered HTML document to PDF with WeasyPrint, imported only here (it is slow to import).

    `tagged`: a PDF/UA-1 file, with its structure tagged for screen readers and its language and
    title (from the page's `lang` and `<title>`) in the metadata.
    """
    try:
        weasyprint = import_weasyprint()
    except (ImportError, OSError) as exc:  # OSError: WeasyPrint is there but the Pango library is not
        raise UsageError(
            f"PDF output needs WeasyPrint and the Pango library ({exc}); "
            "write --format html and print it from a browser, or install Pango (Debian: libpango-1.0-0)"
        ) from None
    logging.getLogger("weasyprint").setLevel(logging.ERROR)  # its font-subsetting notices are not for readers
    options = {"pdf_variant": "pdf/ua-1"} if tagged else {}
    return bytes(weasyprint.HTML(string=html).write_pdf(**options))


def ldconfig_finder(listing: bytes) -> Callable[[str], str | None]:
    """`ctypes.util.find_library` as it answers from the loader's cache (`ldconfig -p`), over one listing.

    The same search as ctypes' own first step (`_findSoname_ldconfig`): the soname of the first
    `lib<name>.` entry of the machine's ABI, else None.
    """
    machine = os.uname().machine + ("-32" if struct.calcsize("l") == 4 else "-64")
    abi = {
        "x86_64-64": "libc6,x86-64",
        "ppc64-64": "libc6,64bit",
        "sparc64-64": "libc6,64bit",
        "s390x-64": "libc6,64bit",
        "ia64-64": "libc6,IA-64",
    }.get(machine, "libc6")

    def find(name: str) -> str | None:
        found = re.search(
            rb"\s+(lib%s\.[^\s]+)\s+\(%s" % (re.escape(os.fsencode(name)), re.escape(abi.encode())), listing
        )
        return os.fsdecode(found.group(1)) if found else None

    return find


@contextlib.contextmanager
def _libraries_from_loader_cache() -> Iterator[None]:
    """Inside the block, `ctypes.util.find_library` reads one `ldconfig -p` listing and runs nothing else.

    WeasyPrint opens each of its libraries by trying several names (Windows and macOS ones first);
    cffi asks `find_library` about every name it cannot open, and on Linux each question runs
    ldconfig, then gcc and ld when ldconfig does not know the name: about fifty processes, a quarter
    of a PDF summary's CPU time. A library that only gcc or ld could find is one the dynamic loader
    cannot open by its soname either, unless it is on LD_LIBRARY_PATH, where WeasyPrint's own
    `.so` names open it directly.
    """
    import ctypes.util

    try:
        listing = subprocess.run(
            ["/sbin/ldconfig", "-p"],
            stdin=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            env={"LC_ALL": "C", "LANG": "C"},
            check=False,
        ).stdout
    except OSError:
        listing = b""
    original = ctypes.util.find_library
    ctypes.util.find_library = ldconfig_finder(listing)  # type: ignore[assignment]  # same signature
    try:
        yield
    finally:
        ctypes.util.find_library = original


DEFERRED_IMPORTS: dict[str, tuple[str, ...]] = {
    "fontTools.subset": (),
    "fontTools.varLib.instancer": ("instantiateVariableFont",),
}
"""Modules WeasyPrint imports for fonts a summary never has, and the names it takes from each.

fontTools' subsetter serves only when HarfBuzz cannot subset a font, its instancer only a
variable font; importing them (and fontTools.varLib under them) was about 60 ms of a PDF
summary. They are imported when first used instead.
"""


def _real_module(name: str) -> ModuleType:
    """The module itself, imported now if a `DeferredModule` still stands for it."""
    if isinstance(sys.modules.get(name), DeferredModule):
        del sys.modules[name]
    return importlib.import_module(name)


class DeferredModule(ModuleType):
    """Stands for a module in what WeasyPrint imports: the module itself is imported when first read from."""

    def __getattr__(self, name: str) -> object:
        if name.startswith("__"):
            raise AttributeError(name)  # introspection (by the import system among others) imports nothing
        return getattr(_real_module(self.__name__), name)


def _deferred_function(module: str, name: str) -> Callable[..., object]:
    def call(*args: object, **kwargs: object) -> object:
        return getattr(_real_module(module), name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = f"`{module}.{name}`, imported when first called."
    return call


@contextlib.contextmanager
def _font_modules_deferred() -> Iterator[None]:
    """Inside the block, the modules of `DEFERRED_IMPORTS` not yet imported are `DeferredModule`s in sys.modules.

    Those not used meanwhile leave sys.modules with the block, so that any later import (their
    first use included) imports the real modules.
    """
    stand_ins: dict[str, ModuleType] = {}
    for module, names in DEFERRED_IMPORTS.items():
        if module not in sys.modules:
            stand_ins[module] = DeferredModule(module)
            for name in names:
                setattr(stand_ins[module], name, _deferred_function(module, name))
    sys.modules.update(stand_ins)
    try:
        yield
    finally:
        for module, stand_in in stand_ins.items():
            if sys.modules.get(module) is stand_in:
                del sys.modules[module]


C_PARSES_FORMAT = "pain-sdm/c-parses/1"
KEPT_C_PARSES = 64
"""At most this many parses are kept, the most recently used: WeasyPrint asks cffi for array types
whose lengths (a font's glyph count) change from one document to the next."""


class KeptCParses:
    """pycparser's parses of the C text WeasyPrint gives cffi, kept in the cache folder.

    cffi parses WeasyPrint's declarations of Pango, HarfBuzz and the rest on every import, and
    every C type WeasyPrint names when it draws, each behind a preamble naming every type
    declared so far: about 60 ms of a PDF summary. A parse depends on nothing but that text and
    those names (`cffi.cparser.Parser._parse`), so it is kept under their SHA-256, pickled, in
    one file named for cffi's and pycparser's versions, with a digest, among the cache folder's
    private files (see `read_private_cache_bytes`): a file of another version, edited, or that
    someone else could have written, is not read. A text not kept is parsed as before.
    """

    def __init__(self, path: Path | None, versions: dict[str, str]) -> None:
        self.path = path
        self.header = {"format": C_PARSES_FORMAT, **versions}
        self.kept: dict[str, bytes] | None = None
        self.added = False
        self.lock = threading.Lock()

    def _read(self) -> dict[str, bytes]:
        body = read_private_cache_bytes(self.path, self.header) if self.path is not None else None
        try:
            kept = pickle.loads(body) if body is not None else {}  # noqa: S301  # our own file, digest checked
        except Exception:  # noqa: BLE001  # an unreadable file is one not kept
            return {}
        return kept if isinstance(kept, dict) else {}

    def parse(self, parser: Any, csource: str, original: Callable[[Any, str], tuple[Any, ...]]) -> tuple[Any, ...]:
        """`original(parser, csource)`, or the parse kept for the same text and declared type names."""
        typedefs = sorted(name for name in parser._declarations if name.startswith("typedef "))
        key = hashlib.sha256("\0".join([csource, *typedefs]).encode()).hexdigest()
        with self.lock:
            if self.kept is None:
                self.kept = self._read()
            pickled = self.kept.pop(key, None)
            if pickled is not None:
                self.kept[key] = pickled  # the most recently used last
                with contextlib.suppress(Exception):
                    return tuple(pickle.loads(pickled))  # noqa: S301
        parsed = original(parser, csource)
        try:
            pickled = pickle.dumps(parsed, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # noqa: BLE001  # a parse that cannot be kept is only not kept
            return parsed
        with self.lock:
            self.kept[key] = pickled
            while len(self.kept) > KEPT_C_PARSES:
                del self.kept[next(iter(self.kept))]
            self.added = True
        return parsed

    def save(self) -> None:
        """Write the file if a parse was added (at exit: the types WeasyPrint names come as it draws)."""
        with self.lock:
            if self.path is not None and self.added and self.kept is not None:
                kept = pickle.dumps(self.kept, protocol=pickle.HIGHEST_PROTOCOL)
                write_private_cache_bytes(self.path, self.header, kept)
                self.added = False


def _kept_c_parses() -> KeptCParses | None:
    """The kept parses for the installed cffi and pycparser, None if cffi's parser is not the one known here."""
    try:
        import cffi  # type: ignore[import-untyped]
        import cffi.cparser  # type: ignore[import-untyped]
        import pycparser  # type: ignore[import-untyped]
    except ImportError:
        return None
    if not callable(getattr(cffi.cparser.Parser, "_parse", None)):
        return None
    versions = {"cffi": cffi.__version__, "pycparser": pycparser.__version__}
    kept = KeptCParses(private_cache_path(f"c-parses-{cffi.__version__}-{pycparser.__version__}.pickle"), versions)
    atexit.register(kept.save)
    return kept


@contextlib.contextmanager
def _c_parses_kept() -> Iterator[KeptCParses | None]:
    """Inside the block, cffi's parsers use the kept parses; the parser WeasyPrint's FFI keeps goes on using them."""
    kept = _kept_c_parses()
    if kept is None:
        yield None
        return
    import cffi.cparser

    original = cffi.cparser.Parser._parse

    def parse(parser: Any, csource: str) -> tuple[Any, ...]:
        return kept.parse(parser, csource, original)

    cffi.cparser.Parser._parse = parse
    try:
        yield kept
    finally:
        cffi.cparser.Parser._parse = original
    ffi = getattr(sys.modules.get("weasyprint.text.ffi"), "ffi", None)
    parser = getattr(ffi, "_parser", None)
    if isinstance(parser, cffi.cparser.Parser):
        parser._parse = types.MethodType(parse, parser)  # this parser only


_IMPORTING = threading.Lock()


def import_weasyprint() -> ModuleType:
    """`import weasyprint`, on Linux without the dozens of library searches cffi would run for it,
    without the font modules a summary does not use (`DEFERRED_IMPORTS`), and with cffi's parses kept.

    Should that import fail (the libraries do not open that way), it is run again the ordinary
    way, so what loads (or the error raised) is what a plain `import weasyprint` gives.
    """
    if "weasyprint" in sys.modules or not sys.platform.startswith("linux"):
        return importlib.import_module("weasyprint")
    with _IMPORTING:  # one thread at a time swaps find_library and sys.modules entries, and puts them back
        try:
            with _libraries_from_loader_cache(), _font_modules_deferred(), _c_parses_kept():
                return importlib.import_module("weasyprint")
        except (OSError, ImportError):
            for name in [m for m in sys.modules if m == "weasyprint" or m.startswith("weasyprint.")]:
                del sys.modules[name]
        return importlib.import_module("weasyprint")
