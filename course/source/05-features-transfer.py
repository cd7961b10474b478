# %% [markdown]
# # 05 · What a trained CNN sees, and how to reuse it
#
# Notebook 04 trained a CNN with 40,000 weights on 1,438 tiny digits. The networks behind style transfer are
# of another size: **VGG19** (Simonyan & Zisserman, 2015) has 16 convolutional layers and was trained on
# 1.2 million ImageNet photos in 1,000 classes. In this notebook we look inside it: what its layers respond
# to, from the first to the last block; how much of a photo a layer's response still holds (this is the
# *content representation* that style transfer keeps); and how the features it learned for ImageNet can be
# reused for a new task with very little data (*transfer learning*).
#
# **In this notebook you will learn**
#
# 1. how VGG is built, and the names of its layers (`conv1_1` … `conv5_4`, `relu…`, `pool1` … `pool5`);
# 2. what the feature maps of a photo look like from `relu1_1` to `relu5_1`, and why deep layers respond to
#    larger and more complex patterns;
# 3. what a layer's response keeps of a photo, by reconstructing the photo from it, for a shallow and a deep
#    layer;
# 4. how to reuse a pretrained backbone: freeze it, train a new head, then fine-tune its last block, and how
#    to compare the two fairly.
#
# **Runtime** (fast profile): up to 45 s on a 2-core CPU; GPU: not measured yet.
#
# **Pretrained weights.** VGG's ImageNet weights (548 MB) come through `nstlab.weights`. If they cannot be
# found or downloaded, this notebook still runs, on an *untrained* VGG19 with random weights, and every
# figure says so in red. The mechanics (shapes, names, the training code) are the same; what the pictures
# show about *learned* features is then not meaningful. `nstlab weights status` tells you how to get them.

# %%
import matplotlib.pyplot as plt
import torch
from torch import nn

from nstlab import checks, data, profiles, transfer, vgg, weights
from nstlab.losses import content_loss
from nstlab.widgets.feature_browser import feature_browser

torch.set_num_threads(1)  # small pieces of work: one CPU thread is faster on a busy machine (see notebook 04)
profile = profiles.get_profile()
print(profiles.describe(profile))
backbone = weights.load_backbone("vgg19", fallback="untrained", seed=profile.seed)
print(backbone.note)


def label(fig, title):
    """Title a figure, and say on it, in red, when the network is the untrained stand-in."""
    if backbone.pretrained:
        fig.suptitle(title)
    else:
        fig.suptitle(f"{title}\nUNTRAINED VGG19 (random weights): pretrained weights unavailable, "
                     "so this does not show what a trained network learned", color="#b00", fontsize=9)

# %% [markdown]
# ## 1 · VGG, layer by layer
#
# VGG is the CNN of notebook 04 made deep and uniform. Every convolution has 3 × 3 kernels, stride 1 and
# padding 1, so it keeps width and height ($\lfloor (n + 2 - 3)/1 \rfloor + 1 = n$); each is followed by a
# ReLU. Convolutions come in five **blocks**; each block ends with a 2 × 2 max pooling that halves width and
# height, and the next block doubles the depth (64, 128, 256, 512, 512 channels). After `pool5` three fully
# connected layers produce the 1,000 ImageNet scores; feature extraction does not use them.
#
# Layers are named by block and position: `conv3_2` is the second convolution of block 3, `relu3_2` its
# rectified output and `pool3` the pooling that ends block 3. (Gatys et al. write `conv3_2` for what is
# `relu3_2` here: in their Caffe code the ReLU overwrites the convolution's output in place.) We never use
# positional indices such as `features[17]`; they differ between VGG16 and VGG19 and are unreadable.
#
# The *receptive field* of a neuron is the patch of the input it depends on. A 3 × 3 convolution adds 2
# pixels (times the current spacing between neurons) to it, and each pooling doubles the spacing. The table
# lists every layer's volume for a 224 × 224 photo and its receptive field.

