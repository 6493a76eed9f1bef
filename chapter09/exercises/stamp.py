"""python -m chapter09.exercises.stamp: after changing both editions of a message, record that they agree.

Writes ``messages.stamp`` (one line per message id and lesson step: the id, a hash of its English, a hash of its
Chinese). ``tests/test_exercises_zh.py`` fails when one edition of a text changed and the other did not.
"""
import sys

from .i18n import STAMP, stamp_lines


def main() -> int:
    lines = stamp_lines()
    STAMP.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {STAMP} ({len(lines)} texts)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
