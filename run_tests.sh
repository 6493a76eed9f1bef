#!/usr/bin/env bash
# The test command, for a newcomer and for CI alike (README "Tests"; .ci/run calls it): installs what the suite
# needs from this repository's own files, lints, runs every test, then runs the CPU-dependent tests again as
# if this CPU had no native bf16, so both precision paths run on every machine. Extra arguments go to pytest
# (e.g. `bash run_tests.sh -m unit`); the install steps are skipped with CH09_SKIP_INSTALL=1.
set -euo pipefail
cd "$(dirname "$0")"
# CH09_AS_AVX2=1: the whole run as on an AVX2-only CPU (no AVX-512, no VNNI, no native bf16), as closely as one
# machine can: the chapter's capability checks and oneDNN's and MKL's kernels are held to AVX2.
if [ -n "${CH09_AS_AVX2:-}" ]; then
  export CH09_HIDE_CPU_FEATURES=avx512,vnni,amx ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1

if [ -z "${CH09_SKIP_INSTALL:-}" ]; then
  # Debian packages: chromium for the web-UI browser tests (Playwright drives it by path and never downloads
  # a browser); a CJK font so Chinese text renders in the page's screenshots, and the Latin font chromium
  # would have recommended (named, since recommends are not installed: they are printer, power, udev and
  # desktop-notification services a headless browser never uses; ~31 packages instead of 131, same page:
  # CJK and Latin text checked in a screenshot with the Mesa drivers hidden).
  need=()
  command -v chromium >/dev/null || need+=(chromium)
  fc-list 2>/dev/null | grep -qi "wenquanyi\|wqy" || need+=(fonts-wqy-microhei)
  fc-list 2>/dev/null | grep -qi "liberation" || need+=(fonts-liberation)
  if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
    else
      echo "missing Debian packages: ${need[*]}; install them with: sudo apt-get install -y ${need[*]}"
      echo "(until then the browser tests are skipped, and the summary at the end says so)"
    fi
  fi
  # pip only when something is missing: a satisfied `pip install -r` still takes ~45 s (it rebuilds the
  # editable wheel and asks the indexes about every pin); the check walks every pin's dependency tree (~3 s)
  if ! python .ci/requirements_met.py requirements-test.txt --no-deps requirements-real-artifacts.txt; then
    python -m pip install -q -r requirements-test.txt
    # test-only packages whose wheels carry the real tokenizers and model configs; their own dependencies
    # (torchvision among them) are not wanted, so they install without them
    python -m pip install -q --no-deps -r requirements-real-artifacts.txt
  fi
fi

ruff check .
# CI (and anyone who installed everything) runs strict: a skipped test fails the run instead of hiding.
if [ -n "${CI:-}" ]; then export CH09_TESTS_STRICT=1; fi
# One worker per core (pytest-xdist), one torch thread each (tests/conftest.py); a file's tests share a worker,
# so module fixtures are built once; the longest files go first (tests/conftest.py LONGEST_FIRST, kept in that
# order by --no-loadscope-reorder). The slower tier (marker slow) is left out: `python -m pytest -m slow`.
python -m pytest -q -n auto --dist loadfile --no-loadscope-reorder -m "not slow" "$@"

# The same decisions on the other kind of CPU: hide bf16 from the capability check (chapter09/cpu.py).
if [ $# -eq 0 ]; then
  if python -c "import sys; from chapter09.cpu import has_native_bf16; sys.exit(0 if has_native_bf16() else 1)"; then
    echo "CPU-dependent tests again, as if this CPU had no native bf16 (CH09_HIDE_CPU_FEATURES=bf16):"
    CH09_HIDE_CPU_FEATURES=bf16 python -m pytest -q -n auto --dist loadfile -m cpu
  else
    echo "this CPU has no native bf16: the run above already took the no-bf16 path of every CPU-dependent test"
  fi
fi
