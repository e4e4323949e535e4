"""λ calibration (tools/calibrate_lambda.py): the rule's arithmetic, and params.yaml agreeing with the committed choice."""
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import calibrate_lambda as C  # noqa: E402


def test_next_lambda_solves_the_orthogonal_share_model():
    # share s = λa / sqrt(λ²a² + b²): with a = b = 1 at λ = 1, s = 1/√2; the λ that gives the target is o(target)
    lam = C.next_lam(1.0, 1 / math.sqrt(2))
    target = C.TARGET_SHARE / math.sqrt(1 - C.TARGET_SHARE ** 2)
    assert lam == pytest.approx(float(f"{target:.0e}"))
    assert C.next_lam(1000.0, C.TARGET_SHARE) == 1000.0          # on target: stay
    assert C.next_lam(1000.0, 0.01) > 1000.0 > C.next_lam(1000.0, 0.9)
    assert C.round_1sig(12690.0) == 10000.0 and C.round_1sig(0.0347) == 0.03


def test_choice_is_the_share_closest_to_the_target_in_log_ratio():
    rows = [dict(regularizer="dst", lam=1e3, round_share=0.06), dict(regularizer="dst", lam=5e3, round_share=0.12),
            dict(regularizer="dst", lam=1e4, round_share=0.7), dict(regularizer="gmg", lam=1e5, round_share=0.29)]
    # |log(0.12/0.3)| = 0.92 > |log(0.7/0.3)| = 0.85: the overshoot is closer
    assert C.chosen(rows) == {"dst": 1e4, "gmg": 1e5}


def test_params_yaml_trains_with_the_calibrated_lambdas():
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "calibrate_lambda.py"), "check"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
