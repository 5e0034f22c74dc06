#!/usr/bin/env bash
# Makes the Node environment in which faceapi.js runs face-api's expression net on TF.js:
# a folder (default /tmp/faceapi-node) with the npm packages face-api 1.7.15 was checked against.
#
#   bash scripts/reference/faceapi_env.sh [DIR]      # then NODE_PATH=DIR/node_modules
#
# --ignore-scripts: no package needs a build step here, and tfjs-node (whose install downloads a
# native library) is not used; face-api's node-wasm bundle runs on TF.js's pure-JS cpu backend.
set -euo pipefail

DIR=${1:-/tmp/faceapi-node}
mkdir -p "$DIR"
cd "$DIR"
[ -f package.json ] || echo '{"private": true}' > package.json
npm install --no-audit --no-fund --ignore-scripts --silent \
    @tensorflow/tfjs@4.22.0 @tensorflow/tfjs-backend-wasm@4.22.0 @vladmandic/face-api@1.7.15
node -e "console.log('face-api', require('@vladmandic/face-api/package.json').version, 'ready')"
