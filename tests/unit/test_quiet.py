"""Importing the kit silences third-party noise (gcrm_kit.quiet) and nothing the kit itself shows."""

import subprocess
import sys


def test_import_silences_the_bitsandbytes_fallback_warning_and_loading_bars():
    code = ("import gcrm_kit\nfrom transformers import Trainer\nfrom transformers.utils import logging as l\n"
            "print('bars', l.is_progress_bar_enabled())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "gemm_4bit_forward" not in out.stderr
    assert "bars False" in out.stdout
