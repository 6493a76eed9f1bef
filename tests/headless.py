"""Headless Chromium for the web-UI tests: Debian's browser driven by path (Playwright never downloads one),
with nothing in the browser itself reaching for the network."""
import shutil

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def require_chromium() -> None:
    if not shutil.which("chromium"):
        pytest.skip("Debian chromium is not installed: apt-get install -y chromium fonts-wqy-microhei "
                    "(run_tests.sh does this when run as root)")


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
