#!/usr/bin/env bash
# Proves every exercise check in both directions, as rustlings does for its exercises:
#   - on the starter code (the crate as shipped), the check FAILS: it really tests the task;
#   - with the reference solutions compiled in (`--features solutions`), it PASSES.
# A check that passes on the starter is a bug in the check.
#
# Convention: a step crate with exercises has tests/exercises.rs, whose tests are all
# `#[ignore]`d (so `cargo test` stays green), and a `solutions` feature.
#
#   bash scripts/check-exercises.sh                 # every step
#   bash scripts/check-exercises.sh step01-http-vs-socket
set -uo pipefail
cd "$(dirname "$0")/.."

crates=("$@")
if [ ${#crates[@]} -eq 0 ]; then
  for dir in step*/; do
    [ -f "$dir/tests/exercises.rs" ] && crates+=("${dir%/}")
  done
fi

failures=0
passed=0
for crate in "${crates[@]}"; do
  # Build both variants once, quietly, so the per-test runs below only run.
  cargo test -q -p "$crate" --test exercises --no-run 2>/dev/null ||
    { echo "FAIL $crate: the exercise checks do not compile on the starter"; failures=$((failures + 1)); continue; }
  cargo test -q -p "$crate" --test exercises --features solutions --no-run 2>/dev/null ||
    { echo "FAIL $crate: the exercise checks do not compile with the solutions"; failures=$((failures + 1)); continue; }
  tests=$(cargo test -q -p "$crate" --test exercises -- --ignored --list 2>/dev/null |
    sed -n 's/: test$//p')
  if [ -z "$tests" ]; then
    echo "FAIL $crate: tests/exercises.rs has no checks"; failures=$((failures + 1)); continue
  fi
  for test in $tests; do
    if cargo test -q -p "$crate" --test exercises -- --ignored --exact "$test" >/dev/null 2>&1; then
      echo "FAIL $crate::$test passes on the starter: it does not check the task"
      failures=$((failures + 1))
    elif ! cargo test -q -p "$crate" --test exercises --features solutions -- --ignored --exact "$test" \
        >"/tmp/exercise-$crate-$test.log" 2>&1; then
      echo "FAIL $crate::$test fails with the reference solution (log: /tmp/exercise-$crate-$test.log)"
      failures=$((failures + 1))
    else
      echo "ok   $crate::$test (fails on the starter, passes with the solution)"
      passed=$((passed + 1))
    fi
  done
done
echo "exercises: $passed passed, $failures failed"
[ "$failures" -eq 0 ] && [ "$passed" -gt 0 ]
