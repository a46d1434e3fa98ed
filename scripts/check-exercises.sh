#!/usr/bin/env bash
# Proves every exercise check in both directions, as rustlings does for its exercises:
#   - on the starter code (the crate as shipped), the check FAILS: it really tests the task;
#   - with the task's reference solution, it PASSES.
# A check that passes on the starter is a bug in the check.
#
# Convention: a crate with exercises (a step, or a chapter beyond the chat such as
# jwt-vs-session) has tests/exercises.rs, whose tests are all `#[ignore]`d (so
# `cargo test` stays green). Any other tests/*exercises.rs (say
# scaling-with-redis/tests/cluster_exercises.rs) is checked the same way. The reference
# solution of exercise N is a patch, <crate>/solutions/exN-<short-name>.patch, made with
#     git diff -U2 -- <crate>/src <crate>/static | sed -E 's/^(@@ [^@]* @@).*/\1/'
# (plus <crate>/tests when the exercise changes a test on purpose, after the rest, so that
# the book's line ranges of the patch stay put)
# from a solved copy (the sed drops the function name git puts after a hunk's line
# numbers, which would make the book's listing wider). The check exN_... is run in a
# scratch copy of the repository with solutions/exN-*.patch applied; the working tree is
# never touched. The patched code must also compile without a warning: the book shows it.
# With the patch still applied, the tests of the patched crate and of every crate that
# depends on it (`cargo tree -i`, dev-dependencies included) must pass too, in one
# `cargo test --no-fail-fast` per patch: a solution that breaks another test is not done
# ("How to do the exercises"). A patch whose exercise legitimately changes a test changes
# that test in the same patch, and the chapter's task names it. That is most of the time a
# run takes (a patch to step 1 runs nearly every test of the workspace): measured on the
# book's 2-core machine, 4 to 7 minutes for a patch to step 1 or 2, 10 for a step-4 patch on
# a busy machine, under 1 for a JWT one. EXERCISE_DEPENDANTS=own runs the patched crate's own
# tests only, for a quicker look; EXERCISE_DEPENDANTS=none only the check (what CI runs: the
# full run of every patch takes about two hours). Every patch of every crate has passed the
# full run (beside scripts/with-postgres.sh, which scaling-with-redis's tests need).
#
#   bash scripts/check-exercises.sh                 # every crate with exercises
#   bash scripts/check-exercises.sh step01-http-vs-socket
#   bash scripts/check-exercises.sh step04-socket-middleware ex4   # one exercise of it
set -uo pipefail
cd "$(dirname "$0")/.."

crates=()
only=() # exN arguments: only those exercises
for arg in "$@"; do
  if [[ $arg =~ ^ex[0-9]+$ ]]; then only+=("$arg"); else crates+=("$arg"); fi
