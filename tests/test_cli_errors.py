"""Every command line turns a user's mistake (a ChapterError, a wrong path) into one line and exit code 2, and
lets anything else (a bug) show its traceback."""
import pytest

from chapter09.cli import run_cli
from chapter09.errors import UsageError
from chapter09.images import BadImageError, load_image
from chapter09.vlm.tiny import read_captions


def _raise(error):
    def main():
        raise error
    return main


def test_expected_errors_print_one_line_and_exit_2(capsys, tmp_path):
    assert run_cli(_raise(UsageError("--k must be at least 1"))) == 2
    assert capsys.readouterr().err == "error: --k must be at least 1\n"
    assert run_cli(lambda: load_image(tmp_path / "missing.jpg")) == 2
    assert "missing.jpg" in capsys.readouterr().err
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert run_cli(lambda: load_image(tmp_path / "empty.jpg")) == 2
    assert "empty file" in capsys.readouterr().err
    (tmp_path / "captions.json").write_text("[]")
    assert run_cli(lambda: read_captions(tmp_path / "captions.json")) == 2
    assert "non-empty JSON list" in capsys.readouterr().err


def test_a_bug_keeps_its_traceback():
    for bug in (ValueError("shapes (3,) and (4,) not aligned"), KeyError("caption"), RuntimeError("boom")):
        with pytest.raises(type(bug)):
            run_cli(_raise(bug))


def test_user_errors_keep_their_builtin_base():
    """Code that caught ValueError before still catches them."""
    assert issubclass(BadImageError, ValueError) and issubclass(UsageError, ValueError)
