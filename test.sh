#!/usr/bin/env bash
# The project's whole test suite: what README.md's test command and CI run.
set -euo pipefail
cd "$(dirname "$0")"
go vet ./...
# The crash lab, cached under ${KCRASH_LAB_DIR:-$HOME/.cache/kcrash/lab}: installs its
# Debian packages, fetches the current cloud kernel with its debug info, builds LKDTM
# and runs the crash matrix; a warm run reuses all of it. The e2e tests read its manifest.
echo "test.sh: preparing the crash lab ($(date -u +%T))" >&2
go run ./cmd/kcrash lab run
echo "test.sh: crash lab ready, running the tests ($(date -u +%T))" >&2
go test -count=1 ./...
