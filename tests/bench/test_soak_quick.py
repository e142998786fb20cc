"""`make soak` in its quick form: ~2,000 recipients through the local stack with the emulators' faults on (every
error category that leaves no outcome unknown, duplicate SQS deliveries, duplicated and reordered receipts), then
the account of every recipient. The quick form leaves out what needs minutes of waiting (a dispatcher killed
mid-batch, timeouts), which the full `make soak` does."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import soak

pytestmark = pytest.mark.e2e

# Enough recipients for every provider to take some and for faults of each kind to land; `make soak --quick` keeps
# soak.QUICK_RECIPIENTS, this test only checks that the soak measures and accounts for everyone.
RECIPIENTS = 300
# Huawei's and Alibaba's batch sends default to 1 call/s, which makes their small packs of this load the longest
# wait of the run; at 4 calls/s, for the dispatchers and the emulators alike, "no second over a limit" is checked
# just the same, in less time.
RATE_LIMITS = {"batchSendDiffSms": 4, "BatchSendMessageToGlobe": 4}


def test_quick_soak_loses_nothing_and_sends_nothing_twice(tmp_path: Path) -> None:
    result = soak.run(
        RECIPIENTS,
        quick=True,
        deadline_seconds=soak.QUICK_DEADLINE_SECONDS,
        log_path=tmp_path / "stack.log",
        seed=7,
        rate_limits=RATE_LIMITS,
    )

    assert result["settled"], result
    assert soak.failed_goals(result) == []
    burst = result["pumping_burst"]
    assert result["accepted"] == result["records"] == RECIPIENTS + burst["accepted"]
    # The pumping burst in the middle: held past the floor (plus at most one per concurrent sender), every other
    # burst request refused as FRAUD_SUSPECTED, and nothing of the normal load refused by the OTP guard.
    assert soak.PUMPING_FLOOR <= burst["accepted"] <= soak.PUMPING_FLOOR + soak.SENDERS
    assert burst["refused_by_code"] == {"FRAUD_SUSPECTED": burst["requests"] - burst["accepted"]}
    assert burst["requests"] == soak.QUICK_BURST_REQUESTS and burst["normal_load_refused_by_otp_guard"] == {}
    assert sum(result["final_by_status"].values()) == result["accepted"]
    assert result["duplicates_per_provider"] == {"aliyun": 0, "tencent": 0, "huawei": 0}
    assert result["lost"] == 0 and result["seconds_over_limit"] == 0
    assert result["ledger_keys_naming_nobody"] == {"aliyun": 0, "tencent": 0, "huawei": 0}
    for provider, taken in result["recipients_taken_per_provider"].items():
        assert taken > 0, provider
    assert any(result["faults_injected"].values()), "no fault was injected"
    assert result["faults"]["emulator_knobs"]["huawei"]["rate_limits"]["batchSendDiffSms"] == 4
