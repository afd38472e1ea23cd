"""The library's imports flow one way: stage modules call the library, never the reverse, and the
data modules that read, cut and fetch videos share their video I/O from a module below them."""

from __future__ import annotations

import ast
from pathlib import Path

LIBRARY = Path(__file__).resolve().parents[1] / "lvt"


def imported_modules(path: Path) -> set[str]:
    """Every module a source file imports, anywhere in it, as absolute dotted names."""
    package = ".".join(path.relative_to(LIBRARY.parent).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(part for part in (base, node.module) if part)
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def test_the_library_never_imports_a_stage_module() -> None:
    offenders = {
        str(path.relative_to(LIBRARY.parent)): sorted(
            name for name in imported_modules(path) if name.startswith("lvt.stages")
        )
        for path in LIBRARY.rglob("*.py")
        if "stages" not in path.relative_to(LIBRARY).parts
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_video_modules_import_none_of_each_other() -> None:
    """clips, frames and kinetics each open videos or run ffmpeg; what they share lives in
    lvt.data.video_io, below them and below the manifest module they all use."""
    peers = {"lvt.data.clips", "lvt.data.frames", "lvt.data.kinetics"}
    for name in peers:
        path = LIBRARY.parent / (name.replace(".", "/") + ".py")
        assert imported_modules(path) & peers == set(), name
    assert imported_modules(LIBRARY / "data" / "video_io.py") & {
        "lvt.data.sources", *peers
    } == set()
