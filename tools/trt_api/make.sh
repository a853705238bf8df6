#!/usr/bin/env bash
# Regenerate tests/data/trt_api/tensorrt-VERSION.json: the real Python API of each TensorRT version.
#
# NVIDIA publishes the Python bindings of every TensorRT on PyPI (tensorrt-bindings for 8.6,
# tensorrt-cu12-bindings for 10.x and 11.x). The engine itself (the *-libs wheels) cannot be installed
# on a machine without a GPU, but the bindings only link to nine C entry points of libnvinfer,
# libnvonnxparser and libnvinfer_plugin: small stub libraries that export them (and return null) let
# `import tensorrt_bindings` succeed. Nothing can run, but every class, member, enum value and signature
# is the real one; dump_api.py writes them as JSON.
#
# Usage: bash tools/trt_api/make.sh [VERSION...]      (needs python3 with pip, gcc and unzip)
# Default versions: 8.6.1 (closest to JetPack 5's 8.5 and JetPack 6.0's 8.6.2), 10.0.1, 10.3.0
# (JetPack 6.1/6.2, NGC 24.08), 10.8.0.43, 10.13.0.35, 11.4.0.106 (what `pip install tensorrt` gives).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$(cd "$here/../.." && pwd)/tests/data/trt_api
python=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
versions=${*:-8.6.1 10.0.1 10.3.0 10.8.0.43 10.13.0.35 11.4.0.106}

# The C symbols the bindings import (nm -D --undefined-only on each tensorrt_bindings .so), across versions;
# the two C++ parser entry points are those of the 8.x UFF and Caffe parsers.
cat >"$work/stub.c" <<'C'
void* createInferBuilder_INTERNAL(void* logger, int version) { return 0; }
void* createInferRefitter_INTERNAL(void* engine, void* logger, int version) { return 0; }
void* createInferRuntime_INTERNAL(void* logger, int version) { return 0; }
void* createNvOnnxParserRefitter_INTERNAL(void* refitter, void* logger, int version) { return 0; }
void* createNvOnnxParser_INTERNAL(void* network, void* logger, int version) { return 0; }
void* getBuilderPluginRegistry(int capability) { return 0; }
int getNvOnnxParserVersion(void) { return 0; }
void* getPluginRegistry(void) { return 0; }
int initLibNvInferPlugins(void* logger, const char* ns) { return 0; }
void* _ZN11nvuffparser15createUffParserEv(void) { return 0; }
void _ZN11nvuffparser8FieldMapC1EPKcPKvNS_9FieldTypeEi(void) {}
void* _ZN14nvcaffeparser117createCaffeParserEv(void) { return 0; }
void _ZN14nvcaffeparser123shutdownProtobufLibraryEv(void) {}
C
mkdir -p "$work/stubs" "$out"
for major in 8 10 11; do
  for lib in nvinfer nvonnxparser nvinfer_plugin nvparsers; do
    gcc -shared -fPIC -o "$work/stubs/lib$lib.so.$major" -Wl,-soname,"lib$lib.so.$major" "$work/stub.c"
  done
done

for v in $versions; do
  case $v in 8.*) package=tensorrt-bindings ;; *) package=tensorrt-cu12-bindings ;; esac
  mkdir -p "$work/$v"
  "$python" -m pip download -q --no-deps -d "$work/$v" "$package==$v"
  (cd "$work/$v" && unzip -oq ./*.whl)
  LD_LIBRARY_PATH="$work/stubs" "$python" "$here/dump_api.py" "$work/$v" >"$work/tensorrt-$v.json"
  mv "$work/tensorrt-$v.json" "$out/tensorrt-$v.json"
  names=$("$python" -c "import json, sys; print(len(json.load(open(sys.argv[1]))['module']))" "$out/tensorrt-$v.json")
  echo "$out/tensorrt-$v.json: $names names"
done
