#!/usr/bin/env bash
# `make test-android`: the :core JUnit 5 tests and the ExecuTorch glue's compile check, without Gradle,
# Maven or the Android SDK (none can be fetched here). Installs what is missing (Debian: a JDK, junit5,
# nodejs/npm; npm: kotlin-compiler from package-lock.json), writes the Python fixtures, compiles with
# kotlinc, runs JUnit's console launcher, and ends with the line CI reads: "N passed, N failed".
#
# Usage: test_core.sh PYTHON EXPORT_DIR
#   PYTHON      the venv's python (tomobile installed): writes the fixtures
#   EXPORT_DIR  a `tomobile export video-dit-tiny --format onnx` folder (manifest, test_vectors/contract.json)
set -euo pipefail

PYTHON=${1:?usage: test_core.sh PYTHON EXPORT_DIR}
EXPORT=${2:?usage: test_core.sh PYTHON EXPORT_DIR}
HERE=$(cd "$(dirname "$0")/.." && pwd) # android_demo/
BUILD=$HERE/build
J=/usr/share/java

apt_install() { # packages to install when a file they provide is missing
    if [ "$(id -u)" != 0 ]; then
        echo "test-android: missing $*; install them (sudo apt-get install -y --no-install-recommends $*)" >&2
        exit 2
    fi
    if [ -z "${APT_UPDATED:-}" ]; then apt-get update -qq; APT_UPDATED=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

command -v javac >/dev/null || apt_install openjdk-17-jdk-headless
[ -f $J/junit-platform-console-standalone.jar ] || apt_install junit5
command -v npm >/dev/null || apt_install nodejs npm
if [ ! -x "$HERE/node_modules/kotlin-compiler/bin/kotlinc" ] || [ "$HERE/package-lock.json" -nt "$HERE/node_modules/.package-lock.json" ]; then
    (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error)
fi
KOTLINC=$HERE/node_modules/kotlin-compiler/bin/kotlinc
STDLIB=$HERE/node_modules/kotlin-compiler/lib/kotlin-stdlib.jar

test -f "$EXPORT/manifest.json" || { echo "test-android: no manifest.json in $EXPORT" >&2; exit 2; }
if [ ! -f "$BUILD/fixtures/noise.bin" ] || [ "$HERE/tools/python_fixtures.py" -nt "$BUILD/fixtures/noise.bin" ]; then
    "$PYTHON" "$HERE/tools/python_fixtures.py" "$BUILD/fixtures"
fi

rm -rf "$BUILD/classes"
echo "test-android: compiling :core and its tests (kotlinc $(cat "$HERE/node_modules/kotlin-compiler/build.txt"))"
"$KOTLINC" -jvm-target 17 -nowarn -cp "$J/junit-jupiter-api.jar:$J/apiguardian-api.jar:$J/opentest4j.jar" \
    -d "$BUILD/classes/core" "$HERE/core/src/main/kotlin" "$HERE/core/src/test/kotlin"

# The glue compiles against :core and the compile-only ExecuTorch stubs, beside the JUnit run.
GLUE=(app/src/main/java/org/tomobile/demo/ExecuTorchParts.kt)
(cd "$HERE" && "$KOTLINC" -jvm-target 17 -cp "$BUILD/classes/core" -d "$BUILD/classes/glue" \
    stubs/executorch-android "${GLUE[@]}" >"$BUILD/glue.log" 2>&1) &
GLUE_PID=$!

set +e
java -Dtomobile.fixtures="$BUILD/fixtures" -Dtomobile.export="$EXPORT" \
    -jar $J/junit-platform-console-standalone.jar -cp "$BUILD/classes/core:$STDLIB" --scan-class-path \
    --disable-banner --disable-ansi-colors --details=tree --reports-dir "$BUILD/junit-reports" | tee "$BUILD/junit.log"
JUNIT=${PIPESTATUS[0]}
wait $GLUE_PID
GLUE_RC=$?
set -e

cat "$BUILD/glue.log"
if [ $GLUE_RC -eq 0 ]; then
    echo "test-android: ExecuTorch glue compiled against the compile-only stubs: ${GLUE[*]}"
else
    echo "test-android: ExecuTorch glue FAILED to compile against the stubs (see above); counted as a failed test"
    failed_glue=1
fi
passed=$(sed -n 's/^\[ *\([0-9]*\) tests successful *\]$/\1/p' "$BUILD/junit.log")
failed=$(sed -n 's/^\[ *\([0-9]*\) tests failed *\]$/\1/p' "$BUILD/junit.log")
echo "${passed:-0} passed, $(( ${failed:-0} + ${failed_glue:-0} )) failed"
[ $JUNIT -eq 0 ] && [ $GLUE_RC -eq 0 ] && [ "${passed:-0}" -gt 0 ]
