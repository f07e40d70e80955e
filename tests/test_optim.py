"""Tests for minimal_seg/optim.py: SGD and Adam against torch.optim, in place and in
float32, checkpoint round trips, and the schedules against torch.optim.lr_scheduler."""
import io
import warnings

import numpy as np
import pytest

from helpers import assert_close, torch_or_skip
from minimal_seg.backend import array_module, to_numpy
from minimal_seg.optim import SGD, Adam, CosineSchedule, StepSchedule

SHAPES = [{"w": (3, 4), "b": (4,)}, {"gamma": (5,)}]  # two "layers"
N_STEPS = 5


def make_layers(xp, rng, dtype):
    """(params, grads) dicts like two layers', and N_STEPS random gradients for each param."""
    pairs, grad_seq = [], []
    for shapes in SHAPES:
        params = {k: xp.asarray(rng.standard_normal(s).astype(dtype)) for k, s in shapes.items()}
        grads = {k: xp.zeros(s, dtype=dtype) for k, s in shapes.items()}
        pairs.append((params, grads))
        grad_seq.append({k: [rng.standard_normal(s).astype(dtype) for _ in range(N_STEPS)]
                         for k, s in shapes.items()})
    return pairs, grad_seq


def set_grads(xp, pairs, grad_seq, t):
    """Store step t's gradients as *new* arrays, as a layer's backward would."""
    for (_, grads), seq in zip(pairs, grad_seq):
        for k in grads:
            grads[k] = xp.asarray(seq[k][t])


def torch_copy(pairs):
    torch = torch_or_skip()
    return [[torch.tensor(to_numpy(p), requires_grad=True) for p in params.values()] for params, _ in pairs]


def set_torch_grads(torch_pairs, grad_seq, t):
    torch = torch_or_skip()
    for tensors, seq in zip(torch_pairs, grad_seq):
        for tensor, k in zip(tensors, seq):
            tensor.grad = torch.tensor(seq[k][t])


SGD_CONFIGS = [
    dict(lr=0.1),
    dict(lr=0.1, momentum=0.9),
    dict(lr=0.05, momentum=0.9, weight_decay=0.01),
    dict(lr=0.05, momentum=0.8, weight_decay=0.01, nesterov=True),
]
ADAM_CONFIGS = [
    dict(lr=1e-2),
    dict(lr=1e-2, weight_decay=0.1),
    dict(lr=3e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.01),
]
CASES = [(SGD, "SGD", c) for c in SGD_CONFIGS] + [(Adam, "Adam", c) for c in ADAM_CONFIGS]
CASE_IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in c.items())}" for _, name, c in CASES]


@pytest.mark.parametrize("cls, torch_name, config", CASES, ids=CASE_IDS)
def test_matches_torch_float64(xp, rng, cls, torch_name, config):
    torch = torch_or_skip()
    pairs, grad_seq = make_layers(xp, rng, np.float64)
    torch_pairs = torch_copy(pairs)
    opt = cls(pairs, **config)
    torch_opt = getattr(torch.optim, torch_name)([t for ts in torch_pairs for t in ts], **config)
    for t in range(N_STEPS):
        set_grads(xp, pairs, grad_seq, t)
        set_torch_grads(torch_pairs, grad_seq, t)
        opt.step()
        torch_opt.step()
        for (params, _), tensors in zip(pairs, torch_pairs):
            for p, tensor in zip(params.values(), tensors):
                assert_close(p, tensor, tol=1e-12)


@pytest.mark.parametrize("cls, torch_name, config", CASES, ids=CASE_IDS)
def test_float32_stays_float32_in_place(xp, rng, cls, torch_name, config):
    torch = torch_or_skip()
    pairs, grad_seq = make_layers(xp, rng, np.float32)
    originals = [dict(params) for params, _ in pairs]  # the array objects themselves
    torch_pairs = torch_copy(pairs)
    opt = cls(pairs, **config)
    torch_opt = getattr(torch.optim, torch_name)([t for ts in torch_pairs for t in ts], **config)
    for t in range(N_STEPS):
        set_grads(xp, pairs, grad_seq, t)
        set_torch_grads(torch_pairs, grad_seq, t)
        opt.step()
        torch_opt.step()
    for (params, grads), before, tensors in zip(pairs, originals, torch_pairs):
        for k, tensor in zip(params, tensors):
            assert params[k] is before[k], "parameters must be updated in place"
            assert params[k].dtype == np.float32 and array_module(params[k]) is xp
            assert_close(params[k], tensor, np.float32, tol=1e-5)
    for slots in opt.state.values():
        assert all(buf.dtype == np.float32 for buf in slots.values())


def test_step_leaves_gradients_alone(xp, rng):
    pairs, grad_seq = make_layers(xp, rng, np.float64)
    set_grads(xp, pairs, grad_seq, 0)
    opt = SGD(pairs, lr=0.1, momentum=0.9, weight_decay=0.5, nesterov=True)
    opt.step()
    opt.step()
    for (_, grads), seq in zip(pairs, grad_seq):
        for k in grads:
            np.testing.assert_array_equal(to_numpy(grads[k]), seq[k][0])


