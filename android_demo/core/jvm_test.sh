#!/usr/bin/env bash
# Compile the platform-independent Kotlin core with Debian's kotlinc (1.3) and run its JUnit 4
# tests on the JVM. What CI runs (.ci/run); the Android build compiles the same sources with Gradle.
set -euo pipefail
cd "$(dirname "$0")"
out=build/jvm
rm -rf "$out" && mkdir -p "$out"
java_dir=/usr/share/java
classpath="$java_dir/junit4.jar:$java_dir/hamcrest-core.jar"
kotlinc src/main/kotlin -d "$out/core.jar" 2>&1 | grep -v -e '^OpenJDK 64-Bit Server VM warning' >&2 || true
test -f "$out/core.jar"
kotlinc -cp "$out/core.jar:$classpath" src/test/kotlin -d "$out/core-test.jar" 2>&1 \
    | grep -v -e '^OpenJDK 64-Bit Server VM warning' >&2 || true
test -f "$out/core-test.jar"
tests=$(cd src/test/kotlin && find . -name '*Test.kt' | sed -e 's|^\./||' -e 's|\.kt$||' -e 's|/|.|g' | sort)
java -cp "$out/core.jar:$out/core-test.jar:$java_dir/kotlin-stdlib.jar:$classpath:src/test/resources" \
    org.junit.runner.JUnitCore $tests
