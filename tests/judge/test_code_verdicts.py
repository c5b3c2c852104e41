"""Verdicts come from the harness: exit-status tricks on a wrong solution never pass."""

import shutil

import pytest

from judge.code import IOCase, Limits, judge_assert_tests, judge_io_cases

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")

FAST = Limits(wall_seconds=5, cpu_seconds=2, memory_bytes=512 * 1024**2, output_bytes=64 * 1024)
TESTS = "assert add(1, 2) == 3\nassert add(-1, 1) == 0\n"
WRONG = "def add(a, b):\n    return 0\n"
TRICKS = {
    "sys.exit(0)": "import sys\nsys.exit(0)\n",
    "os._exit(0)": "import os\nos._exit(0)\n",
    "atexit os._exit(0)": "import atexit, os\natexit.register(os._exit, 0)\n",
    "SystemExit in __del__": (
        "import sys\nclass Bye:\n    def __del__(self):\n        raise SystemExit(0)\n"
        "keep = Bye()\nadd.__globals__['keep'] = None\n"
    ),
    "__main__ block": (
        "import sys\ndef main():\n    return 0\nif __name__ == '__main__':\n    sys.exit(main())\n"
    ),
    "exit inside the function": "import sys\ndef add(a, b):\n    sys.exit(0)\n",
    "os._exit inside the function": "import os\ndef add(a, b):\n    os._exit(0)\n",
    "kill own harness": "import os, signal\ndef add(a, b):\n    os.kill(os.getpid(), 9)\n",
}


@pytest.mark.parametrize("trick", TRICKS)
def test_exit_tricks_on_a_wrong_solution_fail(trick):
    verdict = judge_assert_tests(WRONG + TRICKS[trick], TESTS, FAST)
    assert not verdict.passed, verdict.reason
    assert verdict.runs[0].status in ("failed", "error"), verdict.reason


def test_correct_solution_with_a_main_block_passes():
    candidate = (
        "import sys\ndef add(a, b):\n    return a + b\ndef main():\n"
        "    print(add(*map(int, input().split())))\n    return 0\n"
        "if __name__ == '__main__':\n    sys.exit(main())\n"
    )
    verdict = judge_assert_tests(candidate, TESTS, FAST)
    assert verdict.passed, verdict.reason
    assert verdict.reason == "passed: all 2 test statements passed"
    # The same program judged on stdin/stdout runs its __main__ block, and sys.exit(0)
    # after the right answer is a correct program.
    assert judge_io_cases(candidate, [IOCase("2 3\n", "5\n")], FAST).passed
    wrong_io = candidate.replace("add(*map", "0 * add(*map")
    assert not judge_io_cases(wrong_io, [IOCase("2 3\n", "5\n")], FAST).passed


def test_io_program_that_leaves_with_os_exit_is_not_passed():
    candidate = "import os, sys\nprint(5)\nsys.stdout.flush()\nos._exit(0)\n"
    verdict = judge_io_cases(candidate, [IOCase("", "5")], FAST)
    assert not verdict.passed
    assert "before the harness reported completion" in verdict.reason


def test_later_failing_statement_fails_and_is_named():
    verdict = judge_assert_tests("def add(a, b):\n    return a + b if a > 0 else 7\n", TESTS, FAST)
    assert not verdict.passed
    assert verdict.reason == "failed: AssertionError (test statement 2 of 2)"


def test_forged_report_lines_without_the_nonce_do_not_count():
    # The candidate writes fake "ok" lines to every open descriptor, then leaves.
    forge = (
        "import os\nfor fd in map(int, os.listdir('/proc/self/fd')):\n"
        "    for line in ('module ok', 'test 0 ok', 'test 1 ok', 'done 2'):\n"
        "        for nonce in ('', 'x' * 32):\n"
        "            try:\n"
        "                os.write(fd, (nonce + ' ' + line + '\\n').encode())\n"
        "            except OSError:\n"
        "                pass\n"
        "os._exit(0)\n"
    )
    verdict = judge_assert_tests(WRONG + forge, TESTS, FAST)
    assert not verdict.passed
    assert "without the run's nonce ignored" in verdict.reason


def test_the_job_descriptor_with_the_nonce_is_closed_before_the_candidate_runs():
    candidate = (
        "import os\nleft = []\nfor fd in map(int, os.listdir('/proc/self/fd')):\n"
        "    try:\n        left.append(os.read(fd, 4096))\n    except OSError:\n        pass\n"
        "print(left)\n"
    )
    result = judge_io_cases(candidate, [IOCase("", "[b'']")], FAST)
    # Only stdin (empty) could be read: neither the job nor the nonce is reachable.
    assert "nonce" not in result.runs[0].stdout
    assert result.passed, result.runs[0].stdout


def test_unparsable_tests_are_an_error_not_a_pass():
    verdict = judge_assert_tests("def add(a, b):\n    return a + b\n", "assert add(1,", FAST)
    assert not verdict.passed and "the tests do not parse" in verdict.reason
