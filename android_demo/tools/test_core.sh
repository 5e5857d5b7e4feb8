#!/usr/bin/env bash
# The :core JUnit 5 tests and the ExecuTorch glue's compile check, without Gradle, Maven or the Android
# SDK (none can be fetched here). `make android-setup` installs the tools (Debian: a JDK, junit5, nodejs;
# npm: kotlin-compiler from package-lock.json); tests/android/ runs this script from pytest. It writes the
# Python fixtures, compiles with kotlinc, runs JUnit's console launcher (XML reports in
# build/junit-reports/) and ends with a plain "N passed, N failed" line.
#
# Usage: test_core.sh PYTHON EXPORT_DIR WAN_EXPORT_DIR
#   PYTHON          the venv's python (tomobile installed): writes the fixtures
#   EXPORT_DIR      a `tomobile export video-dit-tiny --format onnx` folder (manifest, test_vectors/contract.json)
#   WAN_EXPORT_DIR  a `tomobile export PIPELINE_DIR ...` folder of a WanPipeline (test_vectors/wan_contract.json)
set -euo pipefail

PYTHON=${1:?usage: test_core.sh PYTHON EXPORT_DIR WAN_EXPORT_DIR}
EXPORT=${2:?usage: test_core.sh PYTHON EXPORT_DIR WAN_EXPORT_DIR}
WAN_EXPORT=${3:?usage: test_core.sh PYTHON EXPORT_DIR WAN_EXPORT_DIR}
HERE=$(cd "$(dirname "$0")/.." && pwd) # android_demo/
BUILD=$HERE/build
J=/usr/share/java

need() { # a tool `make android-setup` installs
    [ -e "$1" ] || command -v "$1" >/dev/null || { echo "test-android: $1 is missing; run \`make android-setup\` ($2)" >&2; exit 2; }
}
need javac "Debian openjdk-17-jdk-headless"
need $J/junit-platform-console-standalone.jar "Debian junit5"
need "$HERE/node_modules/kotlin-compiler/bin/kotlinc" "npm ci in android_demo/"
KOTLINC=$HERE/node_modules/kotlin-compiler/bin/kotlinc
STDLIB=$HERE/node_modules/kotlin-compiler/lib/kotlin-stdlib.jar

test -f "$EXPORT/manifest.json" || { echo "test-android: no manifest.json in $EXPORT" >&2; exit 2; }
test -f "$WAN_EXPORT/manifest.json" || { echo "test-android: no manifest.json in $WAN_EXPORT" >&2; exit 2; }
rm -rf "$BUILD/classes" "$BUILD/fixtures" "$BUILD/junit-reports"
"$PYTHON" "$HERE/tools/python_fixtures.py" "$BUILD/fixtures"

echo "test-android: compiling :core and its tests (kotlinc $(cat "$HERE/node_modules/kotlin-compiler/build.txt"))"
"$KOTLINC" -jvm-target 17 -cp "$J/junit-jupiter-api.jar:$J/apiguardian-api.jar:$J/opentest4j.jar" \
    -d "$BUILD/classes/core" "$HERE/core/src/main/kotlin" "$HERE/core/src/test/kotlin"

# The glue compiles against :core and the compile-only ExecuTorch stubs, beside the JUnit run.
GLUE=(app/src/main/java/org/tomobile/demo/ExecuTorchParts.kt)
(cd "$HERE" && "$KOTLINC" -jvm-target 17 -cp "$BUILD/classes/core" -d "$BUILD/classes/glue" \
    stubs/executorch-android "${GLUE[@]}" >"$BUILD/glue.log" 2>&1) &
GLUE_PID=$!

set +e
java -Dtomobile.fixtures="$BUILD/fixtures" -Dtomobile.export="$EXPORT" -Dtomobile.wanExport="$WAN_EXPORT" \
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
