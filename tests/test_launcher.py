"""The executable's start: glibc's huge-page tunable, asked for once, never against the user's choice."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from czii_cli import __version__, launcher
from czii_cli.launcher import glibc_version, huge_pages_environment, transparent_huge_pages_mode

LINUX = {"platform": "linux", "glibc": (2, 36), "thp_mode": "madvise"}


def test_the_tunable_is_added_to_an_environment_without_it():
    found = huge_pages_environment({"HOME": "/home/u"}, **LINUX)
    assert found == {"HOME": "/home/u", "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}


def test_other_tunables_are_kept_in_order():
    found = huge_pages_environment({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.malloc.tcache_count=0"}, **LINUX)
    assert found is not None
    assert found["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2:glibc.malloc.tcache_count=0:glibc.malloc.hugetlb=1"


@pytest.mark.parametrize("value", ["glibc.malloc.hugetlb=0", "glibc.malloc.hugetlb=1", "a=1:glibc.malloc.hugetlb=2"])
def test_a_huge_page_setting_of_the_user_is_kept_and_nothing_restarts(value):
    assert huge_pages_environment({"GLIBC_TUNABLES": value}, **LINUX) is None


def test_a_similar_name_is_not_taken_for_the_tunable():
    found = huge_pages_environment({"GLIBC_TUNABLES": "glibc.malloc.hugetlb_x=1"}, **LINUX)
    assert found is not None and found["GLIBC_TUNABLES"].endswith(":glibc.malloc.hugetlb=1")


@pytest.mark.parametrize(
    "change",
    [
        {"platform": "darwin"},
        {"platform": "win32"},
        {"glibc": None},  # musl or another C library
        {"glibc": (2, 34)},  # before the tunable
        {"thp_mode": "always"},  # huge pages without asking
        {"thp_mode": "never"},
        {"thp_mode": None},  # no transparent huge pages in this kernel
    ],
)
def test_nothing_restarts_where_the_tunable_cannot_help(change):
    assert huge_pages_environment({}, **{**LINUX, **change}) is None


def test_the_first_glibc_with_the_tunable_restarts():
    assert huge_pages_environment({}, **{**LINUX, "glibc": (2, 35)}) is not None


@pytest.mark.parametrize(
    ("text", "mode"),
    [("always [madvise] never\n", "madvise"), ("[always] madvise never\n", "always"), ("always madvise never", None)],
)
def test_the_kernel_mode_is_the_bracketed_word(tmp_path, text, mode):
    setting = tmp_path / "enabled"
    setting.write_text(text)
    assert transparent_huge_pages_mode(setting) == mode


def test_a_kernel_without_the_setting_has_no_mode(tmp_path):
    assert transparent_huge_pages_mode(tmp_path / "missing") is None


@pytest.mark.parametrize(
    ("reported", "version"), [("glibc 2.36", (2, 36)), ("glibc 2.35.1", (2, 35)), ("musl 1.2", None), ("glibc x", None)]
)
def test_the_glibc_version_is_read_from_the_c_library(monkeypatch, reported, version):
    monkeypatch.setattr(os, "confstr", lambda name: reported)
    assert glibc_version() == version


def test_no_glibc_version_where_the_system_has_no_such_name(monkeypatch):
    def unknown(name):
        raise ValueError("unrecognized configuration name")

    monkeypatch.setattr(os, "confstr", unknown)
    assert glibc_version() is None


def _applicable(monkeypatch, *, applies: bool) -> None:
    monkeypatch.setattr(launcher, "glibc_version", lambda: (2, 36) if applies else None)
    monkeypatch.setattr(launcher, "transparent_huge_pages_mode", lambda: "madvise")
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)


def test_run_starts_the_same_command_again_with_the_tunable(monkeypatch):
    _applicable(monkeypatch, applies=True)
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(sys, "orig_argv", ["python3", "/venv/bin/czii", "predict-probs", "a.mrc"])
    calls = []
    monkeypatch.setattr(os, "execve", lambda path, argv, env: calls.append((path, argv, env)))
    monkeypatch.setattr("czii_cli.main.run", lambda: calls.append("commands"))
    launcher.run()
    (path, argv, env), *rest = calls
    assert path == sys.executable
    assert argv == [sys.executable, "/venv/bin/czii", "predict-probs", "a.mrc"]
    assert env["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=1"
    assert rest == ["commands"]  # a real execve never returns; this stand-in does, and the commands run


def test_run_runs_the_commands_at_once_where_nothing_applies(monkeypatch):
    _applicable(monkeypatch, applies=False)
    calls = []
    monkeypatch.setattr(os, "execve", lambda *args: calls.append("execve"))
    monkeypatch.setattr("czii_cli.main.run", lambda: calls.append("commands"))
    launcher.run()
    assert calls == ["commands"]


def test_run_goes_on_when_the_interpreter_cannot_start_again(monkeypatch):
    _applicable(monkeypatch, applies=True)
    monkeypatch.setattr(sys, "platform", "linux")

    def refused(*args):
        raise PermissionError("exec refused")

    calls = []
    monkeypatch.setattr(os, "execve", refused)
    monkeypatch.setattr("czii_cli.main.run", lambda: calls.append("commands"))
    launcher.run()
    assert calls == ["commands"]


def test_the_installed_executable_runs_through_the_launcher():
    executable = Path(sys.executable).with_name("czii")
    environment = {key: value for key, value in os.environ.items() if key != "GLIBC_TUNABLES"}
    done = subprocess.run([str(executable), "--version"], capture_output=True, text=True, env=environment, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"czii {__version__}"


def test_the_console_script_is_the_launcher():
    from importlib.metadata import entry_points

    (script,) = entry_points(group="console_scripts", name="czii")
    assert script.value == "czii_cli.launcher:run"
