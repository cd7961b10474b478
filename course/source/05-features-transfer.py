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
# **Runtime** (fast profile): about 40 s on a 2-core CPU, up to 1½ minutes when it is busy; GPU: not measured yet.
#
# **Pretrained weights.** VGG's ImageNet weights (548 MB) come through `nstlab.weights`. If they cannot be
# found or downloaded, this notebook still runs, on an *untrained* VGG19 with random weights, and every
# figure says so in red. The mechanics (shapes, names, the training code) are the same, and some lessons
# still show: the reconstructions degrade with depth, because pooling and ReLUs throw information away
# whatever the weights. What the pictures show about *learned* features does not: random filters respond to
# some mix of brightness, colour and edges in the first blocks and to nothing specific deeper down. Each
# section says what the pretrained network shows instead. `nstlab weights status` tells you how to get the weights.

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
# the patterns more specific: fewer neurons fire, but what they fire on means more. (On the untrained stand-in
# the first two blocks still show filtered copies of the photo, since any small filter responds to some mix
# of brightness, colour and edges; from `relu3_1` on the maps are unstructured blobs, because random filters
# combine nothing meaningful. A trained network's deep channels fire on specific parts, such as eyes or fur.)

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
# layer threw away. You will write this search yourself in Exercise 1.
#
# With trained weights, the reconstruction from a shallow layer (`relu1_1`) is almost the photo, pixel for
# pixel: 64 channels at full resolution are more numbers than the photo has. From a deep layer (`relu4_1`)
# the arrangement of the scene survives (where the cat's head and the edges are), but colours and fine
# texture drift: the layer encodes *what is where*, not the exact pixels. That is why style transfer takes
# its content from a deep layer: it fixes the layout and leaves the rendering free for the style.

# %% [markdown]
# ### Exercise 1 · `reconstruct`
#
# **Task.** Write `reconstruct(extractor, image, layer, *, steps=150, eta=0.05, seed=0)`: given a feature
# extractor, a photo $\vec p$ of shape (1, 3, H, W) and a layer name, return the image $\vec x$ (same shape,
# pixels in [0, 1]) that `steps` steps of Adam find, starting from noise, by minimising the content loss at
# that layer.
#
# 1. The target $P^l$ = `extractor(image)[layer]` is a constant: compute it once, inside `torch.no_grad()`.
# 2. Start from uniform noise made by a generator of your own, so that the caller's random state is left
#    alone: `torch.rand(image.shape, generator=torch.Generator().manual_seed(seed))`, moved to the image's
#    device and dtype with `.to(image)`. The pixels are what we optimise, so make this tensor a leaf that
#    requires gradients (`.requires_grad_(True)`).
# 3. Make **one** `torch.optim.Adam([x], lr=eta)` before the loop: Adam keeps running averages of past
#    gradients, which a new optimiser in every step would forget.
# 4. In each step: the loss `content_loss(extractor(x)[layer], P)`, then `zero_grad`, `backward`, `step`;
#    then put the pixels back into [0, 1] in place, `x.clamp_(0, 1)`, inside `torch.no_grad()` (a change of
#    `x` that autograd must not record).
# 5. Return `x.detach()`. The photo must come back untouched.
#
# The network stays fixed: its weights are frozen, and only $\vec x$ is handed to the optimiser.

# %% [solution] id=reconstruct
def reconstruct(extractor, image, layer, *, steps=150, eta=0.05, seed=0):
    r"""Find an image whose features at ``layer`` match those of ``image``, starting from uniform noise.

    Minimises :math:`\tfrac12 \sum (F^l - P^l)^2` over the pixels with Adam (learning rate :math:`\eta`),
    keeping the pixels in [0, 1] after every step.

    Args:
        extractor: a :class:`nstlab.vgg.VGGFeatures` that returns ``layer``.
        image: the photo :math:`\vec p`, shape (1, 3, H, W) in [0, 1].
        layer: the layer whose features are matched, e.g. ``"relu4_1"``.
        steps: optimiser steps.
        eta: Adam's learning rate.
        seed: seed of the starting noise.

    Returns:
        The reconstruction :math:`\vec x`, shape (1, 3, H, W) in [0, 1], detached; ``image`` is untouched.
    """
    ### BEGIN SOLUTION
    with torch.no_grad():
        target = extractor(image)[layer]  # (1, C, H', W')
    x = torch.rand(image.shape, generator=torch.Generator().manual_seed(seed)).to(image).requires_grad_(True)
    optimiser = torch.optim.Adam([x], lr=eta)
    for _ in range(steps):
        loss = content_loss(extractor(x)[layer], target)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        with torch.no_grad():
            x.clamp_(0, 1)
    return x.detach()
    ### END SOLUTION

