"""Tests of nstlab.transfer: content reconstruction, the patch dataset, freezing, heads and fine-tuning."""

import pytest
import torch
from torch import nn

from nstlab import transfer
from nstlab.losses import content_loss
from nstlab.vgg import VGGFeatures
from nstlab.weights import untrained_backbone


@pytest.fixture(scope="module")
def backbone():
    return untrained_backbone("vgg16", seed=0)


def test_reconstruction_lowers_the_content_loss_and_leaves_the_photo_untouched(backbone):
    extractor = VGGFeatures(["relu1_1"], backbone=backbone)
    photo = torch.rand(1, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    before = photo.clone()
    noise = torch.rand(photo.shape, generator=torch.Generator().manual_seed(3))
    x = transfer.reconstruct(extractor, photo, "relu1_1", steps=30, seed=3)
    with torch.no_grad():
        P = extractor(photo)["relu1_1"]
        start, end = content_loss(extractor(noise)["relu1_1"], P), content_loss(extractor(x)["relu1_1"], P)
    assert end < 0.5 * start
    assert torch.equal(photo, before) and x.min() >= 0 and x.max() <= 1 and not x.requires_grad
    with pytest.raises(ValueError, match=r"\(3, 24, 24\)"):
        transfer.reconstruct(extractor, photo[0], "relu1_1")


def test_patch_dataset_has_balanced_classes_and_test_pixels_never_seen_in_training():
    d = transfer.patch_dataset(classes=("brick", "mosaic", "swirl"), n_train=5, n_test=3, seed=1)
    assert d.x_train.shape == (15, 3, transfer.PATCH, transfer.PATCH) and d.x_test.shape[0] == 9
    assert torch.bincount(d.y_train).tolist() == [5, 5, 5] and torch.bincount(d.y_test).tolist() == [3, 3, 3]
    assert d.x_train.dtype == torch.float32 and 0 <= d.x_train.min() and d.x_train.max() <= 1
    # Every test patch differs from every training patch of its class (they come from disjoint rows).
    for k in range(3):
        train, test = d.x_train[d.y_train == k], d.x_test[d.y_test == k]
        assert torch.cdist(test.flatten(1), train.flatten(1)).min() > 0
    again = transfer.patch_dataset(classes=("brick", "mosaic", "swirl"), n_train=5, n_test=3, seed=1)
    assert torch.equal(d.x_train, again.x_train)
    with pytest.raises(ValueError, match="n_train"):
        transfer.patch_dataset(n_train=0)


def test_global_average_pool_is_the_mean_over_positions():
    f = torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(transfer.global_average_pool(f), nn.AdaptiveAvgPool2d(1)(f).flatten(1))
    with pytest.raises(ValueError, match=r"\(3, 4\)"):
        transfer.global_average_pool(torch.zeros(3, 4))


def test_freeze_returns_a_frozen_copy_and_count_trainable_counts_what_gets_gradients():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 1))
    frozen = transfer.freeze(net)
    assert transfer.count_trainable(net) == (4 * 3 * 9 + 4) + (2 * 4 + 2)
    assert transfer.count_trainable(frozen) == 0
    assert all(p.requires_grad for p in net.parameters())  # the original still trains
    for a, b in zip(net.parameters(), frozen.parameters(), strict=True):
        assert torch.equal(a, b) and a.data_ptr() != b.data_ptr()


def test_train_head_separates_separable_features_and_lowers_the_loss():
    gen = torch.Generator().manual_seed(4)
    centres = torch.randn(3, 8, generator=gen) * 3
    y = torch.arange(3).repeat_interleave(20)
    g = centres[y] + torch.randn(60, 8, generator=gen)
    untrained = transfer.train_head(g, y, n_classes=3, epochs=0, seed=1)
    head = transfer.train_head(g, y, n_classes=3, epochs=200, seed=1)
    loss = nn.functional.cross_entropy
    assert loss(head(g), y) < 0.5 * loss(untrained(g), y)
    assert (head(g).argmax(1) == y).float().mean() > 0.95
    with pytest.raises(ValueError, match=r"\(60, 8\)"):
        transfer.train_head(g, y[:10], n_classes=3)


