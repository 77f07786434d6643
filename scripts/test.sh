#!/usr/bin/env bash
# The test command: installs what is missing, type-checks, lints, and runs every test (unit, integration
# against real PostgreSQL, end-to-end against a real Temporal dev server). Ends with a
# "N passed, N failed" line.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
echo "[test] type-checking"
npx tsc -p tsconfig.json --noEmit || exit 1
echo "[test] linting (the import rules of the layers, promise traps)"
npm run --silent lint || exit 1
mkdir -p test-artifacts
echo "[test] jest"
npx jest --ci --json --outputFile=test-artifacts/jest.json "$@"
rc=$?
node -e '
  const r = require("./test-artifacts/jest.json");
  console.log(`jest: ${r.numPassedTests} passed, ${r.numFailedTests} failed` + (r.numPendingTests ? `, ${r.numPendingTests} skipped` : ""));
  if (r.numTotalTests === 0) { console.error("no test ran"); process.exit(1); }
' || rc=1
exit $rc