# %% [check] id=check_reconstruct points=4
check_extractor = vgg.VGGFeatures(["relu1_1", "relu2_1"], backbone=backbone)
photo_ = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
photo_before = photo_.clone()
start_ = reconstruct(check_extractor, photo_, "relu1_1", steps=0, seed=3)
checks.check_type(start_, torch.Tensor, name="reconstruct(extractor, photo, 'relu1_1', steps=0, seed=3)")
checks.check_shape(start_, (1, 3, 16, 16), name="reconstruct(extractor, photo, 'relu1_1', steps=0, seed=3)")
checks.check_close(start_, torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(3)), rtol=0, atol=0,
                   name="reconstruct(..., steps=0, seed=3), the starting noise "
                        "torch.rand(image.shape, generator=torch.Generator().manual_seed(seed)),",
                   mistakes={"the search starts from the photo itself, not from noise": photo_})
x_ = reconstruct(check_extractor, photo_, "relu1_1", steps=6, seed=3)
checks.check_true(torch.equal(photo_, photo_before),
                  "reconstruct changed the photo it was given: optimise a new tensor x made from noise, never image.")
checks.check_true(type(x_) is torch.Tensor and not x_.requires_grad,
                  "the result of reconstruct still requires gradients (it is part of a graph): return x.detach().")
checks.check_true(bool(x_.min() >= 0) and bool(x_.max() <= 1),
                  f"reconstruct(..., steps=6) has pixels from {x_.min().item():.3f} to {x_.max().item():.3f}, outside "
                  "[0, 1]: after every step, clamp x in place (x.clamp_(0, 1) inside torch.no_grad()).")
checks.check_close(reconstruct(check_extractor, photo_, "relu1_1", steps=1, seed=3),
                   transfer.reconstruct(check_extractor, photo_, "relu1_1", steps=1, seed=3), rtol=0, atol=1e-5,
                   name="reconstruct(..., steps=1, seed=3) (Adam's first step moves each pixel by eta against the "
                        "sign of its gradient of the content loss)")
checks.check_true(torch.allclose(x_, transfer.reconstruct(check_extractor, photo_, "relu1_1", steps=6, seed=3),
                                 rtol=0, atol=1e-4),
                  "the first step is right, but after 6 steps the image differs from the library's: is the gradient "
                  "cleared before every backward (zero_grad), and is one Adam made before the loop (a new one in "
                  "every step forgets its running averages)?")
deep_ = reconstruct(check_extractor, photo_, "relu2_1", steps=20, eta=0.1, seed=4)
with torch.no_grad():
    P_ = check_extractor(photo_)["relu2_1"]
    loss_start = content_loss(check_extractor(start_)["relu2_1"], P_).item()
    loss_end = content_loss(check_extractor(deep_)["relu2_1"], P_).item()
checks.check_true(loss_end < 0.5 * loss_start,
                  f"20 steps at relu2_1 lowered the content loss only from {loss_start:.4g} to {loss_end:.4g}; is the "
                  "loss computed at `layer` and between extractor(x)[layer] and the photo's features?")
checks.passed("reconstruct")
### BEGIN HIDDEN TESTS
photo_ = torch.rand(1, 3, 20, 24, generator=torch.Generator().manual_seed(8))
for layer_, steps_, eta_, seed_ in [("relu2_1", 4, 0.1, 7), ("relu1_1", 3, 0.02, 11)]:
    checks.check_close(reconstruct(check_extractor, photo_, layer_, steps=steps_, eta=eta_, seed=seed_),
                       transfer.reconstruct(check_extractor, photo_, layer_, steps=steps_, eta=eta_, seed=seed_),
                       rtol=0, atol=1e-4, name=f"reconstruct at {layer_} with steps={steps_}, eta={eta_}, seed={seed_}")
