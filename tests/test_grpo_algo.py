"""The GRPO formulas against values computed by hand."""
import math

import pytest
import torch

from grpo import algo

R = torch.tensor([1.0, 0, 0, 1, 1, 1, 1, 0])  # two groups of G = 4


def test_grpo_advantage_is_group_standardised():
    a = algo.advantages(R, 4, "group", eps=0.0)
    s = math.sqrt(1 / 3)  # group 1: mean 0.5, unbiased std sqrt(4 * 0.25 / 3)
    expect = [0.5 / s, -0.5 / s, -0.5 / s, 0.5 / s, 0.5, 0.5, 0.5, -1.5]  # group 2: mean 0.75, std 0.5
    assert torch.allclose(a, torch.tensor(expect), atol=1e-6)


def test_grpo_advantage_eps_keeps_equal_groups_finite():
    a = algo.advantages(torch.ones(4), 4, "group")
    assert torch.equal(a, torch.zeros(4))


def test_dr_grpo_advantage_is_only_centred():
    a = algo.advantages(R, 4, "none")
    assert torch.allclose(a, torch.tensor([0.5, -0.5, -0.5, 0.5, 0.25, 0.25, 0.25, -0.75]))


def test_batch_scaled_advantage_divides_by_the_batch_std():
    a = algo.advantages(R, 4, "batch", eps=0.0)
    std = math.sqrt((5 * 0.375 ** 2 + 3 * 0.625 ** 2) / 7)  # five 1s, three 0s, mean 0.625
    assert torch.allclose(a, torch.tensor([0.5, -0.5, -0.5, 0.5, 0.25, 0.25, 0.25, -0.75]) / std, atol=1e-6)


def test_unknown_scale_is_rejected():
    with pytest.raises(ValueError, match="scale must be one of"):
        algo.advantages(R, 4, "rank")


MASK = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]])  # lengths 3, 1 and an empty one


def test_grpo_weights_are_sequence_mean_of_token_means():
    w = algo.token_weights(MASK, "grpo")
    expect = torch.tensor([[1 / 6, 1 / 6, 1 / 6, 0], [1 / 2, 0, 0, 0], [0, 0, 0, 0]])
    assert torch.allclose(w, expect)
    # sum(w * l) is (mean(l_0[:3]) + l_1[0]) / 2
    l = torch.tensor([[1.0, 2, 3, 9], [4, 9, 9, 9], [9, 9, 9, 9]])
    assert float((w * l).sum()) == pytest.approx((2 + 4) / 2)


def test_dr_grpo_weights_divide_by_a_constant():
    w = algo.token_weights(MASK, "dr_grpo", max_len=4)
    assert torch.allclose(w, MASK / 8.0)  # N = 2 completions with tokens, L = 4
    with pytest.raises(ValueError, match="max_len"):
        algo.token_weights(MASK, "dr_grpo")


def test_dapo_weights_are_a_token_mean_over_the_batch():
    assert torch.allclose(algo.token_weights(MASK, "dapo"), MASK / 4.0)


def test_global_counts_override_local_ones():
    # a rank holding 4 of the batch's 10 tokens (and 2 of its 5 completions) weights by the totals
    assert torch.allclose(algo.token_weights(MASK, "dapo", num_tokens=10.0), MASK / 10.0)
    assert torch.allclose(algo.token_weights(MASK, "dr_grpo", max_len=4, num_seqs=5), MASK / 20.0)
    w = algo.token_weights(MASK, "grpo", num_seqs=5)
    assert float(w[0, 0]) == pytest.approx(1 / 15) and float(w[1, 0]) == pytest.approx(1 / 5)


def test_clipping_uses_separate_low_and_high_bounds():
    logp = torch.log(torch.tensor([[1.5, 1.5, 0.5, 0.5]]).reshape(4, 1)).requires_grad_()
    old = torch.zeros(4, 1)
    adv = torch.tensor([1.0, -1.0, 1.0, -1.0])
    loss, clipped = algo.policy_loss(logp, old, adv, eps_low=0.2, eps_high=0.28)
    # ratio 1.5, A=+1: clipped at 1 + 0.28; A=-1: min(-1.5, -1.28) keeps the ratio;
    # ratio 0.5, A=+1: min(0.5, 0.8) keeps it; A=-1: min(-0.5, -0.8) clips at 1 - 0.2
    assert torch.allclose(loss.squeeze(1), torch.tensor([-1.28, 1.5, -0.5, 0.8]))
    assert clipped.squeeze(1).tolist() == [1.0, 0.0, 0.0, 1.0]
    loss.sum().backward()
    # d(-rho A)/d logp = -rho A where unclipped, 0 where clipped
    assert torch.allclose(logp.grad.squeeze(1), torch.tensor([0.0, 1.5, -0.5, 0.0]))


def test_unclipped_ratio_one_gives_the_policy_gradient():
    logp = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    loss, _ = algo.policy_loss(logp, logp.detach(), torch.tensor([0.7]))
    assert torch.allclose(loss, torch.tensor([[-0.7, -0.7]]))
    loss.sum().backward()
    assert torch.allclose(logp.grad, torch.tensor([[-0.7, -0.7]]))


def test_k3_kl_estimator():
    logp, ref = torch.log(torch.tensor([0.5, 0.3])), torch.log(torch.tensor([0.25, 0.3]))
    kl = algo.kl_k3(logp, ref)
    assert kl.tolist() == pytest.approx([0.5 - math.log(0.5) - 1, 0.0], abs=1e-6)
    loss, _ = algo.policy_loss(logp[None], logp[None], torch.zeros(1), ref_logp=ref[None], beta=0.1)
    assert loss[0].tolist() == pytest.approx((0.1 * kl).tolist(), abs=1e-7)


def test_unknown_loss_is_rejected():
    with pytest.raises(ValueError, match="loss must be one of"):
        algo.token_weights(MASK, "ppo")
