"""Tests of nstlab.cnn: each primitive against torch's own implementation, and the digit CNN's accuracy."""

import pytest
import torch
import torch.nn.functional as F

from nstlab import cnn
from nstlab.data import digits


def _random_case(gen: torch.Generator):
    """A random convolution problem in float64: shapes, stride and padding drawn from ``gen``."""
    N, C, D = (int(v) for v in torch.randint(1, 4, (3,), generator=gen))
    kH, kW = (int(v) for v in torch.randint(1, 5, (2,), generator=gen))
    stride = int(torch.randint(1, 4, (1,), generator=gen))
    padding = int(torch.randint(0, 3, (1,), generator=gen))
    H = int(torch.randint(max(kH - 2 * padding, 1), 12, (1,), generator=gen))
    W = int(torch.randint(max(kW - 2 * padding, 1), 12, (1,), generator=gen))
    x = torch.randn(N, C, H, W, generator=gen, dtype=torch.float64)
    w = torch.randn(D, C, kH, kW, generator=gen, dtype=torch.float64)
    b = torch.randn(D, generator=gen, dtype=torch.float64)
    return x, w, b, stride, padding


@pytest.mark.parametrize("conv", [cnn.conv2d, cnn.conv2d_loops], ids=["vectorised", "loops"])
def test_conv2d_matches_torch_for_random_shapes_strides_and_paddings(conv):
    """Both convolutions equal F.conv2d to 1e-10 in float64, with and without bias."""
    gen = torch.Generator().manual_seed(0)
    for _ in range(25 if conv is cnn.conv2d else 8):
        x, w, b, stride, padding = _random_case(gen)
        expected = F.conv2d(x, w, b, stride=stride, padding=padding)
        torch.testing.assert_close(conv(x, w, b, stride=stride, padding=padding), expected, rtol=0, atol=1e-10)
        torch.testing.assert_close(conv(x, w, stride=stride, padding=padding),
                                   F.conv2d(x, w, stride=stride, padding=padding), rtol=0, atol=1e-10)


def test_conv2d_gradients_match_torch():
    """Autograd through the vectorised convolution gives F.conv2d's gradients for x, w and b."""
    gen = torch.Generator().manual_seed(1)
    x, w, b, stride, padding = _random_case(gen)
    ours = [t.clone().requires_grad_() for t in (x, w, b)]
    theirs = [t.clone().requires_grad_() for t in (x, w, b)]
    cnn.conv2d(*ours, stride=stride, padding=padding).sin().sum().backward()
    F.conv2d(*theirs, stride=stride, padding=padding).sin().sum().backward()
    for a, e in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a.grad, e.grad, rtol=0, atol=1e-10)


def test_output_size_is_the_shape_torch_produces():
    """output_size agrees with the height and width of F.conv2d's output for many settings."""
    for n in (5, 8, 28):
        for k in (1, 3, 5):
            for s in (1, 2, 3):
                for p in (0, 1, 2):
                    out = F.conv2d(torch.zeros(1, 1, n, n), torch.zeros(1, 1, k, k), stride=s, padding=p)
                    assert cnn.output_size(n, kernel_size=k, stride=s, padding=p) == out.shape[-1]


def test_output_size_rejects_windows_that_do_not_fit():
    with pytest.raises(ValueError, match="does not fit"):
        cnn.output_size(2, kernel_size=5)
    with pytest.raises(ValueError, match="stride"):
        cnn.output_size(8, kernel_size=3, stride=0)


def test_conv_rejects_bad_ranks_and_mismatched_channels_with_the_shape_it_got():
    with pytest.raises(ValueError, match=r"\(3, 8, 8\)"):
        cnn.conv2d(torch.zeros(3, 8, 8), torch.zeros(1, 3, 3, 3))
    with pytest.raises(ValueError, match="C=3"):
        cnn.conv2d_loops(torch.zeros(1, 3, 8, 8), torch.zeros(1, 2, 3, 3))
    with pytest.raises(ValueError, match="b should"):
        cnn.conv2d(torch.zeros(1, 3, 8, 8), torch.zeros(2, 3, 3, 3), torch.zeros(3))
    with pytest.raises(TypeError, match="ints"):
        cnn.conv2d(torch.zeros(1, 3, 8, 8), torch.zeros(2, 3, 3, 3), stride=(1, 1))
    with pytest.raises(ValueError, match=r"\(8, 8\)"):
        cnn.max_pool2d(torch.zeros(8, 8))


