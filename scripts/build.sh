#!/usr/bin/env bash
# Compiles the TypeScript and prebuilds the workflow bundle the workers load.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf dist
npx tsc -p tsconfig.build.json
node dist/scripts/bundle-workflows.js
