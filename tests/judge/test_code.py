import os
import shutil
import sys
import uuid
from pathlib import Path

import pytest

import judge.code as code_module
from judge.code import (
    IOCase,
    Limits,
    SandboxUnavailable,
    judge_assert_tests,
    judge_io_cases,
    run_python,
)

FAST = Limits(wall_seconds=3, cpu_seconds=1, memory_bytes=512 * 1024**2, output_bytes=64 * 1024)
pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")
SOLUTION = "def add(a, b):\n    return a + b\n"
TESTS = "assert add(1, 2) == 3\nassert add(-1, 1) == 0\n"
# A system interpreter that user `nobody` can run exercises the uid-drop layer too.
SYSTEM_PYTHON = next(
    (p for p in ("/usr/bin/python3", "/usr/local/bin/python3") if os.path.exists(p)), None
)
INTERPRETERS = [None] + ([SYSTEM_PYTHON] if SYSTEM_PYTHON else [])


def test_passing_and_failing_solutions():
    assert judge_assert_tests(SOLUTION, TESTS, FAST).passed
    wrong = judge_assert_tests("def add(a, b):\n    return a - b\n", TESTS, FAST)
    assert not wrong.passed
    assert wrong.reason.startswith("failed: AssertionError")
    broken = judge_assert_tests("def add(a, b) return", TESTS, FAST)
    assert not broken.passed and "SyntaxError" in broken.reason


def test_stdin_stdout_cases():
    echo_sum = "a, b = map(int, input().split())\nprint(a + b)\n"
    cases = [IOCase("1 2\n", "3\n"), IOCase("10 -4", "6")]
    assert judge_io_cases(echo_sum, cases, FAST).passed
    verdict = judge_io_cases(echo_sum, [IOCase("1 2", "3"), IOCase("2 2", "5")], FAST)
    assert not verdict.passed
    assert verdict.reason == "case 1: wrong output '4', expected '5'"
    assert len(verdict.runs) == 2


def test_infinite_loop_is_stopped_by_cpu_limit():
    result = run_python("while True:\n    pass\n", limits=FAST)
    assert result.status == "cpu_limit"
    assert "CPU-time limit" in result.reason


def test_sleep_is_stopped_by_wall_limit():
    result = run_python("import time\ntime.sleep(60)\n", limits=Limits(wall_seconds=1))
    assert result.status == "timeout"
    assert result.seconds < 30


@pytest.mark.parametrize("interpreter", INTERPRETERS)
def test_fork_bomb_is_contained(interpreter):
    bomb = "import os\nwhile True:\n    os.fork()\n"
    result = run_python(bomb, limits=FAST, interpreter=interpreter)
    assert not result.passed
    assert "bwrap" in result.isolation
    assert result.status == "process_limit", result.reason


def test_huge_output_is_cut():
    result = run_python("while True:\n    print('x' * 1000)\n", limits=FAST)
    assert result.status == "output_limit"
    assert len(result.stdout) <= FAST.output_bytes


def test_memory_limit():
    result = run_python("x = bytearray(2 * 1024**3)\n", limits=FAST)
    assert result.status == "memory"


@pytest.mark.parametrize("interpreter", INTERPRETERS)
def test_network_is_blocked(interpreter):
    code = "import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=1)\n"
    result = run_python(code, limits=FAST, interpreter=interpreter)
    assert result.status == "blocked"
    assert "socket" in result.reason


@pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")
def test_network_namespace_has_only_loopback():
    # Audit hooks do not see if_nameindex; this shows the namespace itself.
    result = run_python("import socket\nprint(socket.if_nameindex())\n", limits=FAST)
    assert "net-ns" in result.isolation
    assert result.stdout.strip() == "[(1, 'lo')]"


@pytest.mark.parametrize("interpreter", INTERPRETERS)
def test_writes_outside_the_temp_folder_are_blocked(interpreter):
    # Not under /tmp: inside the sandbox /tmp is the candidate's own writable folder.
    target = Path("/var/tmp") / f"escape-{uuid.uuid4().hex}.txt"
    code = f"open({str(target)!r}, 'w').write('x')\n"
    result = run_python(code, limits=FAST, interpreter=interpreter)
    assert result.status == "blocked"
    assert "writing outside the sandbox" in result.reason
    assert not target.exists()
    via_os = run_python(f"import os\nos.remove({str(Path(sys.executable))!r})\n", limits=FAST)
    assert via_os.status == "blocked"


def test_writes_inside_the_temp_folder_work_and_home_is_there():
    code = (
        "import os\nopen('notes.txt', 'w').write('hi')\n"
        "print(open('notes.txt').read(), os.environ['HOME'] == os.getcwd())\n"
    )
    result = run_python(code, limits=FAST)
    assert result.passed, result.stderr
    assert result.stdout.strip() == "hi True"


def test_starting_programs_is_blocked():
    result = run_python("import subprocess\nsubprocess.run(['true'])\n", limits=FAST)
    assert result.status == "blocked"
    assert "subprocess.Popen" in result.reason


def test_leftover_children_do_not_hold_the_run_open():
    code = "import os, time\nif os.fork() == 0:\n    time.sleep(30)\nprint('parent done')\n"
    result = run_python(code, limits=Limits(wall_seconds=20), interpreter=SYSTEM_PYTHON)
    assert result.passed
    assert result.seconds < 15


def test_unsafe_runner_is_marked_and_still_judges_by_the_harness():
    result = run_python("print(1)\n", limits=FAST, unsafe_no_sandbox=True)
    assert result.passed and result.stdout == "1\n"
    assert "unsafe-no-sandbox" in result.isolation and "bwrap" not in result.isolation
    trick = "import sys\ndef add(a, b):\n    return 0\nsys.exit(0)\n"
    assert not judge_assert_tests(trick, TESTS, FAST, unsafe_no_sandbox=True).passed


def test_refuses_to_run_without_bubblewrap(monkeypatch):
    code_module._sandbox_ready.cache_clear()
    monkeypatch.setattr(code_module.shutil, "which", lambda name: None)
    try:
        with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap"):
            judge_assert_tests(SOLUTION, TESTS, FAST)
        with pytest.raises(SandboxUnavailable, match="--unsafe-no-sandbox"):
            run_python("print(1)\n", limits=FAST)
    finally:
        code_module._sandbox_ready.cache_clear()


def test_refuses_to_run_when_user_namespaces_are_refused(monkeypatch):
    code_module._sandbox_ready.cache_clear()
    refusal = "bwrap: No permissions to create new namespace"
    monkeypatch.setattr(code_module, "_probe_failure", lambda command, preexec: refusal)
    try:
        with pytest.raises(SandboxUnavailable, match="No permissions to create new namespace"):
            judge_io_cases("print(1)\n", [IOCase("", "1")], FAST)
    finally:
        code_module._sandbox_ready.cache_clear()