def test_conv_leaves_its_inputs_untouched():
    gen = torch.Generator().manual_seed(2)
    x, w, b, stride, padding = _random_case(gen)
    copies = [t.clone() for t in (x, w, b)]
    cnn.conv2d(x, w, b, stride=stride, padding=padding)
    cnn.conv2d_loops(x, w, b, stride=stride, padding=padding)
    for t, c in zip((x, w, b), copies, strict=True):
        assert torch.equal(t, c)


@pytest.mark.parametrize(("k", "s"), [(2, None), (3, 1), (3, 2), (2, 3)])
def test_max_pool_matches_torch(k, s):
    x = torch.randn(2, 3, 9, 7, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    torch.testing.assert_close(cnn.max_pool2d(x, kernel_size=k, stride=s), F.max_pool2d(x, k, s), rtol=0, atol=0)


def test_max_pool_gradient_routes_to_the_argmax():
    """Each window's upstream gradient lands on its largest entry only; every other entry gets zero."""
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(2, 3, 6, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(2, 3, 3, 3, generator=gen, dtype=torch.float64)
    (cnn.max_pool2d(x) * upstream).sum().backward()
    windows = x.detach().unfold(2, 2, 2).unfold(3, 2, 2).reshape(2, 3, 3, 3, 4)  # (N, C, 3, 3, 4)
    expected = F.one_hot(windows.argmax(-1), 4).double() * upstream[..., None]  # gradient per window entry
    expected = expected.reshape(2, 3, 3, 3, 2, 2).permute(0, 1, 2, 4, 3, 5).reshape(2, 3, 6, 6)
    torch.testing.assert_close(x.grad, expected, rtol=0, atol=0)


def test_relu_is_max_of_zero_and_x_and_its_sparsity_counts_zeros():
    x = torch.randn(1000, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(cnn.relu(x), torch.clamp(x, min=0))
    assert cnn.sparsity(cnn.relu(x)) == pytest.approx(float((x <= 0).float().mean()))


def test_sigmoid_gradients_vanish_towards_the_input_and_relu_gradients_do_not():
    sig = cnn.gradient_norms_per_layer("sigmoid", depth=15)
    rel = cnn.gradient_norms_per_layer("relu", depth=15)
    assert sig.shape == rel.shape == (15,)
    assert sig[0] < 1e-4 * sig[-1]
    assert rel[0] > 0.1 * rel[-1]
    with pytest.raises(ValueError, match="softplus"):
        cnn.gradient_norms_per_layer("softplus")


def test_small_cnn_names_its_layers_and_keeps_volumes_until_pooling():
    maps = cnn.SmallCNN().feature_maps(torch.zeros(3, 1, 8, 8))
    assert list(maps) == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1", "conv2_1", "relu2_1", "pool2",
                          "fc1", "relu_fc1", "fc2"]
    assert maps["conv1_2"].shape == (3, 32, 8, 8) and maps["pool1"].shape == (3, 32, 4, 4)
    assert maps["fc2"].shape == (3, 10)
    with pytest.raises(ValueError, match=r"\(3, 1, 28, 28\)"):
        cnn.SmallCNN()(torch.zeros(3, 1, 28, 28))


def test_digit_cnn_reaches_97_percent_in_the_fast_profile(one_thread):
    """The fast profile's settings (train_cnn's defaults, 10 epochs) reach >= 97 % on held-out digits.

    Its training time (3.5 s here, the issue asks under 60 s) is measured in docs/benchmarks.md.
    """
    result = cnn.train_cnn(digits(seed=0), show_progress=False)
    assert result.test_accuracy[-1] >= 0.97, result.test_accuracy
    assert len(result.loss) == 10 and result.loss[-1] < result.loss[0]


def test_training_is_reproducible_and_leaves_the_global_rng_alone():
    data = digits(seed=0, limit=100)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = cnn.train_cnn(data, epochs=1, show_progress=False)
    after = torch.rand(1)
    b = cnn.train_cnn(data, epochs=1, show_progress=False)
    assert torch.equal(before, after)
    assert a.loss == b.loss
    with pytest.raises(ValueError, match="epochs"):
        cnn.train_cnn(data, epochs=0)


class _Probe(torch.nn.Module):
    """A linear classifier of 8 × 8 digits that records, at each forward, its mode, its input and its scores."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(64, 10, dtype=torch.float64)
        self.modes, self.inputs, self.scores = [], [], []

    def forward(self, x):
        self.modes.append(self.training)
        self.inputs.append(x.detach().clone())
        out = self.linear(x.flatten(1))
        self.scores.append(out.detach().clone())
        return out


def _digits64(n=70):
    d = digits(seed=0, limit=100)
    return d.x_train[:n].double(), d.y_train[:n]


def test_train_epoch_takes_one_sgd_step_per_shuffled_batch_with_that_batchs_gradient_only():
    """With plain SGD, train_epoch's parameters equal hand-made steps w -= eta * grad(mean loss of the batch),
    batches cut from torch.randperm(N, generator) (the gradients of earlier batches do not accumulate)."""
    x, y = _digits64()
    torch.manual_seed(0)
    model = _Probe()
    w, b = (p.detach().clone() for p in model.linear.parameters())
    loss = cnn.train_epoch(model, torch.optim.SGD(model.parameters(), lr=0.5), x, y, batch_size=16,
                           generator=torch.Generator().manual_seed(3))
    losses, sizes = [], []
    for batch in torch.randperm(len(y), generator=torch.Generator().manual_seed(3)).split(16):
        wr, br = w.clone().requires_grad_(), b.clone().requires_grad_()
        batch_loss = F.cross_entropy(x[batch].flatten(1) @ wr.T + br, y[batch])
        gw, gb = torch.autograd.grad(batch_loss, [wr, br])
        w, b = w - 0.5 * gw, b - 0.5 * gb
        losses.append(batch_loss.item())
        sizes.append(len(batch))
    torch.testing.assert_close(model.linear.weight.detach(), w, rtol=0, atol=1e-12)
    torch.testing.assert_close(model.linear.bias.detach(), b, rtol=0, atol=1e-12)
    assert sizes == [16, 16, 16, 16, 6]
    assert loss == pytest.approx(sum(n * v for n, v in zip(sizes, losses, strict=True)) / len(y), rel=1e-12)


def test_train_epoch_runs_in_training_mode_and_sees_every_image_once():
    """Even for a model handed over in eval mode, every forward runs in training mode, and the batches together
    hold each training image exactly once."""
    x, y = _digits64()
    model = _Probe().eval()
    cnn.train_epoch(model, torch.optim.SGD(model.parameters(), lr=0.1), x, y, batch_size=32)
    assert model.modes == [True, True, True] and model.training
    fingerprint = torch.arange(64, dtype=torch.float64)  # one number per image, to compare the sets of images
    seen = (torch.cat(model.inputs).flatten(1) @ fingerprint).sort().values
    torch.testing.assert_close(seen, (x.flatten(1) @ fingerprint).sort().values, rtol=0, atol=0)


def test_train_epoch_is_reproducible_with_a_generator_and_rejects_bad_inputs():
    x, y = _digits64()
    losses = []
    for _ in range(2):
        torch.manual_seed(1)
        model = cnn.SmallCNN().double()
        losses.append(cnn.train_epoch(model, torch.optim.Adam(model.parameters()), x, y,
                                      generator=torch.Generator().manual_seed(5)))
    assert losses[0] == losses[1]
    with pytest.raises(ValueError, match=r"y of shape \(69,\)"):
        cnn.train_epoch(model, torch.optim.Adam(model.parameters()), x, y[:69])
    with pytest.raises(ValueError, match="batch_size"):
        cnn.train_epoch(model, torch.optim.Adam(model.parameters()), x, y, batch_size=0)