def test_zero_grad_fills_in_place(xp, rng):
    pairs, grad_seq = make_layers(xp, rng, np.float32)
    set_grads(xp, pairs, grad_seq, 0)
    before = [dict(grads) for _, grads in pairs]
    Adam(pairs).zero_grad()
    for (_, grads), old in zip(pairs, before):
        for k in grads:
            assert grads[k] is old[k]
            assert not to_numpy(grads[k]).any()


def npz_round_trip(state):
    """Save and load through an .npz file, as a checkpoint does (no pickle)."""
    buffer = io.BytesIO()
    np.savez(buffer, **state)
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


@pytest.mark.parametrize("cls, torch_name, config", [CASES[3], CASES[-1]], ids=[CASE_IDS[3], CASE_IDS[-1]])
def test_state_dict_resumes_exactly(xp, rng, cls, torch_name, config):
    """3 steps, halve lr, checkpoint, new optimizer, load, 2 steps == 5 uninterrupted steps."""
    pairs, grad_seq = make_layers(xp, rng, np.float32)

    def copy_pairs(source):
        return [({k: xp.asarray(to_numpy(p).copy()) for k, p in params.items()}, dict(grads))
                for params, grads in source]

    def run(opt, layers, steps, halve_at=None):
        for t in steps:
            if t == halve_at:
                opt.lr *= 0.5  # as a schedule would; the checkpoint must carry it
            set_grads(xp, layers, grad_seq, t)
            opt.step()

    reference = copy_pairs(pairs)
    run(cls(reference, **config), reference, range(N_STEPS), halve_at=3)

    first = copy_pairs(pairs)
    opt = cls(first, **config)
    run(opt, first, range(3), halve_at=None)
    opt.lr *= 0.5
    saved = npz_round_trip(opt.state_dict())
    resumed = copy_pairs(first)  # the weights, as a checkpoint would restore them
    opt = cls(resumed, **config)
    opt.load_state_dict(saved)
    assert opt.step_count == 3 and opt.lr == 0.5 * config["lr"]
    run(opt, resumed, range(3, N_STEPS))

    for (params, _), (ref, _) in zip(resumed, reference):
        for k in params:
            assert params[k].dtype == np.float32
            np.testing.assert_array_equal(to_numpy(params[k]), to_numpy(ref[k]))

    # the test can see a lost lr or buffer: without the checkpoint the result differs
    fresh = copy_pairs(first)
    run(cls(fresh, **config), fresh, range(3, N_STEPS), halve_at=3)
    assert not np.array_equal(to_numpy(fresh[0][0]["w"]), to_numpy(reference[0][0]["w"]))


def test_state_dict_is_a_host_snapshot(xp, rng):
    pairs, grad_seq = make_layers(xp, rng, np.float64)
    opt = Adam(pairs, lr=0.1)
    set_grads(xp, pairs, grad_seq, 0)
    opt.step()
    state = opt.state_dict()
    copy = {k: v.copy() for k, v in state.items()}
    set_grads(xp, pairs, grad_seq, 1)
    opt.step()
    for k in state:
        assert type(state[k]) is np.ndarray
        np.testing.assert_array_equal(state[k], copy[k])
    assert int(state["step"]) == 1 and set(state) == {
        "step", "lr", "0.w.exp_avg", "0.w.exp_avg_sq", "0.b.exp_avg", "0.b.exp_avg_sq",
        "1.gamma.exp_avg", "1.gamma.exp_avg_sq",
    }


def test_load_state_dict_rejects_a_mismatch(xp, rng):
    pairs, _ = make_layers(xp, rng, np.float64)
    sgd_state = SGD(pairs, lr=0.1, momentum=0.9).state_dict()
    with pytest.raises(KeyError, match="missing"):
        Adam(pairs).load_state_dict(sgd_state)
    bad = dict(sgd_state, **{"0.b.momentum_buffer": np.zeros(3)})
    with pytest.raises(ValueError, match="shape"):
        SGD(pairs, lr=0.1, momentum=0.9).load_state_dict(bad)


def test_invalid_arguments(xp, rng):
    pairs, grad_seq = make_layers(xp, rng, np.float64)
    with pytest.raises(ValueError, match="empty"):
        SGD([], lr=0.1)
    with pytest.raises(TypeError, match="pair"):
        SGD([pairs[0][0]], lr=0.1)
    with pytest.raises(ValueError, match="nesterov"):
        SGD(pairs, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="betas"):
        Adam(pairs, betas=(0.9, 1.0))
    set_grads(xp, pairs, grad_seq, 0)
    pairs[1][1]["gamma"] = xp.zeros((4,))  # wrong shape, in the last layer
    opt = SGD(pairs, lr=0.1)
    before = to_numpy(pairs[0][0]["w"]).copy()
    with pytest.raises(ValueError, match="shape"):
        opt.step()
    assert opt.step_count == 0  # a failed step changes nothing, not even the first layer
    np.testing.assert_array_equal(to_numpy(pairs[0][0]["w"]), before)
    pairs[1][1]["gamma"] = xp.zeros((5,))
    pairs[0][1]["w"] = xp.zeros((3, 4), dtype=np.float32)  # wrong dtype
    with pytest.raises(ValueError, match="dtype"):
        SGD(pairs, lr=0.1).step()


