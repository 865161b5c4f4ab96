"""The interview command in a real terminal (tmux): keys typed by a person, Ctrl-C, resume, Ctrl-D.

Needs tmux (`.ci/run` installs it); tests/test_interview.py drives the same prompts over a pipe.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import ROOT

from engine.interview.session import load_session

if shutil.which("tmux") is None:  # `.ci/run` installs it; without it these tests fail, never skip
    raise RuntimeError("tmux is not installed: apt-get install tmux (.ci/run does this when it is missing)")

COLUMNS = 80
"""A narrow terminal: prompts must wrap between words and stay readable."""


class Terminal:
    """One tmux session on a private server, running one command."""

    def __init__(self, cwd: Path) -> None:
        self.socket = ""
        self.cwd = cwd

    def tmux(self, *args: str) -> str:
        proc = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=30)
        return proc.stdout

    def start(self, *cli_args: str) -> None:
        # A fresh server for each command: a new session on a server that is still shutting
        # down (after `close`) can be killed with it, leaving an empty screen.
        self.socket = f"pain-sdm-test-{uuid.uuid4().hex[:8]}"
        command = " ".join(shlex.quote(a) for a in [sys.executable, str(ROOT / "cli.py"), *cli_args])
        script = f"cd {shlex.quote(str(self.cwd))} && {command}; echo $? > exit-code; sleep 600"
        self.tmux("new-session", "-d", "-s", "t", "-x", str(COLUMNS), "-y", "40", script)

    def screen(self, joined: bool = False) -> str:
        """What the terminal shows; `joined` joins the lines the terminal itself wrapped (as a copy would)."""
        return self.tmux("capture-pane", "-p", *(["-J"] if joined else []), "-t", "t", "-S", "-200")

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "t", *keys)

    def wait_for(self, done: Callable[[], bool], what: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; screen:\n{self.screen()}")
            time.sleep(0.05)

    def wait_text(self, text: str) -> None:
        self.wait_for(lambda: text in " ".join(self.screen().split()), repr(text))

    def exit_code(self) -> int:
        marker = self.cwd / "exit-code"
        self.wait_for(marker.exists, "the command to exit")
        self.wait_for(lambda: marker.read_text().strip() != "", "the exit code")
        code = int(marker.read_text())
        marker.unlink()
        return code

    def close(self) -> None:
        if self.socket:
            self.tmux("kill-server")


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    term = Terminal(tmp_path)
    yield term
    term.close()


def test_ctrl_c_saves_the_draft_and_a_resume_asks_only_what_is_missing(terminal: Terminal, tmp_path: Path) -> None:
    terminal.start("interview", "--save", "draft.json")
    terminal.wait_text("A label for this discussion")
    assert "Question 1 of" in terminal.screen()
    terminal.keys("AB", "Enter")
    terminal.wait_text("How old are you?")
    lines = terminal.screen().splitlines()
    hint = "(a whole number from 0 to 120 years; type ? if not sure)"
    assert any(line.strip() == hint for line in lines), "a hint too long for the line goes whole on the next"
    assert all(len(line.rstrip()) <= COLUMNS for line in lines)
    terminal.keys("150", "Enter")
    terminal.wait_text("150 is out of range")
    terminal.keys("C-u", "45", "Enter")
    terminal.wait_text("Which of these has a doctor said you have?")
    terminal.keys("C-c")
    assert terminal.exit_code() == 130
    terminal.wait_text("pain-sdm interview --resume draft.json")
    assert load_session(tmp_path / "draft.json").answers == {"patient_label": "AB", "age_years": 45}

    terminal.close()
    terminal.start("interview", "--resume", "draft.json")
    terminal.wait_text("Which of these has a doctor said you have?")
    assert "How old are you?" not in terminal.screen()
    terminal.keys("Down", "Down", "Space", "Enter")
    terminal.wait_text("Where is the main pain?")
    terminal.wait_text("» (choose an answer)")  # nothing is chosen for the patient
    terminal.keys("Down", "Down", "Enter")
    terminal.wait_text("Which best describes how the pain spreads?")
    terminal.keys("Enter")  # on '(choose an answer)': asked again
    terminal.wait_text("Please choose one of the answers")
    terminal.keys("Down", "Enter")
    terminal.wait_text("How long have you had this pain?")
    terminal.keys("C-d")
    assert terminal.exit_code() == 1
    terminal.wait_text("--resume draft.json")
    answers = load_session(tmp_path / "draft.json").answers
    expected = {"conditions": ["sciatica"], "pain_region": "neck", "pain_pattern": "axial"}
    assert answers == {"patient_label": "AB", "age_years": 45, **expected}


def test_the_printed_resume_command_is_not_wrapped_in_a_narrow_terminal(terminal: Terminal, tmp_path: Path) -> None:
    name = "session-for-the-visit-on-the-second-of-december-with-a-long-name.json"
    terminal.start("interview", "--save", name)
    terminal.wait_text("A label for this discussion")
    terminal.keys("C-c")
    assert terminal.exit_code() == 130
    command = f"pain-sdm interview --resume {name}"
    assert len(command) > COLUMNS
    terminal.wait_text("To carry on where you left off, run:")
    lines = [line.strip() for line in terminal.screen(joined=True).splitlines()]
    assert command in lines, "the command is one line the terminal wraps, never broken by the program"
