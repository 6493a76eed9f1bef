"""Exit 0 when every requirement file named on the command line is already met by this environment, else 1
(printing the first thing missing), so run_tests.sh can skip pip: a satisfied `pip install -r` still costs
~45 s here (it rebuilds the editable wheel of `-e .` and asks both package indexes about every pin).

Met means: each pinned line's installed version is inside its specifier, and so is every dependency it
declares, down the whole tree (extras and environment markers evaluated as pip would); `-e .` means this
checkout's `chapter09` is what `import chapter09` finds from another folder. Files given after `--no-deps`
are checked for their own lines only (run_tests.sh installs them with `pip install --no-deps`).
Anything this script cannot read (a URL, an option line) counts as not met, so pip runs and decides.
"""
from __future__ import annotations

import importlib.metadata as metadata
import subprocess
import sys
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


class NotMet(Exception):
    pass


def lines(path: Path):
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split(" #")[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-r "):
            yield from lines(path.parent / line[3:].strip())
        else:
            yield line


def editable_checkout_imported() -> None:
    # from / so that the checkout itself is not on sys.path: only the installed editable finder can find it
    found = subprocess.run([sys.executable, "-c", "import chapter09; print(chapter09.__file__)"], cwd="/",
                           capture_output=True, text=True)
    if found.returncode or Path(found.stdout.strip()).resolve() != ROOT / "chapter09" / "__init__.py":
        raise NotMet("-e . (chapter09 is not installed in editable mode from this checkout)")


def check(requirement: Requirement, deps: bool, seen: set, extra: str = "") -> None:
    environment = {**default_environment(), "extra": extra}
    if requirement.marker is not None and not requirement.marker.evaluate(environment):
        return
    key = (canonicalize_name(requirement.name), str(requirement.specifier), tuple(sorted(requirement.extras)))
    if key in seen:
        return
    seen.add(key)
    try:
        dist = metadata.distribution(requirement.name)
    except metadata.PackageNotFoundError:
        raise NotMet(f"{requirement} (not installed)") from None
    if not requirement.specifier.contains(dist.version, prereleases=True):
        raise NotMet(f"{requirement} (installed: {dist.version})")
    if not deps:
        return
    for text in dist.requires or []:
        dependency = Requirement(text)
        if dependency.marker is None or dependency.marker.evaluate({**default_environment(), "extra": ""}):
            check(dependency, True, seen)
        for wanted in requirement.extras:
            if dependency.marker is not None and dependency.marker.evaluate(
                    {**default_environment(), "extra": canonicalize_name(wanted)}):
                check(dependency, True, seen, wanted)


def main(argv: list[str]) -> int:
    deps, seen = True, set()
    try:
        for arg in argv:
            if arg == "--no-deps":
                deps = False
                continue
            for line in lines(ROOT / arg):
                if line in ("-e .", "-e ./"):
                    editable_checkout_imported()
                    continue
                try:
                    check(Requirement(line), deps, seen)
                except InvalidRequirement:
                    raise NotMet(f"{line!r} (not a requirement this check reads)") from None
    except NotMet as missing:
        print(f"not yet installed: {missing}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
