"""Fixtures of the command-line tests: a tiny split image folder, and ``main(argv)`` with what it printed."""

from dataclasses import dataclass

import pytest
from cli_helpers import write_images

from sktransfer.cli import main


@dataclass
class Outcome:
    status: int
    out: str
    err: str


@pytest.fixture
def run_cli(capsys, monkeypatch, tmp_path):
    """``run_cli(*argv)``: main's exit status and what it printed, run from `tmp_path`."""
    monkeypatch.chdir(tmp_path)

    def run(*argv):
        status = main([str(arg) for arg in argv])
        captured = capsys.readouterr()
        return Outcome(status, captured.out, captured.err)

    return run


@pytest.fixture
def split_folder(tmp_path):
    """``training_set/`` and ``test_set/`` of two classes, 4 images each."""
    layout = {f"{split}/{name}": 4 for split in ("training_set", "test_set") for name in ("dark", "light")}
    return write_images(tmp_path / "data", layout)
