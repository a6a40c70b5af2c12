"""What make bench says about Azure besides its own figures: the instances target-based scaling
would run for a queue length (Functions docs, "Target-based scaling")."""

from __future__ import annotations

from tools.bench.__main__ import MAX_INSTANCES, azure_instances


def test_instances_are_the_queue_length_over_the_target_per_instance_rounded_up():
    assert azure_instances(500, 64) == 8  # sessions: maxConcurrentSessions per instance
    assert azure_instances(250, 100) == 3  # a batch trigger: maxMessageBatchSize per instance


def test_at_least_one_and_at_most_maximum_instance_count():
    assert azure_instances(0, 64) == 1
    assert azure_instances(10_000, 100) == MAX_INSTANCES == 40


def test_the_cap_is_the_bicep_default():
    from pathlib import Path

    bicep = (Path(__file__).resolve().parents[2] / "infra" / "app" / "function.bicep").read_text()
    assert f"param maximumInstanceCount int = {MAX_INSTANCES}" in bicep