done
if [ ${#crates[@]} -eq 0 ]; then
  for dir in */; do
    compgen -G "$dir/tests/*exercises.rs" >/dev/null && crates+=("${dir%/}")
  done
fi

# The scratch copy where a patch is applied: the working tree's files (tracked, and
# untracked unless ignored: an exercise being written counts), outside any git
# repository, so that `git apply` there patches the copy only. It stays between runs
# and is only updated file by file: a file copied anew gets a new mtime (so cargo
# rebuilds what changed), the others keep theirs (so cargo reuses its builds, in the
# same target directory as the working tree's).
repo=$(pwd)
scratch="${TMPDIR:-/tmp}/check-exercises-$(printf %s "$repo" | cksum | cut -d' ' -f1)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target}"
# The logs of this copy of the repository (two clones on one machine keep theirs apart).
logs="$scratch.logs"
mkdir -p "$logs"
sync_scratch() {
  mkdir -p "$scratch"
  git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' path; do
    [ -f "$path" ] || continue # deleted in the working tree
    cmp -s "$path" "$scratch/$path" && continue
    mkdir -p "$scratch/$(dirname "$path")"
    cp "$path" "$scratch/$path"
  done
  # What the working tree no longer has (a removed module, a renamed test) goes too.
  comm -13 <(git ls-files --cached --others --exclude-standard | sort) \
    <(cd "$scratch" && find . -type f -not -path './testkit/js/node_modules/*' |
      sed 's|^\./||' | sort) |
    while IFS= read -r path; do rm -f "$scratch/$path"; done
}
# Runs one check in the scratch copy with one patch applied, then takes it back out.
check_with_patch() { # crate target test patch log
  local crate=$1 target=$2 test=$3 patch=$4 log=$5 status
  # The npm packages of the official client, installed by the runs on the starter.
  if [ -d testkit/js/node_modules ] && [ ! -e "$scratch/testkit/js/node_modules" ]; then
    ln -s "$repo/testkit/js/node_modules" "$scratch/testkit/js/node_modules"
  fi
  # No repository above the scratch copy may take `git apply` for its own.
  if ! GIT_CEILING_DIRECTORIES=$(dirname "$scratch") git -C "$scratch" apply \
      "$repo/$patch" >"$log" 2>&1; then
    echo "(the patch does not apply to the starter)" >>"$log"
    return 1
  fi
  (cd "$scratch" && cargo test -q -p "$crate" --test "$target" -- --ignored --exact "$test") \
    >>"$log" 2>&1
  status=$?
  if [ "$status" -eq 0 ] && [ "${EXERCISE_DEPENDANTS:-all}" != none ]; then
    # Every other test of the crate and of its dependants, with the patch still applied.
    local packages=() dependant
    for dependant in $(tested_with "$crate"); do packages+=(-p "$dependant"); done
    echo "--- the tests of ${packages[*]}" >>"$log"
    # Not the transcripts (tests/transcripts.rs, every test named transcript_...): they hold
    # what the book shows of the starter, and a solved exercise changes some of it on purpose.
    (cd "$scratch" && cargo test -q --no-fail-fast "${packages[@]}" -- --skip transcript_) \
      >>"$log" 2>&1 || status=3
  fi
  GIT_CEILING_DIRECTORIES=$(dirname "$scratch") git -C "$scratch" apply -R "$repo/$patch" ||
    { echo "error: could not take $patch back out of $scratch: delete that folder" >&2; exit 2; }
  return "$status"
}

# The workspace crates whose tests a change to crate $1 can break: $1 itself, and every crate
# that depends on it, directly or through another, as a dependency or a dev-dependency.
dependants_of() {
  cargo tree -q -i "$1" -e normal,build,dev --prefix none |
    sed -n 's|^\([^ ]*\) v[^ ]* (/.*|\1|p' | sort -u
}

# The crates whose tests run with a patch to crate $1 applied.
tested_with() {
  case "${EXERCISE_DEPENDANTS:-all}" in
    own) echo "$1" ;;
    none) ;;
    *) dependants_of "$1" ;;
  esac
}

# Cargo gives a workspace crate's build the same name whichever folder the workspace is in,
# so a build made in the scratch copy (with a patch applied) stands in the shared target
# directory for the working tree's, and cargo, which compares file times, would run it for
# the starter. Hence the order: every check on the starter first, then every patch; and,
# once patches have been built, the working tree's sources get a new time, so that the next
# build anywhere rebuilds them from what they really say. A marker survives an interrupted
# run, whose next run then starts with that.
stale_marker="$scratch.target-has-patched-builds"
mark_sources_newer() {
  git ls-files -z -- ':(glob)*/src/**' ':(glob)*/static/**' ':(glob)*/tests/**' \
    ':(glob)*/migrations/**' | xargs -0 -r touch
  rm -f "$stale_marker"
}
[ -e "$stale_marker" ] && mark_sources_newer

