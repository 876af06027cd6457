"""What a training log shows for a statistic the kit's trainers log beside the loss (`training.window_means`): the
mean over the logging window's batches, and in a launched run over every process's batches, not the main
process's share alone."""

import pytest
import torch

from gcrm_kit.training import window_means


def test_one_process_logs_the_mean_of_its_batches_and_leaves_out_a_name_without_values():
    assert window_means({"step_accuracy": [0.0, 0.5, 1.0], "other": []}) == {"step_accuracy": 0.5}
    assert window_means({}) == {}


def test_a_launched_run_logs_the_mean_over_every_process_batches():
    # this process saw batch accuracies 0 and 0.5, the other process 1 and 1 (and the only value of "late")
    other = torch.tensor([[0.0, 0.0], [2.0, 2.0]], dtype=torch.float64)  # rows in name order: late, step_accuracy
    seen = []

    def all_reduce_sum(t):
        seen.append(t.clone())
        return t + other

    got = window_means({"step_accuracy": [0.0, 0.5], "late": []}, all_reduce_sum)
    assert got == {"step_accuracy": pytest.approx(2.5 / 4)}  # not this process's 0.25
    assert seen[0].tolist() == [[0.0, 0.0], [0.5, 2.0]]  # what this process adds: (sum, count) per name


def test_a_name_with_values_only_in_another_process_is_logged():
    got = window_means({"x": []}, lambda t: t + torch.tensor([[3.0, 4.0]], dtype=torch.float64))
    assert got == {"x": 0.75}