# %%
names = vgg.LAYER_NAMES["vgg19"]
widths = [w for block in vgg.BLOCK_WIDTHS["vgg19"] for w in block]
size, channels, field, spacing, conv_index = 224, 3, 1, 1, 0
print(f"{'layer':8s} {'volume (C × H × W)':20s} receptive field")
for name in names:
    if name.startswith("conv"):
        channels, field = widths[conv_index], field + 2 * spacing
        conv_index += 1
    elif name.startswith("pool"):
        size, field, spacing = size // 2, field + spacing, spacing * 2
    if not name.startswith("relu"):
        print(f"{name:8s} {f'{channels} × {size} × {size}':20s} {field} × {field}")

# %% [markdown]
# ## 2 · Feature maps from `relu1_1` to `relu5_1`
#
# `vgg.VGGFeatures` runs a photo through VGG once and returns the layers we name, as a dict from name to a
# tensor of shape $(N, C, H', W')$. It normalises the photo itself (ImageNet's mean and standard deviation),
# and its weights are frozen. Below, for the first layer of each block, the six channels that respond most
# strongly to the photo (bright = strong).
#
# In a trained VGG the first layers respond to edges of one orientation, to colour contrasts and to fine
# textures: their receptive fields are a few pixels wide, too small for anything more. Deeper layers combine
# those into corners, repeated textures, eyes and wheels, and by `relu5_1` (receptive field 156 pixels)
# a channel fires on whole object parts, at positions that are only 16 pixels apart. The maps get coarser and
# the patterns more specific: fewer neurons fire, but what they fire on means more.

# %%
photo = data.builtin_image("chelsea", size=profile.widget_size)
block_layers = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
extractor = vgg.VGGFeatures(block_layers, backbone=backbone)
with torch.no_grad():
    features = extractor(photo)
fig, axes = plt.subplots(len(block_layers), 7, figsize=(12, 9))
for row, name in zip(axes, block_layers, strict=True):
    f = features[name][0]  # (C, H', W')
    row[0].imshow(photo[0].permute(1, 2, 0))
    row[0].set_title(f"{name}\n{f.shape[0]} × {f.shape[1]} × {f.shape[2]}", fontsize=8)
    for ax, c in zip(row[1:], f.mean(dim=(1, 2)).argsort(descending=True)[:6].tolist(), strict=True):
        ax.imshow(f[c], cmap="magma")
        ax.set_title(f"channel {c}", fontsize=7)
    for ax in row:
        ax.axis("off")
label(fig, "the most active channels at the first layer of each block")
plt.show()
plt.close(fig)
for name in block_layers:
    print(f"{name}: {float((features[name] == 0).float().mean()):.0%} of the neurons are silent")

# %% [markdown]
# ## 3 · Content representations: what a layer keeps
#
# How much of the photo $\vec p$ does layer $l$'s response $P^l$ still contain? Gatys et al. answer by
# searching for an image $\vec x$, starting from random noise, whose response $F^l$ at that layer is the same,
# minimising the **content loss**
#
# $$L_\text{content}(\vec p, \vec x, l) = \tfrac12 \sum_{i,j} \left(F^l_{ij} - P^l_{ij}\right)^2$$
#
# by gradient descent on the *pixels* (the network stays fixed; backpropagation carries the gradient all the
# way to the input image). Whatever the reconstruction gets right, the layer kept; whatever it gets wrong, the
# layer threw away. `transfer.reconstruct` does this with Adam, keeping pixels in [0, 1].
#
# With trained weights, the reconstruction from a shallow layer (`relu1_1`) is almost the photo, pixel for
# pixel: 64 channels at full resolution are more numbers than the photo has. From a deep layer (`relu4_1`)
# the arrangement of the scene survives (where the cat's head and the edges are), but colours and fine
# texture drift: the layer encodes *what is where*, not the exact pixels. That is why style transfer takes
# its content from a deep layer: it fixes the layout and leaves the rendering free for the style.