torch.manual_seed(0)
state_ = torch.random.get_rng_state()
reconstruct(check_extractor, photo_, "relu1_1", steps=1, seed=2)
checks.check_true(torch.equal(state_, torch.random.get_rng_state()), "reconstruct changed the global random state")
### END HIDDEN TESTS

# %% [markdown]
# The library's `transfer.reconstruct` is the same function (it also shows a progress bar). Below it
# reconstructs the photo from the first layer of each of the first four blocks, in the network Gatys et al.
# used for their reconstructions: the *normalised* VGG19, every filter rescaled so that its mean activation
# over natural images is 1 (`vgg.normalise_backbone`), with average instead of max pooling (notebook 06
# explains both). The rescaling does not change what a layer records, only how much each of its channels
# weighs in the content loss.

# %%
# Half the widget size keeps the deep search quick; at least 48 pixels wide, so that the photo's short side
# (two thirds of the long one) stays at VGG's minimum of 32 pixels.
small = data.builtin_image("chelsea", size=max(profile.widget_size // 2, 48))
steps = profile.style_steps // 2
recon_layers = ["relu1_1", "relu2_1", "relu3_1", "relu4_1"]
recon_extractor = vgg.VGGFeatures(recon_layers, backbone=vgg.normalise_backbone(backbone), pool="avg")
reconstructions = {name: transfer.reconstruct(recon_extractor, small, name, steps=steps, seed=profile.seed)
                   for name in recon_layers}
fig, axes = plt.subplots(1, 1 + len(recon_layers), figsize=(3.2 * (1 + len(recon_layers)), 3.6))
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
# Every search drove its content loss down by orders of magnitude: the reconstruction *does* have (nearly) the
# photo's response at that layer. So where a reconstruction looks unlike the photo, the difference is
# something the layer does not record.
#
# On the untrained stand-in (scaled to a mean activation of 1 per layer) the reconstructions also get worse
# with depth: `relu3_1` is still recognisable, `relu4_1` only a shadow of the photo. Pooling and ReLUs lose
# information whatever the weights. What the pretrained network shows instead is *which* information
# survives: from `relu4_1` the layout of the scene, the cat's head, eyes and the main edges, in drifting colours
# and texture, because its filters were trained to keep what identifies objects.
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
# ### Exercise 2 · `global_average_pool` (a short one)
#
# **Task.** Write `global_average_pool(f)`: for feature maps $f$ of shape $(N, C, H, W)$ return the $(N, C)$
# means over the positions. One call to `.mean` with the right `dim` does it.

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
# Freezing and counting are one-liners, so the library's are used below: `transfer.freeze(module)` returns a
# copy whose parameters have `requires_grad=False` (the original keeps training, so that freezing the backbone
# for one experiment does not silently freeze it for the next), and `transfer.count_trainable(module)` sums
# `p.numel()` over the parameters that will receive gradients.

# %%
body, last_block = transfer.split_backbone(backbone)  # copies: everything before conv5_1, and conv5_1 … pool5
print(f"the last block has {sum(p.numel() for p in last_block.parameters()):,} parameters, "
      f"{transfer.count_trainable(transfer.freeze(last_block)):,} of them trainable once frozen; "
      f"a head from 512 channels to {len(patches.classes)} classes has "
      f"{transfer.count_trainable(nn.Linear(512, len(patches.classes))):,}")

# %% [markdown]
# ### Exercise 3 · `train_head`
#
# **Task.** Write `train_head(features, y, *, n_classes, epochs=200, eta=0.01, seed=0)`: given fixed, already
# pooled features $g$ of shape $(N, C)$ and their labels $y$ of shape $(N,)$, return a linear head
# `nn.Linear(C, n_classes)` trained on them by full-batch Adam on the cross-entropy.
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
# ### Exercise 4 · `finetune`: the last block at a smaller learning rate
#
# In stage 2 the head keeps learning at its learning rate $\eta$, while the last block, whose filters were
# learned on a million photos, should only be adjusted: it gets a learning rate `backbone_factor` times
# smaller. torch optimisers take such settings as **parameter groups**: instead of one iterable of parameters,
# a list of dicts, each with its `"params"` and, optionally, its own `"lr"`, for example
# `torch.optim.SGD([{"params": a.parameters(), "lr": 0.1}, {"params": b.parameters()}], lr=1.0)`, where
# group `b` uses the default `lr=1.0`.
#
# **Task.** Write `finetune(last, head, h, y, *, epochs=10, eta=1e-3, backbone_factor=0.1, batch_size=64,
# seed=0)`: given the last block, the head trained in stage 1, what the frozen body made of the training
# patches, `h` of shape $(N, C', H, W)$, and the labels `y` of shape $(N,)$, train the block and the head
# together and return `(last, head, losses)`: the trained copies and a list with the mean cross-entropy of each
# epoch.
#
# 1. Train **copies** (`copy.deepcopy`), so that the caller's modules are untouched, and make both copies
#    trainable with `.requires_grad_(True)`: the block you are given may be frozen.
# 2. One `torch.optim.Adam` with two parameter groups: the block's parameters at `eta * backbone_factor`,
#    the head's at `eta`.
# 3. One generator for the whole run, `gen = torch.Generator().manual_seed(seed)`. Each epoch, shuffle with
#    `torch.randperm(N, generator=gen)` and cut the order into mini-batches with `.split(batch_size)`. For
#    each batch: scores `head(global_average_pool(last(h[batch])))`, loss `F.cross_entropy(scores,
#    y[batch])`, then `zero_grad`, `backward`, `step`.
# 4. An epoch's loss is the mean over its $N$ examples: add up `loss.item() * len(batch)` and divide by $N$.

# %% [solution] id=finetune
def finetune(last, head, h, y, *, epochs=10, eta=1e-3, backbone_factor=0.1, batch_size=64, seed=0):
    r"""Fine-tune a backbone block and the head together, the block with a smaller learning rate.

    Adam with two parameter groups: the head's parameters at learning rate :math:`\eta`, the block's at
    ``backbone_factor`` :math:`\cdot\,\eta`. Each epoch visits the N examples once, in the order of
    ``torch.randperm(N, generator=gen)``, in mini-batches of ``batch_size``.

    Args:
        last: the block to fine-tune; frozen or not, a trainable copy of it is trained.
        head: the head trained on the frozen features, ``nn.Linear(C, K)``.
        h: what the frozen layers before ``last`` made of the training examples, (N, C', H, W): constants.
        y: labels, shape (N,), integers in 0..K-1.
        epochs: passes over the N examples.
        eta: the head's learning rate :math:`\eta`.
        backbone_factor: the block's learning rate as a fraction of :math:`\eta`.
        batch_size: examples per step (the last batch of an epoch may be smaller).
        seed: seed of the order of the examples.

    Returns:
        ``(last, head, losses)``: trained copies of the block and the head, and the mean cross-entropy over the
        examples of each epoch, as measured during it.
    """
    ### BEGIN SOLUTION
    import copy

    import torch.nn.functional as F

    last, head = copy.deepcopy(last).requires_grad_(True), copy.deepcopy(head).requires_grad_(True)
    optimiser = torch.optim.Adam([{"params": last.parameters(), "lr": eta * backbone_factor},
                                  {"params": head.parameters(), "lr": eta}])
    gen = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(epochs):
        total = 0.0
        for batch in torch.randperm(len(y), generator=gen).split(batch_size):
            loss = F.cross_entropy(head(global_average_pool(last(h[batch]))), y[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item() * len(batch)
        losses.append(total / len(y))
    return last, head, losses
    ### END SOLUTION

# %% [check] id=check_finetune points=4
def small_block_and_head(seed):
    """A block of one convolution (3 to 5 channels) and a head from 5 channels to 2 classes, seeded."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return transfer.freeze(nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.ReLU())), nn.Linear(5, 2)


def largest_move(after, before):
    """How far the parameters of a module moved: the largest change of any of its numbers."""
    return max((a - b).abs().max().item() for a, b in zip(after.parameters(), before.parameters(), strict=True))


block_, head_ = small_block_and_head(0)
g = torch.Generator().manual_seed(1)
h_, y_ = torch.rand(8, 3, 4, 4, generator=g), torch.tensor([0, 1] * 4)
saved_ = [p.clone() for p in (*block_.parameters(), *head_.parameters())]
result_ = finetune(block_, head_, h_, y_, epochs=1, eta=0.01, backbone_factor=0.1, batch_size=8)
checks.check_true(type(result_) is tuple and len(result_) == 3,
                  f"finetune should return a tuple (last, head, losses), got a {type(result_).__name__}")
checks.check_true(all(torch.equal(a, b) for a, b in zip(saved_, (*block_.parameters(), *head_.parameters()),
                                                          strict=True)),
                  "finetune changed the modules it was given: train copies (copy.deepcopy(last), copy.deepcopy(head)).")
moved_block, moved_head = largest_move(result_[0], block_), largest_move(result_[1], head_)
checks.check_true(moved_block > 0,
                  "the block did not change: make its copy trainable (.requires_grad_(True); the block given was "
                  "frozen) and give its parameters to the optimiser.")
checks.check_true(abs(moved_block - 0.01) > 1e-4 or abs(moved_head - 0.01) > 1e-4,
                  "the block moved as far as the head (0.01) in Adam's first step: the block needs its own "
                  "parameter group with lr=eta * backbone_factor.")
checks.check_true(abs(moved_block - 0.001) < 1e-5 and abs(moved_head - 0.01) < 1e-4,
                  f"In Adam's first step every parameter moves by its learning rate, so with eta=0.01 and "
                  f"backbone_factor=0.1 the block should move by 0.001 and the head by 0.01; yours moved by "
                  f"{moved_block:.4g} and {moved_head:.4g}. Use torch.optim.Adam with two parameter groups.")
mine_ = finetune(block_, head_, h_, y_, epochs=3, eta=0.01, batch_size=3, seed=5)
theirs_ = transfer.finetune(block_, head_, h_, y_, epochs=3, eta=0.01, batch_size=3, seed=5)
checks.check_close(mine_[2], theirs_[2], rtol=1e-4,
                   name="the losses of finetune(..., epochs=3, batch_size=3, seed=5) (each epoch's mean over its N "
                        "examples: add up loss.item() * len(batch), then divide by N)")
checks.check_close(mine_[1].weight, theirs_[1].weight, rtol=1e-4, atol=1e-6,
                   name="the head's weight after finetune(..., epochs=3, batch_size=3, seed=5) (shuffle with "
                        "torch.randperm(N, generator=gen), one gen for the whole run, and split into batches)")
checks.passed("finetune")
### BEGIN HIDDEN TESTS
with torch.random.fork_rng(devices=[]):
    torch.manual_seed(12)
    block3 = nn.Sequential(nn.Conv2d(4, 6, 1), nn.ReLU(), nn.Conv2d(6, 7, 3, padding=1), nn.ReLU())
    head3 = nn.Linear(7, 3)
g = torch.Generator().manual_seed(13)
y3 = torch.arange(3).repeat_interleave(7)
h3 = torch.rand(21, 4, 2, 3, generator=g) + y3.view(-1, 1, 1, 1) * torch.tensor([1.0, 0, 0, -1]).view(1, 4, 1, 1)
for kwargs in [dict(epochs=4, eta=0.02, backbone_factor=0.5, batch_size=5, seed=2), dict(epochs=2, seed=9)]:
    mine3, theirs3 = finetune(block3, head3, h3, y3, **kwargs), transfer.finetune(block3, head3, h3, y3, **kwargs)
    checks.check_close(mine3[2], theirs3[2], rtol=1e-4, name=f"the losses of finetune(..., {kwargs})")
    for a, b in zip(mine3[0].parameters(), theirs3[0].parameters(), strict=True):
        checks.check_close(a, b, rtol=1e-4, atol=1e-6, name=f"a parameter of the block after finetune(..., {kwargs})")
torch.manual_seed(0)
state_ = torch.random.get_rng_state()
finetune(block3, head3, h3, y3, epochs=1, seed=3)
checks.check_true(torch.equal(state_, torch.random.get_rng_state()), "finetune changed the global random state")
losses3 = finetune(block3, head3, h3, y3, epochs=25, eta=0.05, batch_size=7)[2]
checks.check_true(losses3[-1] < 0.5 * losses3[0], f"finetune did not lower the loss: {losses3[0]:.3f} to {losses3[-1]:.3f}")
### END HIDDEN TESTS

# %% [markdown]
# ### Frozen versus fine-tuned
#
# `transfer.transfer` runs both stages with the library's versions of your functions. The body of VGG
# (everything before `conv5_1`) is frozen in both, so its output for every patch is computed once, which is
# also how one fine-tunes cheaply in practice. Stage 1 trains the head on the pooled `pool5` features.
# Stage 2 is `finetune`: it continues from that head and trains it together with a copy of the last block,
# the head at a learning rate of $10^{-3}$ and the block at a tenth of that, so that the pretrained filters
# move only a little. Both are scored on the held-out patches.

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
# ## Questions (graded by hand)
#
# Answer each in a few sentences, in the cell below it.
#
# **Question 1.** The reconstruction from `relu1_1` is close to the photo, the one from `relu4_1` much less
# so, although both searches drove their content loss down by orders of magnitude. What does that say about
# what each layer records? Give two reasons from VGG's architecture why the deep layer lets information go.

# %% [written] id=deep_reconstruction points=2
# The content loss was driven down in both cases, so both reconstructions have (nearly) the photo's response at
# their layer: whatever still differs from the photo is something the layer does not record. `relu1_1`
# records nearly everything: 64 filters with 3 × 3 receptive fields at full resolution, so the pixels can be
# read back almost exactly. `relu4_1` records *what is where* (the arrangement of edges, parts and textures)
# but not the exact pixel values: many images give the same response there.
#
# Reasons from the architecture (any two): (1) three 2 × 2 poolings lie before `relu4_1`: within each window
# only the maximum (or mean) survives, so exact positions are lost and the map has 64 times fewer positions;
# (2) every ReLU discards the negative part of a response, and most deep neurons are silent on a given image
# (notebook's section 2), so many different inputs give the same zeros; (3) deep filters have large receptive
# fields and were trained for classification, so they respond to patterns regardless of small shifts,
# changes of colour or exact texture: invariances that are useful for recognising objects and that a
# reconstruction cannot undo.

# %% [markdown]
# **Question 2.** In `finetune` the last block learns with a learning rate ten times smaller than the head's.
# Why smaller, and why fine-tune the *last* block rather than the first? When would you not fine-tune at
# all?

# %% [written] id=finetune_rates points=2
# The block's filters are already good (learned from a million photos), while the head is new and small.
# Large steps on the block, especially at the start, when the head's errors make large and noisy gradients,
# would destroy what it learned before the head has adapted (catastrophic forgetting), and with few training
# patches they would fit the noise in them (overfitting). A small learning rate lets the block adjust a little
# to the new task and keeps most of what it knows; the head can move fast because it has little to lose.
#
# The last block: early layers compute edges, colour contrasts and simple textures, which are useful for
# almost any images, so they transfer as they are; the last block's features are the most specific to
# ImageNet's classes, so they are the ones that may need to change (Yosinski et al., 2014). It is also
# cheaper: the frozen body's outputs are computed once.
#
# Not at all: when the data set is very small and close to ImageNet, the frozen features plus a head are
# already as good as it gets, and fine-tuning millions of parameters on a few hundred examples mostly
# overfits. The held-out accuracy decides.

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
#   linear layer); then, if the data allow, fine-tune the last block together with the head, the block in a
#   parameter group of its own with a smaller learning rate, and judge both on held-out data.
#
# Notebook 06 uses these features for style transfer.
