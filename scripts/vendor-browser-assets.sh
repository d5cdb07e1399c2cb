#!/bin/sh
# Copies the browser libraries the app serves itself from node_modules (npm ci) into DEST:
# onnxruntime-web's WebAssembly build, which a share page's "run on this device" loads. The one list
# of files, used by `make` and by docker/Dockerfile.
set -eu
DEST=${1:?usage: vendor-browser-assets.sh DEST}
SRC=node_modules/onnxruntime-web
mkdir -p "$DEST"
for f in ort.wasm.min.mjs ort-wasm-simd-threaded.mjs ort-wasm-simd-threaded.wasm; do
  cp "$SRC/dist/$f" "$DEST/$f"
done
cp "$SRC/package.json" "$DEST/package.json"  # name, version and licence (MIT) travel with the files
