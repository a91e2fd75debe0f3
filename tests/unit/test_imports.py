"""How our modules depend on each other: one way, never in a circle.

Two modules that import each other only work while one of the imports stays
inside a function; the next person to move it to the top gets an ImportError,
and neither module can be read without the other.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("services", "shared", "scripts", "tests")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def our_imports() -> dict[str, set[str]]:
    """Every module of ours, with the modules of ours it imports anywhere in its code (in functions too)."""
    paths = [path for package in PACKAGES for path in (ROOT / package).rglob("*.py")] + [ROOT / "client.py"]
    modules = {module_name(path): path for path in paths}
    imports = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)  # `from package import module`
        imports[name] = {other for other in found if other in modules and other != name}
    return imports


def cycle_from(start: str, imports: dict[str, set[str]]) -> list[str] | None:
    """A chain of imports that leads from ``start`` back to it, if there is one."""
    trail, seen = [start], set()

    def walk(module: str) -> bool:
        for other in sorted(imports[module]):
            if other == start:
                return True
            if other not in seen:
                seen.add(other)
                trail.append(other)
                if walk(other):
                    return True
                trail.pop()
        return False

    return [*trail, start] if walk(start) else None


def test_no_module_imports_itself_through_others():
    imports = our_imports()
    cycles = {" -> ".join(cycle) for name in imports if (cycle := cycle_from(name, imports))}
    assert not cycles, "import cycles:\n" + "\n".join(sorted(cycles))