failures=0
passed=0
declare -A checks_of # crate -> the names of its checks, for the patches below
# One check file at a time: "crate target", e.g. "jwt-vs-session exercises".
files=()
for crate in "${crates[@]}"; do
  found=0
  for file in "$crate"/tests/*exercises.rs; do
    [ -f "$file" ] && files+=("$crate $(basename "$file" .rs)") && found=1
  done
  [ "$found" -eq 1 ] || { echo "FAIL $crate: no tests/*exercises.rs"; failures=$((failures + 1)); }
done

# 1. On the starter, every check fails.
to_patch=() # "crate target test" of the checks that did
for file in "${files[@]}"; do
  read -r crate target <<<"$file"
  # Build the starter's checks once, quietly, so the per-test runs below only run.
  # On failure, show why: the last lines of the compiler's output (a type error, a full disk).
  build_log="$logs/build-$crate-$target.log"
  cargo test -q -p "$crate" --test "$target" --no-run >"$build_log" 2>&1 ||
    { echo "FAIL $crate: the exercise checks of tests/$target.rs do not compile on the starter"
      tail -n 30 "$build_log"; failures=$((failures + 1)); continue; }
  tests=$(cargo test -q -p "$crate" --test "$target" -- --ignored --list 2>/dev/null |
    sed -n 's/: test$//p')
  if [ -z "$tests" ]; then
    echo "FAIL $crate: tests/$target.rs has no checks"; failures=$((failures + 1)); continue
  fi
  checks_of[$crate]+=" ${tests//$'\n'/ } "
  for test in $tests; do
    if [ ${#only[@]} -gt 0 ] && [[ " ${only[*]} " != *" ${test%%_*} "* ]]; then
      continue
    fi
    if cargo test -q -p "$crate" --test "$target" -- --ignored --exact "$test" >/dev/null 2>&1; then
      echo "FAIL $crate::$test passes on the starter: it does not check the task"
      failures=$((failures + 1))
    else
      to_patch+=("$crate $target $test")
    fi
  done
done

# 2. With its patch applied, in the scratch copy, each of them passes.
if [ ${#to_patch[@]} -gt 0 ]; then
  sync_scratch
  touch "$stale_marker"
  trap mark_sources_newer EXIT
fi
for check in "${to_patch[@]}"; do
  read -r crate target test <<<"$check"
  log="$logs/$crate-$target-$test.log"
  # ex2_second_pushed_event -> solutions/ex2-*.patch
  patches=("$crate/solutions/${test%%_*}"-*.patch)
  if [ ${#patches[@]} -ne 1 ] || [ ! -f "${patches[0]}" ]; then
    echo "FAIL $crate::$test: not exactly one $crate/solutions/${test%%_*}-*.patch"
    failures=$((failures + 1))
    continue
  fi
  started=$SECONDS
  check_with_patch "$crate" "$target" "$test" "${patches[0]}" "$log"
  status=$?
  took=$((SECONDS - started))
  if [ "$status" -eq 1 ]; then
    echo "FAIL $crate::$test fails with ${patches[0]} applied (log: $log)"
    failures=$((failures + 1))
  elif [ "$status" -eq 3 ]; then
    echo "FAIL ${patches[0]} breaks tests of $(tested_with "$crate" | tr '\n' ' ')(log: $log):"
    # cargo names each failing test under "failures:", and each test binary that failed.
    grep -E '^    [A-Za-z0-9_:]+$|^error: test failed' "$log" | sed 's/^/       /'
    failures=$((failures + 1))
  elif grep -qE '^ *--> ' "$log"; then
    # A diagnostic with a place in a passing build is a warning.
    echo "FAIL $crate::$test: the code with ${patches[0]} applied compiles with a warning (log: $log)"
    failures=$((failures + 1))
  else
    tested=$(tested_with "$crate" | tr '\n' ' ' | sed 's/ $//')
    echo "ok   $crate::$test (fails on the starter, passes with ${patches[0]##*/};" \
      "${tested:+the tests of $tested pass with it, }${took}s)"
    passed=$((passed + 1))
  fi
done
# A patch whose exercise has no check would never be proven.
for crate in "${!checks_of[@]}"; do
  for patch in "$crate"/solutions/*.patch; do
    [ -f "$patch" ] || continue
    name=${patch##*/}
    [[ "${checks_of[$crate]}" == *" ${name%%-*}_"* ]] && continue
    echo "FAIL $patch: no check ${name%%-*}_... in $crate/tests/*exercises.rs"
    failures=$((failures + 1))
  done
done
echo "exercises: $passed passed, $failures failed"
[ "$failures" -eq 0 ] && [ "$passed" -gt 0 ]
