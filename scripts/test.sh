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
rm -f test-artifacts/jest*.json
npx jest --ci --json --outputFile=test-artifacts/jest.json "$@"
rc=$?
if [ $# -eq 0 ]; then
  # The AWS SDK and the binlog reader are moving to Node.js 22, and the dbferry image runs it with
  # async context frames (Dockerfile: CDC applies changes up to 1.9x faster): the unit tests and
  # the end-to-end tests of a production worker, of CDC and of the CLI's own commands run on it too,
  # as the image runs them (Node 22 from the npm registry, scripts/node22.sh), the rest on the
  # machine's Node.js.
  echo "[test] jest on Node.js 22 with async context frames: unit tests, the production worker, CDC, the CLI's init/schema/--json"
  if node22="$(bash scripts/node22.sh | tail -1)"; then
    PATH="$node22:$PATH" NODE_OPTIONS="${NODE_OPTIONS:-} --experimental-async-context-frame" npx jest --ci --json --outputFile=test-artifacts/jest-node22.json \
      test/unit test/e2e/production-worker.test.ts test/e2e/cdc.test.ts test/e2e/cdc-streaming.test.ts test/e2e/cli-init-schema.test.ts || rc=1
  else
    echo "[test] Node.js 22 could not be installed"; rc=1
  fi
fi
node -e '
  const fs = require("fs");
  const runs = ["jest.json", "jest-node22.json"].filter((f) => fs.existsSync("test-artifacts/" + f)).map((f) => require("./test-artifacts/" + f));
  const sum = (k) => runs.reduce((a, r) => a + r[k], 0);
  console.log(`jest: ${sum("numPassedTests")} passed, ${sum("numFailedTests")} failed` + (sum("numPendingTests") ? `, ${sum("numPendingTests")} skipped` : "") + (runs.length > 1 ? ` (of them on Node.js 22: ${runs[1].numPassedTests} passed, ${runs[1].numFailedTests} failed)` : ""));
  if (sum("numTotalTests") === 0) { console.error("no test ran"); process.exit(1); }
' || rc=1
exit $rc