# %%
# Half the widget size keeps the deep search quick; at least 48 pixels wide, so that the photo's short side
# (two thirds of the long one) stays at VGG's minimum of 32 pixels.
small = data.builtin_image("chelsea", size=max(profile.widget_size // 2, 48))
steps = profile.style_steps // 2
recon_layers = ["relu1_1", "relu4_1"]
recon_extractor = vgg.VGGFeatures(recon_layers, backbone=backbone)
reconstructions = {name: transfer.reconstruct(recon_extractor, small, name, steps=steps, seed=profile.seed)
                   for name in recon_layers}
fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
axes[0].imshow(small[0].permute(1, 2, 0))
axes[0].set_title("photo", fontsize=9)
for ax, name in zip(axes[1:], recon_layers, strict=True):
    error = float((reconstructions[name] - small).abs().mean())
    ax.imshow(reconstructions[name][0].permute(1, 2, 0))
    ax.set_title(f"from {name} ({steps} steps)\nmean pixel error {error:.3f}", fontsize=9)
for ax in axes:
    ax.axis("off")
label(fig, "images reconstructed from noise to match one layer's features")
plt.show()
plt.close(fig)
noise = torch.rand(small.shape, generator=torch.Generator().manual_seed(profile.seed))  # the starting point
with torch.no_grad():
    P = recon_extractor(small)
    for name in recon_layers:
        start = content_loss(recon_extractor(noise)[name], P[name])
        end = content_loss(recon_extractor(reconstructions[name])[name], P[name])
        print(f"{name}: content loss {float(start):.4g} for the noise, {float(end):.4g} for the reconstruction")

# %% [markdown]
# Both searches drove their content loss down by orders of magnitude: the reconstruction *does* have
# (nearly) the photo's response at that layer. So where a reconstruction looks unlike the photo, the
# difference is something the layer does not record.
#
# ## 4 · Transfer learning
#
# Training VGG from scratch takes a million labelled photos and days of GPU time. But its early and middle
# layers learned edges, textures and parts that are useful far beyond ImageNet's 1,000 classes. **Transfer
# learning** reuses them:
#
# 1. keep the convolutional **backbone** and throw away ImageNet's classifier;
# 2. put a new **head** on top for the new classes: **global average pooling**, which turns the last volume
#    $(C, H, W)$ into one number per channel, $g_c = \frac{1}{HW} \sum_{i,j} f_{c,i,j}$, followed by one fully
#    connected layer $s = W g + b$ from the $C = 512$ channels to the $K$ class scores;
# 3. **freeze** the backbone (its weights get no gradients) and train only the head: a handful of
#    parameters, so a small dataset suffices and nothing learned on ImageNet is destroyed;
# 4. optionally **fine-tune**: unfreeze the last block (`conv5_1` … `pool5`), whose features are the most
#    specific to ImageNet, and train it together with the head, with a small learning rate, so that it adapts
#    to the new task without forgetting the rest.
#
# **Our small dataset**, made offline by `transfer.patch_dataset`: 32 × 32 patches cut at random from five
# built-in textures; the class of a patch is the texture it came from. Training patches come from the top
# three quarters of each image and test patches from the bottom quarter, so the test pixels were never seen
# in training: a fair held-out test. (32 pixels is the smallest patch that survives VGG's five poolings.)

# %%
n_train = profile.image_size // 8  # patches per class: 32 in the fast profile
patches = transfer.patch_dataset(n_train=n_train, n_test=n_train // 2, seed=profile.seed)
print(f"{len(patches.y_train)} training and {len(patches.y_test)} test patches of {len(patches.classes)} classes")
fig, axes = plt.subplots(len(patches.classes), 6, figsize=(7, 6))
for k, row in enumerate(axes):
    for ax, x in zip(row, patches.x_train[patches.y_train == k][:6], strict=True):
        ax.imshow(x.permute(1, 2, 0))
        ax.axis("off")
    row[0].set_title(patches.classes[k], fontsize=8, loc="left")
label(fig, "training patches, one row per class")
plt.show()
plt.close(fig)

# %% [markdown]
# ### Exercise 1 · `global_average_pool`
#
# Write `global_average_pool(f)`: for $f$ of shape $(N, C, H, W)$ return the $(N, C)$ means over the
# positions. One call to `.mean` with the right `dim` does it.

# %% [solution] id=global_average_pool
def global_average_pool(f):
    r"""Average every channel over its positions: :math:`g_{n,c} = \frac{1}{HW} \sum_{i,j} f_{n,c,i,j}`.

    Args:
        f: feature maps, shape (N, C, H, W).

    Returns:
        Shape (N, C).
    """
    ### BEGIN SOLUTION
    return f.mean(dim=(2, 3))
    ### END SOLUTION

# %% [check] id=check_global_average_pool points=2
f = torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(0))
result = global_average_pool(f)
checks.check_shape(result, (2, 3), name="global_average_pool(f) for f of shape (2, 3, 4, 5)")
checks.check_close(result, transfer.global_average_pool(f), name="global_average_pool(f)")
f_grad = f.clone().requires_grad_(True)
checks.check_grad(global_average_pool(f_grad), transfer.global_average_pool(f_grad), [f_grad],
                  name="global_average_pool(f)")
checks.passed("global_average_pool")
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(5)
for shape in [(1, 512, 1, 1), (3, 7, 2, 9), (4, 1, 6, 6)]:
    ff = torch.randn(shape, generator=g, dtype=torch.float64)
    checks.check_close(global_average_pool(ff), nn.AdaptiveAvgPool2d(1)(ff).flatten(1),
                       name=f"global_average_pool on shape {shape}")
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 2 · `freeze`
#
# Write `freeze(module)`: return a **copy** of the module (`copy.deepcopy`) in which every parameter has
# `requires_grad` set to `False`. The original must keep training: freezing the backbone for one experiment
# should not silently freeze it for the next one.

# %% [solution] id=freeze
def freeze(module):
    """A copy of ``module`` whose parameters get no gradients (``requires_grad=False``); the original is untouched."""
    ### BEGIN SOLUTION
    import copy

    frozen = copy.deepcopy(module)
    for p in frozen.parameters():
        p.requires_grad_(False)
    return frozen
    ### END SOLUTION

# %% [check] id=check_freeze points=2
net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
frozen = freeze(net)
checks.check_true(isinstance(frozen, nn.Module), f"freeze should return a module, got {type(frozen).__name__}")
checks.check_true(frozen is not net, "freeze(net) returned net itself; return a copy (copy.deepcopy).")
checks.check_true(not any(p.requires_grad for p in frozen.parameters()),
                  "some parameters of freeze(net) still have requires_grad=True.")
checks.check_true(all(p.requires_grad for p in net.parameters()),
                  "freeze(net) froze the original net too; freeze a copy instead.")
for a, b in zip(frozen.parameters(), net.parameters(), strict=True):
    checks.check_close(a, b, name="a parameter of freeze(net) (it should equal the original's)")
checks.passed("freeze")
### BEGIN HIDDEN TESTS
last = transfer.split_backbone(weights.untrained_backbone("vgg16"))[1].requires_grad_(True)  # trainable copy
frozen_last = freeze(last)
checks.check_true(transfer.count_trainable(frozen_last) == 0, "freeze of VGG's last block left trainable parameters")
checks.check_true(transfer.count_trainable(last) > 0, "freeze of VGG's last block froze the original")
out = frozen_last(torch.rand(1, 512, 2, 2, generator=torch.Generator().manual_seed(1)))
checks.check_true(not out.requires_grad, "the output of a frozen module should not require gradients")
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 3 · `count_trainable`
#
# Write `count_trainable(module)`: the number of individual numbers in the parameters that will receive
# gradients, that is the sum of `p.numel()` over `module.parameters()` with `p.requires_grad`. With it we can
# say exactly how much each stage of transfer learning trains.

# %% [solution] id=count_trainable
def count_trainable(module):
    """The number of parameters (individual numbers) of ``module`` that will receive gradients."""
    ### BEGIN SOLUTION
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
    ### END SOLUTION

# %% [check] id=check_count_trainable points=2
checks.check_close(count_trainable(nn.Linear(5, 3)), 18, name="count_trainable(nn.Linear(5, 3)) (15 weights + 3 biases)")
partly = nn.Sequential(nn.Linear(5, 3), transfer.freeze(nn.Linear(3, 2)))
checks.check_close(count_trainable(partly), transfer.count_trainable(partly),
                   name="count_trainable of a net whose second layer is frozen")
checks.passed("count_trainable")
### BEGIN HIDDEN TESTS
conv = nn.Conv2d(3, 8, 3)
conv.bias.requires_grad_(False)
checks.check_close(count_trainable(conv), 8 * 3 * 9, name="count_trainable of a conv with a frozen bias")
checks.check_close(count_trainable(nn.ReLU()), 0, name="count_trainable(nn.ReLU())")
last = transfer.split_backbone(weights.untrained_backbone("vgg16"))[1].requires_grad_(True)
last[0].requires_grad_(False)  # conv5_1 frozen, conv5_2 and conv5_3 trainable
checks.check_close(count_trainable(last), 2 * (512 * 512 * 9 + 512),
                   name="count_trainable of VGG16's last block with conv5_1 frozen")
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 4 · `train_head`
#
# Write `train_head(features, y, *, n_classes, epochs=200, eta=0.01, seed=0)`: a linear head trained on
# fixed, already pooled features $g$ of shape $(N, C)$.
#
# 1. Create `nn.Linear(C, n_classes)` inside `with torch.random.fork_rng(devices=[]):` after
#    `torch.manual_seed(seed)`, so the initial weights depend on `seed` only and the caller's random state is
#    left alone.
# 2. Make `torch.optim.Adam(head.parameters(), lr=eta)`. (Adam scales each weight's step by the size of its
#    gradient, so the same $\eta$ works for features of any scale.)
# 3. `epochs` times: scores `head(features)`, loss `F.cross_entropy(scores, y)` (import
#    `torch.nn.functional as F`), `zero_grad`, `backward`, `step`. Every step uses all $N$ examples.
# 4. Return the head.

# %% [solution] id=train_head
def train_head(features, y, *, n_classes, epochs=200, eta=0.01, seed=0):
    r"""Train a linear head :math:`s = W g + b` on fixed features with full-batch Adam on the cross-entropy.

    Args:
        features: pooled features g, shape (N, C); they are constants (a frozen backbone made them).
        y: labels, shape (N,), integers in 0..K-1.
        n_classes: K.
        epochs: gradient steps, each on all N examples.
        eta: Adam's learning rate.
        seed: seed of the head's initial weights (``nn.Linear``'s default initialisation).

    Returns:
        The trained ``nn.Linear(C, K)``.
    """
    ### BEGIN SOLUTION
    import torch.nn.functional as F

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = nn.Linear(features.shape[1], n_classes)
    optimiser = torch.optim.Adam(head.parameters(), lr=eta)
    for _ in range(epochs):
        loss = F.cross_entropy(head(features), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return head
    ### END SOLUTION

# %% [check] id=check_train_head points=3
g = torch.Generator().manual_seed(2)
centres = torch.randn(3, 8, generator=g) * 3
y_blobs = torch.arange(3).repeat_interleave(20)
g_blobs = centres[y_blobs] + torch.randn(60, 8, generator=g)
g_before = g_blobs.clone()
head = train_head(g_blobs, y_blobs, n_classes=3, epochs=200, seed=1)
checks.check_type(head, nn.Linear, name="train_head(...)")
checks.check_shape(head.weight, (3, 8), name="the head's weight W (K × C)")
with torch.no_grad():
    start_loss = nn.functional.cross_entropy(train_head(g_blobs, y_blobs, n_classes=3, epochs=0, seed=1)(g_blobs),
                                             y_blobs)
    end_loss = nn.functional.cross_entropy(head(g_blobs), y_blobs)
    accuracy = float((head(g_blobs).argmax(1) == y_blobs).float().mean())
checks.check_true(float(end_loss) < 0.5 * float(start_loss),
                  f"the loss went from {float(start_loss):.3f} to only {float(end_loss):.3f}; is the optimiser stepping?")
checks.check_true(accuracy > 0.95, f"train accuracy on three well separated blobs is only {accuracy:.0%}")
checks.check_true(torch.equal(g_blobs, g_before), "train_head changed the features it was given")
checks.passed("train_head")
### BEGIN HIDDEN TESTS
reference = transfer.train_head(g_blobs, y_blobs, n_classes=3, epochs=25, seed=4)
mine = train_head(g_blobs, y_blobs, n_classes=3, epochs=25, seed=4)
checks.check_close(mine.weight, reference.weight, name="the head's weight after 25 steps with seed 4", rtol=1e-4,
                   atol=1e-6)
torch.manual_seed(0)
state = torch.random.get_rng_state()
train_head(g_blobs, y_blobs, n_classes=3, epochs=1, seed=9)
checks.check_true(torch.equal(state, torch.random.get_rng_state()), "train_head changed the global random state")
g2 = torch.Generator().manual_seed(7)
y5 = torch.arange(5).repeat_interleave(10)
g5 = torch.randn(5, 16, generator=g2)[y5] * 4 + torch.randn(50, 16, generator=g2)
head5 = train_head(g5, y5, n_classes=5, epochs=300, seed=2)
with torch.no_grad():
    checks.check_true(float((head5(g5).argmax(1) == y5).float().mean()) > 0.9, "train_head fails on 5 classes")
### END HIDDEN TESTS

# %% [markdown]
# ### Frozen versus fine-tuned
#
# `transfer.transfer` runs both stages with the library's versions of your functions. The body of VGG
# (everything before `conv5_1`) is frozen in both, so its output for every patch is computed once, which is
# also how one fine-tunes cheaply in practice. Stage 1 trains the head on the pooled `pool5` features.
# Stage 2 continues from that head, unfreezes a copy of the last block and trains both with Adam at a
# learning rate of $10^{-4}$, a hundred times smaller than the head's, so the pretrained filters move
# only a little. Both are scored on the held-out patches.

# %%
result = transfer.transfer(backbone, patches, finetune_epochs=profile.train_epochs, seed=profile.seed)
print(f"frozen backbone + head:  {result.trainable_frozen:>10,} trainable parameters, "
      f"held-out accuracy {result.frozen_accuracy:.1%}")
print(f"fine-tuned last block:   {result.trainable_finetuned:>10,} trainable parameters, "
      f"held-out accuracy {result.finetuned_accuracy:.1%}")
fig, (ax_bar, ax_loss) = plt.subplots(1, 2, figsize=(9, 3.4))
ax_bar.bar(["frozen + head", "fine-tuned"], [result.frozen_accuracy, result.finetuned_accuracy],
           color=["#1f77b4", "#ff7f0e"])
ax_bar.set(ylim=(0, 1), ylabel="held-out accuracy", title=f"{len(patches.y_test)} test patches")
ax_loss.plot(range(1, len(result.finetune_loss) + 1), result.finetune_loss, marker="o")
ax_loss.set(xlabel="fine-tuning epoch", ylabel="mean cross-entropy", title="fine-tuning the last block")
label(fig, "transfer learning on texture patches")
fig.tight_layout()
plt.show()
plt.close(fig)

# %% [markdown]
# With pretrained weights, the frozen features alone already separate the textures almost perfectly: a
# linear head on top of ImageNet features is a strong baseline, trained in a fraction of a second on 2,565
# parameters. Fine-tuning trains some 3,700 times more parameters; with so little data it helps only when the
# new task differs from ImageNet, and it can overfit, which is exactly what the held-out patches would
# reveal. (On the untrained stand-in, the "features" are random filters: the head still finds some
# structure, and fine-tuning has more to fix.) The rule of thumb: the smaller your dataset and the closer
# it is to ImageNet, the more of the backbone you freeze.
#
# ## Lecture demo · the feature-map browser
#
# Pick a photo, a layer and a channel; on the right are the 16 channels of that layer that respond most
# strongly to the photo. All layers of a photo are computed once when it is chosen, so browsing is instant.

# %%
feature_browser(size=profile.widget_size, backbone=backbone)

# %% [markdown]
# ## Summary
#
# * VGG stacks 3 × 3 convolutions in five blocks, each ending with a pooling; its layers are named
#   `conv{block}_{i}`, `relu{block}_{i}` and `pool{block}`, and the receptive field grows from 3 pixels to
#   hundreds.
# * Early layers respond to edges, colours and fine textures; deep ones to larger, more specific patterns.
# * Reconstructing a photo from a layer's response shows what the layer keeps: shallow layers keep the
#   pixels, deep layers the arrangement. Style transfer takes its content from a deep layer for that reason.
# * Transfer learning: freeze a pretrained backbone and train a small head (global average pooling and one
#   linear layer); then, if the data allow, fine-tune the last block with a small learning rate, and judge
#   both on held-out data.
#
# Notebook 06 uses these features for style transfer.
