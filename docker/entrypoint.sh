#!/usr/bin/env bash
# Jetson container entry point: build (or reuse) the engine for this device, then detect live.
# MODEL, ENGINE_DIR, SOURCE, BACKEND come from the environment; arguments go to deploy/infer.py.
set -euo pipefail
cd /app
exec python3 -m deploy.entrypoint "$@"