# ---------------------------------------------------------------------------
# Schedules
# ---------------------------------------------------------------------------


def one_param_optimizer(lr):
    return SGD([({"w": np.zeros(1)}, {"w": np.zeros(1)})], lr=lr)


def torch_lrs(make_scheduler, lr, steps):
    """lr before step 0, 1, ..., steps of a torch scheduler."""
    torch = torch_or_skip()
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    scheduler = make_scheduler(torch.optim.lr_scheduler, opt)
    values = [opt.param_groups[0]["lr"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SequentialLR's internal step(0) warns
        for _ in range(steps):
            opt.step()
            scheduler.step()
            values.append(opt.param_groups[0]["lr"])
    return values


def our_lrs(schedule, steps):
    values = [schedule.optimizer.lr]
    for _ in range(steps):
        schedule.optimizer.step()
        values.append(schedule.step())
    return values


def test_step_schedule_matches_torch():
    ours = our_lrs(StepSchedule(one_param_optimizer(0.4), step_size=3, gamma=0.5), 12)
    theirs = torch_lrs(lambda s, o: s.StepLR(o, step_size=3, gamma=0.5), 0.4, 12)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    assert ours[2] == 0.4 and ours[3] == pytest.approx(0.2)


@pytest.mark.parametrize("min_lr", [0.0, 0.01])
def test_cosine_schedule_matches_torch(min_lr):
    ours = our_lrs(CosineSchedule(one_param_optimizer(0.1), total_steps=10, min_lr=min_lr), 10)
    theirs = torch_lrs(lambda s, o: s.CosineAnnealingLR(o, T_max=10, eta_min=min_lr), 0.1, 10)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)
    assert ours[0] == 0.1 and ours[5] == pytest.approx((0.1 + min_lr) / 2) and ours[-1] == pytest.approx(min_lr)


def test_cosine_schedule_with_warmup_matches_torch():
    W, T, lr, min_lr = 3, 10, 0.1, 0.001

    def torch_scheduler(s, o):
        warm = s.LinearLR(o, start_factor=1 / (W + 1), end_factor=1.0, total_iters=W)
        cosine = s.CosineAnnealingLR(o, T_max=T - W, eta_min=min_lr)
        return s.SequentialLR(o, [warm, cosine], milestones=[W])

    ours = our_lrs(CosineSchedule(one_param_optimizer(lr), T, min_lr=min_lr, warmup_steps=W), T)
    np.testing.assert_allclose(ours, torch_lrs(torch_scheduler, lr, T), rtol=1e-12)
    np.testing.assert_allclose(ours[:W + 1], [lr / 4, lr / 2, 3 * lr / 4, lr])


def test_cosine_schedule_stays_at_min_after_total_steps():
    schedule = CosineSchedule(one_param_optimizer(0.1), total_steps=4, min_lr=0.01)
    assert our_lrs(schedule, 8)[4:] == [0.01] * 5


def test_schedule_state_dict_round_trip():
    schedule = CosineSchedule(one_param_optimizer(0.1), total_steps=10, warmup_steps=2)
    straight = our_lrs(schedule, 7)
    first = CosineSchedule(one_param_optimizer(0.1), total_steps=10, warmup_steps=2)
    our_lrs(first, 4)
    saved = npz_round_trip(first.state_dict())
    second = CosineSchedule(one_param_optimizer(0.1), total_steps=10, warmup_steps=2)
    second.load_state_dict(saved)
    assert second.optimizer.lr == straight[4]
    assert our_lrs(second, 3) == straight[4:]


def test_sgd_with_schedule_matches_torch(rng):
    torch = torch_or_skip()
    w0, grads = rng.standard_normal(6), rng.standard_normal((6, 6))
    params, grad_dict = {"w": w0.copy()}, {"w": np.zeros(6)}
    opt = SGD([(params, grad_dict)], lr=0.2, momentum=0.9)
    schedule = StepSchedule(opt, step_size=2, gamma=0.3)
    tw = torch.tensor(w0, requires_grad=True)
    topt = torch.optim.SGD([tw], lr=0.2, momentum=0.9)
    tschedule = torch.optim.lr_scheduler.StepLR(topt, step_size=2, gamma=0.3)
    for t in range(6):
        grad_dict["w"] = grads[t]
        tw.grad = torch.tensor(grads[t])
        opt.step()
        schedule.step()
        topt.step()
        tschedule.step()
    assert_close(params["w"], tw, tol=1e-12)