def _small_block_and_head(seed: int) -> tuple[nn.Module, nn.Linear]:
    with torch.random.fork_rng(devices=[]):  # seeded initial weights; the global random state is left alone
        torch.manual_seed(seed)
        return nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.ReLU()), nn.Linear(5, 2)


def test_finetune_moves_the_block_by_the_smaller_learning_rate_and_leaves_its_arguments_untouched():
    """Adam's first step moves every parameter by its group's learning rate (g / |g| = ±1): eta for the head,
    backbone_factor * eta for the block, whose copy is trained even when the block given was frozen."""
    block, head = _small_block_and_head(0)
    block = transfer.freeze(block)
    gen = torch.Generator().manual_seed(1)
    h, y = torch.rand(8, 3, 4, 4, generator=gen), torch.tensor([0, 1] * 4)
    before = [p.clone() for p in (*block.parameters(), *head.parameters())]
    new_block, new_head, losses = transfer.finetune(block, head, h, y, epochs=1, eta=0.01, backbone_factor=0.1,
                                                    batch_size=8)
    for a, b in zip(before, (*block.parameters(), *head.parameters()), strict=True):
        assert torch.equal(a, b)
    moved_block = max(float((a - b).detach().abs().max()) for a, b in zip(new_block.parameters(), block.parameters(), strict=True))
    moved_head = max(float((a - b).detach().abs().max()) for a, b in zip(new_head.parameters(), head.parameters(), strict=True))
    assert moved_block == pytest.approx(1e-3, rel=1e-3) and moved_head == pytest.approx(1e-2, rel=1e-3)
    assert len(losses) == 1 and transfer.count_trainable(new_block) > 0
    with pytest.raises(ValueError, match=r"\(8, 48\)"):
        transfer.finetune(block, head, h.flatten(1), y)


def test_finetune_lowers_the_loss_and_reports_the_mean_loss_of_each_epoch():
    block, head = _small_block_and_head(2)
    gen = torch.Generator().manual_seed(3)
    y = torch.arange(2).repeat_interleave(12)
    h = torch.rand(24, 3, 4, 4, generator=gen) + 2.0 * y.view(-1, 1, 1, 1) * torch.tensor([1.0, 0, 0]).view(1, 3, 1, 1)
    start = nn.functional.cross_entropy(head(transfer.global_average_pool(block(h))), y).item()
    new_block, new_head, losses = transfer.finetune(block, head, h, y, epochs=30, eta=0.05, batch_size=5, seed=4)
    end = nn.functional.cross_entropy(new_head(transfer.global_average_pool(new_block(h))), y).item()
    assert len(losses) == 30 and losses[-1] < 0.5 * losses[0] and end < 0.5 * start
    again = transfer.finetune(block, head, h, y, epochs=30, eta=0.05, batch_size=5, seed=4)[2]
    assert again == losses


def test_split_backbone_cuts_at_the_named_layer_and_copies(backbone):
    body, last = transfer.split_backbone(backbone)
    assert len(body) + len(last) == len(backbone.features)
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        torch.testing.assert_close(last(body(x)), backbone.features(x))
    assert last[0] is not backbone.features[len(body)]
    with pytest.raises(ValueError, match="conv6_1"):
        transfer.split_backbone(backbone, at="conv6_1")


def test_transfer_trains_only_the_head_first_then_the_last_block_and_keeps_the_backbone(backbone):
    d = transfer.patch_dataset(classes=("brick", "mosaic"), n_train=8, n_test=4)
    weights_before = [p.clone() for p in backbone.features.parameters()]
    r = transfer.transfer(backbone, d, head_epochs=50, finetune_epochs=2)
    assert r.trainable_frozen == 512 * 2 + 2
    last_block = sum(p.numel() for p in transfer.split_backbone(backbone)[1].parameters())
    assert r.trainable_finetuned == last_block + r.trainable_frozen
    assert 0 <= r.frozen_accuracy <= 1 and 0 <= r.finetuned_accuracy <= 1 and len(r.finetune_loss) == 2
    assert r.pretrained is False and r.note.startswith("UNTRAINED")
    for a, b in zip(weights_before, backbone.features.parameters(), strict=True):
        assert torch.equal(a, b)
