#!/usr/bin/env bash
# Proves every exercise check in both directions, as rustlings does for its exercises:
#   - on the starter code (the crate as shipped), the check FAILS: it really tests the task;
#   - with the reference solutions compiled in (`--features solutions`), it PASSES.
# A check that passes on the starter is a bug in the check.
#
# Convention: a crate with exercises (a step, or a chapter beyond the chat such as
# jwt-vs-session) has tests/exercises.rs, whose tests are all `#[ignore]`d (so
# `cargo test` stays green), and a `solutions` feature. Any other tests/*exercises.rs
# (say scaling-with-redis/tests/cluster_exercises.rs) is checked the same way.
#
#   bash scripts/check-exercises.sh                 # every crate with exercises
#   bash scripts/check-exercises.sh step01-http-vs-socket
set -uo pipefail
cd "$(dirname "$0")/.."

crates=("$@")
if [ ${#crates[@]} -eq 0 ]; then
  for dir in */; do
    compgen -G "$dir/tests/*exercises.rs" >/dev/null && crates+=("${dir%/}")
  done
fi

failures=0
passed=0
# One check file at a time: "crate target", e.g. "jwt-vs-session exercises".
files=()
for crate in "${crates[@]}"; do
  found=0
  for file in "$crate"/tests/*exercises.rs; do
    [ -f "$file" ] && files+=("$crate $(basename "$file" .rs)") && found=1
  done
  [ "$found" -eq 1 ] || { echo "FAIL $crate: no tests/*exercises.rs"; failures=$((failures + 1)); }
done
for file in "${files[@]}"; do
  read -r crate target <<<"$file"
  # Build both variants once, quietly, so the per-test runs below only run.
  # On failure, show why: the last lines of the compiler's output (a type error, a full disk).
  build_log="/tmp/exercise-build-$crate-$target.log"
  cargo test -q -p "$crate" --test "$target" --no-run >"$build_log" 2>&1 ||
    { echo "FAIL $crate: the exercise checks of tests/$target.rs do not compile on the starter"
      tail -n 30 "$build_log"; failures=$((failures + 1)); continue; }
  cargo test -q -p "$crate" --test "$target" --features solutions --no-run >"$build_log" 2>&1 ||
    { echo "FAIL $crate: the exercise checks of tests/$target.rs do not compile with the solutions"
      tail -n 30 "$build_log"; failures=$((failures + 1)); continue; }
  tests=$(cargo test -q -p "$crate" --test "$target" -- --ignored --list 2>/dev/null |
    sed -n 's/: test$//p')
  if [ -z "$tests" ]; then
    echo "FAIL $crate: tests/$target.rs has no checks"; failures=$((failures + 1)); continue
  fi
  for test in $tests; do
    log="/tmp/exercise-$crate-$target-$test.log"
    if cargo test -q -p "$crate" --test "$target" -- --ignored --exact "$test" >/dev/null 2>&1; then
      echo "FAIL $crate::$test passes on the starter: it does not check the task"
      failures=$((failures + 1))
    elif ! cargo test -q -p "$crate" --test "$target" --features solutions -- --ignored --exact "$test" \
        >"$log" 2>&1; then
      echo "FAIL $crate::$test fails with the reference solution (log: $log)"
      failures=$((failures + 1))
    else
      echo "ok   $crate::$test (fails on the starter, passes with the solution)"
      passed=$((passed + 1))
    fi
  done
done
echo "exercises: $passed passed, $failures failed"
[ "$failures" -eq 0 ] && [ "$passed" -gt 0 ]
