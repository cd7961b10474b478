# %% [markdown]
# # 08 · Bonus: DeepDream, and style from statistics
#
# Notebooks 05–07 asked a trained VGG to *describe* images. This notebook turns the question around twice.
# First, **DeepDream** (Mordvintsev, Olah & Tyka, 2015): instead of making an image look like another one,
# change its pixels so that a chosen layer responds *more*, and look at what appears: the network paints
# what that layer "wants to see". Second, **style from statistics**: why do Gram matrices capture style at
# all? Li et al. (2017) show that the Gram loss of notebook 06 measures how far apart two *distributions* of
# feature vectors are (a maximum mean discrepancy), and Huang & Belongie (2017) show that two numbers per
# channel, a mean and a standard deviation, already carry much of a painting's style (AdaIN).
#
# **In this notebook you will learn**
#
# 1. gradient *ascent* on the pixels, and why DeepDream normalises each step;
# 2. jitter and octaves, and what the result looks like without them;
# 3. what the layers of VGG respond to, from edges and colours in early layers to object parts in late ones;
# 4. style as per-channel statistics: the mean/standard-deviation loss and adaptive instance normalisation;
# 5. why the Gram loss works: it is a squared maximum mean discrepancy with the kernel $(x^\top y)^2$, with
#    the exact constant in this course's convention;
# 6. style transfer by optimisation with these statistics, and with an AdaIN target (any style, no network
#    trained), and what a real-time AdaIN network would take to train.
#
# **Runtime** (fast profile): about 1½ minutes on a 2-core CPU; GPU: not measured yet.
#
# **Pretrained weights.** DeepDream and style transfer need VGG19's ImageNet weights (548 MB, see
# `nstlab weights status`). If they cannot be found or downloaded, this notebook says why and continues on an
# *untrained* VGG19 with random weights; every figure then says so in red. Every exercise and check works the
# same on it, but the dreams show random filters' patterns rather than eyes and dog faces: the prose says what
# the pretrained network shows instead.

# %%
import time

import matplotlib.pyplot as plt
import torch
from IPython.display import display

from nstlab import checks, data, device, dream, losses, profiles, statistics, stylize, vgg, weights
from nstlab.widgets.dream_explorer import dream_explorer

torch.set_num_threads(1)  # small pieces of work: one CPU thread is faster on a busy machine (see notebook 04)
profile = profiles.get_profile()
print(profiles.describe(profile))
dev = device.choose_device().device
try:
    backbone = weights.load_backbone("vgg19")
except weights.WeightsUnavailable as err:
    print(f"Pretrained weights unavailable:\n{err}\n")
    print("Continuing with the untrained fallback, as asked for explicitly here (fallback='untrained').")
    backbone = weights.load_backbone("vgg19", fallback="untrained", seed=profile.seed)
print(backbone.note)

# One extractor per layer we dream with: each stops at its own layer, so a shallow dream stays cheap.
DREAM_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
extractors = {layer: vgg.VGGFeatures([layer], backbone=backbone).to(dev) for layer in DREAM_LAYERS}
# Sizes come from the profile: dreams at half its image size (128 px in the fast profile, 64 when grading), with
# the octaves and steps of the library's preset for the profile.
size = max(64, profile.image_size // 2)


def dream_settings(**changes):
    """The profile's DeepDream settings at this notebook's size, with some of them changed."""
    return dream.dream_config(profile.name, size=size, **changes)


photo = data.builtin_image("chelsea", size=size).to(dev)
painting = data.builtin_image("mosaic", size=size).to(dev)


def label(fig, title):
    """Title a figure, and say on it, in red, when the network is the untrained stand-in."""
    if backbone.pretrained:
        fig.suptitle(title)
    else:
        fig.suptitle(f"{title}\n{backbone.note}", color="#b00", fontsize=8, wrap=True)


def show_row(images, titles, title):
    """Show (1, 3, H, W) images side by side, with the untrained banner when it applies."""
    fig, axes = plt.subplots(1, len(images), figsize=(2.6 * len(images), 3.2), squeeze=False)
    for ax, image, name in zip(axes[0], images, titles, strict=True):
        ax.imshow(image[0].detach().float().clamp(0, 1).permute(1, 2, 0).cpu())
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    label(fig, title)
    fig.tight_layout()
    plt.show()
    plt.close(fig)


show_row([photo, painting], ["photo: chelsea", "painting: mosaic"], "the two images of this notebook")

# %% [markdown]
# # Part A · DeepDream
#
# ## 1 · Gradient ascent on the pixels
#
# In notebook 06 the pixels were the parameters and we went *down* the gradient of a loss. DeepDream goes
# *up* the gradient of an objective that measures how strongly a layer $l$ responds to the image $\vec x$.
# With the layer's activations $F^l(\vec x)$ of shape $(N, C, H, W)$, the two usual objectives are their
# mean and half their squared norm,
#
# $$\mathcal{D}_{mean}(\vec x) = \frac{1}{N C H W} \sum_{n,c,i,j} F^l_{ncij}(\vec x), \qquad
# \mathcal{D}_{l2}(\vec x) = \tfrac12 \sum_{n,c,i,j} F^l_{ncij}(\vec x)^2 ,$$
#
# or the same restricted to one channel $c$ (one filter of the layer). `dream.dream_objective(features,
# channel=None, kind="mean")` computes them. Since the activations are rectified (ReLU), increasing the mean
# means making *more* of the layer's filters fire, *more* strongly, wherever they can.
#
# One step moves the pixels along the gradient $g = \nabla_{\vec x} \mathcal{D}(\vec x)$. Its size varies
# by orders of magnitude between layers, images and moments of the optimisation, so DeepDream **normalises**
# it by its mean absolute value, which makes the step size $\eta$ mean the same thing everywhere: on average
# each pixel moves by $\eta$. Pixels are kept in $[0, 1]$:
#
# $$\vec x \leftarrow \operatorname{clip}_{[0,1]}\!\left(\vec x + \eta \, \frac{g}{\overline{|g|} + 10^{-8}}\right),
# \qquad \overline{|g|} = \frac{1}{\#\text{entries}} \sum |g| .$$
#
# ### Exercise 1 · `ascent_step`
#
# Write one such step. `objective` is a function from an image to a 0-dim tensor. Three things matter:
#
# * work on a **copy** that requires a gradient (`image.detach().clone().requires_grad_(True)`): the
#   caller's `image` must not change, not even its `requires_grad` flag;
# * get $g$ with `torch.autograd.grad(value, x)` (or `value.backward()` and `x.grad`);
# * return a plain, **detached** tensor: the next step starts a new graph.

# %% [solution] id=ascent_step
def ascent_step(image, objective, *, step_size):
    r"""One normalised gradient-ascent step on the pixels: :math:`x + \eta\, g / (\overline{|g|} + 10^{-8})`, clipped.

    Args:
        image: images of shape (N, 3, H, W) in [0, 1]; left unchanged.
        objective: a function from images (N, 3, H, W) to a 0-dim tensor, the quantity to increase.
        step_size: :math:`\eta`, the mean absolute change of a pixel.

    Returns:
        The new images, (N, 3, H, W), clamped to [0, 1] and detached.
    """
    ### BEGIN SOLUTION
    x = image.detach().clone().requires_grad_(True)
    g, = torch.autograd.grad(objective(x), x)  # (N, 3, H, W)
    return (x.detach() + step_size * g / (g.abs().mean() + 1e-8)).clamp(0, 1)
    ### END SOLUTION

# %% [check] id=check_ascent_step points=3
with checks.no_tf32():
    g = torch.Generator().manual_seed(0)
    x_ = 0.2 + 0.6 * torch.rand(1, 3, 5, 6, generator=g, dtype=torch.float64)
    w_ = torch.randn(1, 3, 5, 6, generator=g, dtype=torch.float64)
    before = x_.clone()
    result = ascent_step(x_, lambda im: (w_ * im).sum(), step_size=0.05)  # the gradient is w_
    checks.check_type(result, torch.Tensor, name="ascent_step(image, objective, step_size=0.05)")
    checks.check_shape(result, x_.shape, name="ascent_step(image, objective, step_size=0.05)")
    checks.check_close(result, (x_ + 0.05 * w_ / (w_.abs().mean() + 1e-8)).clamp(0, 1), rtol=1e-9, atol=1e-12,
                       name="ascent_step for the objective sum(w * x), whose gradient is w "
                            "(normalised by mean(|g|), added, clamped to [0, 1]?)")
    checks.check_close(ascent_step(x_, lambda im: (w_ * im).sum(), step_size=1.0),
                       (x_ + w_ / (w_.abs().mean() + 1e-8)).clamp(0, 1), rtol=1e-9, atol=1e-12,
                       name="ascent_step with step_size=1.0 (are the pixels clamped to [0, 1]?)")
    checks.check_true(not result.requires_grad,
                      "the returned image still requires grad: return a detached tensor (.detach()).")
    checks.check_true(torch.equal(x_, before) and not x_.requires_grad and x_.grad is None,
                      "ascent_step changed the caller's image (its values, requires_grad or .grad): work on "
                      "image.detach().clone().requires_grad_(True).")
    smooth = lambda im: (torch.sin(3 * im) * im).sum() + (im[:, :, 1:] * im[:, :, :-1]).sum()  # noqa: E731
    checks.check_close(ascent_step(x_, smooth, step_size=0.01), dream.ascent_step(x_, smooth, step_size=0.01),
                       rtol=1e-9, atol=1e-12, name="ascent_step on a nonlinear objective")
checks.passed("ascent_step")
### BEGIN HIDDEN TESTS
with checks.no_tf32():
    g = torch.Generator().manual_seed(40)
    for shape, dtype in [((2, 3, 7, 4), torch.float64), ((1, 3, 9, 9), torch.float32)]:
        x_ = torch.rand(shape, generator=g, dtype=dtype)
        kernel_ = torch.randn(4, 3, 3, 3, generator=g, dtype=dtype)  # a small convolution and a ReLU as the "layer"
        features = lambda im, kernel_=kernel_: torch.relu(torch.nn.functional.conv2d(im, kernel_))  # noqa: E731
        for kind in ("mean", "l2"):
            obj = lambda im, kind=kind, features=features: dream.dream_objective(features(im), kind=kind)  # noqa: E731
            tol = 1e-9 if dtype == torch.float64 else 1e-5
            checks.check_close(ascent_step(x_, obj, step_size=0.02), dream.ascent_step(x_, obj, step_size=0.02),
                               rtol=tol, atol=tol, name=f"ascent_step through a convolution, {kind}, shape {shape}")
        # a small step increases the objective
        obj = lambda im, features=features: dream.dream_objective(features(im), kind="l2")  # noqa: E731
        x_ = 0.3 + 0.4 * torch.rand(shape, generator=g, dtype=dtype)
        checks.check_true(bool(obj(ascent_step(x_, obj, step_size=1e-3)) > obj(x_)),
                          f"a small ascent step should increase the objective (shape {shape})")
    # pixels stay in [0, 1] whatever the step
    x_ = torch.rand(1, 3, 4, 4, generator=g, dtype=torch.float64)
    out = ascent_step(x_, lambda im: (im ** 2).sum() - im.sum() * 0.3, step_size=5.0)
    checks.check_true(bool(out.min() >= 0) and bool(out.max() <= 1), "ascent_step should clamp the pixels to [0, 1]")
    checks.check_close(ascent_step(x_, lambda im: (im ** 2).sum(), step_size=0.0), x_, rtol=0, atol=1e-15,
                       name="ascent_step with step_size=0")
### END HIDDEN TESTS

# %% [markdown]
# Your step, repeated on the photo at `relu4_1` (as many steps as the profile gives one octave, with its step
# size): the objective grows step by step, and the pixels stay in $[0, 1]$. The library's `dream.ascent_step`
# is the same function as yours.

# %%
objective = lambda image: dream.dream_objective(extractors["relu4_1"](image)["relu4_1"])  # noqa: E731
x = photo.clone()
values = []
for _ in range(dream_settings().steps):
    values.append(objective(x).item())
    x = ascent_step(x, objective, step_size=dream_settings().step_size)
print("objective:", " → ".join(f"{v:.4g}" for v in values + [objective(x).item()]))
print(f"pixels in [{x.min().item():.2f}, {x.max().item():.2f}], mean change {(x - photo).abs().mean().item():.4f}")

# %% [markdown]
# ## 2 · Jitter and octaves
#
# Plain ascent steps give disappointing dreams: a fine, regular texture at one scale, often with a grid
# pattern. Two tricks fix that.
#
# **Jitter.** VGG samples its input on grids: every pooling halves the resolution, so a `relu4_1` unit sits
# on a grid 8 pixels apart. Gradients inherit that grid, and repeated steps burn it into the image.
# DeepDream therefore shifts the image by a random offset $(\Delta x, \Delta y)$ (a cyclic roll, so nothing
# is lost) before each step and shifts it back afterwards: over many steps the grid falls on a different
# place each time and averages out. `dream.jitter(image, dx, dy)` is `torch.roll` over $(H, W)$, and
# `jitter(jitter(x, dx, dy), -dx, -dy)` gives `x` back exactly.
#
# **Octaves.** A unit of `relu4_1` sees a window of 68 × 68 pixels of the input (its *receptive field*),
# whatever the size of the image. Dreaming on the full image only ever grows patterns of that size. So
# DeepDream starts on a small copy of the image, where those windows cover a large part of it, and works up
# through $K$ sizes ("octaves"), each $s \approx 1.4$ times larger than the one before: octave $k$ has
#
# $$(H_k, W_k) = \operatorname{round}\!\left(\frac{(H, W)}{s^{K-1-k}}\right), \quad k = 0, \dots, K-1 ,$$
#
# so the last is the image itself. At each octave the *detail* dreamed so far (the dreamed image minus the
# plain image at that size) is enlarged and added to the next octave's plain image, so large patterns found
# early are refined by later octaves instead of being dreamed again.
#
# A network cannot see images that are too small: below some size the deep layers have almost no positions
# left, and the dream would be a few blurred pixels. So an octave whose short side would fall below
# **32 pixels is left out**: a small image gets fewer octaves than asked for (always the largest ones). An
# image whose own short side is below 32 pixels cannot be dreamed on at all.
#
# ### Exercise 2 · `octave_sizes`
#
# Return the list of $(H_k, W_k)$ from coarse to fine, as Python `int`s (`round(...)` gives an `int`),
# without the octaves whose short side is below 32. For an image whose short side is below 32, raise a
# `ValueError` that says so.

# %% [solution] id=octave_sizes
def octave_sizes(height, width, *, octaves=4, scale=1.4):
    r"""The image sizes of DeepDream's octaves, coarse to fine: :math:`\mathrm{round}((H, W) / s^{K-1-k})`.

    Args:
        height, width: the size of the image, the last octave.
        octaves: :math:`K \ge 1`, the number of sizes.
        scale: :math:`s > 1`, the factor between consecutive octaves.

    Returns:
        A list of ``octaves`` pairs ``(H_k, W_k)`` of ints, the last one ``(height, width)``.
    """
    ### BEGIN SOLUTION
    if min(height, width) < 32:
        raise ValueError(f"an image of {width}x{height} pixels is too small to dream on; the short side must be at "
                         "least 32 pixels.")
    sizes = []
    for k in range(octaves):
        factor = scale ** (octaves - 1 - k)
        sizes.append((round(height / factor), round(width / factor)))
    return [size_ for size_ in sizes if min(size_) >= 32]
    ### END SOLUTION

# %% [check] id=check_octave_sizes points=2
result = octave_sizes(300, 451)
checks.check_type(result, list, name="octave_sizes(300, 451)")
checks.check_true(len(result) == 4, f"octave_sizes(300, 451) should give 4 sizes (octaves=4), got {len(result)}.")
checks.check_equal(result[-1], (300, 451), name="the last octave of octave_sizes(300, 451)",
                   hint="The last octave is the image itself.")
checks.check_true(result[0][0] < result[-1][0], "octave_sizes should go from coarse (small) to fine (large).")
checks.check_equal(result, dream.octave_sizes(300, 451), name="octave_sizes(300, 451)",
                   hint="Divide by scale ** (octaves - 1 - k) and round.")
checks.check_equal(octave_sizes(200, 160, octaves=3, scale=1.3), dream.octave_sizes(200, 160, octaves=3, scale=1.3),
                   name="octave_sizes(200, 160, octaves=3, scale=1.3)")
checks.check_equal(octave_sizes(48, 64), [(34, 46), (48, 64)], name="octave_sizes(48, 64)",
                   hint="48 / 1.4 = 34 fits; 48 / 1.4**2 = 24 is below 32 pixels, so that octave is left out.")
checks.check_true(all(type(v) is int for size_ in result for v in size_), "the sizes should be Python ints (round(...)).")
checks.passed("octave_sizes")
### BEGIN HIDDEN TESTS
for args, kwargs in [((512, 512), {}), ((97, 1000), {"octaves": 2}), ((640, 480), {"octaves": 1}),
                     ((1080, 1920), {"octaves": 6, "scale": 1.3}), ((333, 222), {"octaves": 5, "scale": 1.5})]:
    checks.check_equal(octave_sizes(*args, **kwargs), dream.octave_sizes(*args, **kwargs),
                       name=f"octave_sizes{args} with {kwargs}")
checks.check_equal(octave_sizes(64, 80, octaves=1), [(64, 80)], name="octave_sizes(64, 80, octaves=1)")
checks.check_equal(octave_sizes(32, 500, octaves=3), [(32, 500)], name="octave_sizes(32, 500, octaves=3)")
try:
    octave_sizes(31, 400)
    refused = False
except ValueError:
    refused = True
checks.check_true(refused, "octave_sizes(31, 400) should raise a ValueError: the short side is below 32 pixels.")
### END HIDDEN TESTS

# %% [markdown]
# `dream.dream(image, extractor, config)` runs the whole loop: for each octave, `config.steps` ascent steps,
# each between a random jitter and its undoing, then the detail goes up to the next octave. The row below
# dreams the same photo at `relu4_1` three ways: plain steps on the full image, the same with jitter, and
# with jitter and octaves (the same number of steps in every column).
#
# *With the pretrained network*, the plain ascent gives a fine, even texture with a faint grid; jitter
# removes the grid; octaves add large swirls, eyes and fur-like structures at several scales, following the
# shapes of the photo. *With the untrained stand-in*, the differences in scale and regularity are still
# visible, but the patterns are those of random filters.

# %%
K = len(dream.octave_sizes(*photo.shape[-2:], octaves=dream_settings().octaves))  # octaves that fit this photo
steps_total = K * dream_settings().steps  # every column takes the same number of steps
variants = {
    "no jitter, one octave": dict(jitter=0, octaves=1, steps=steps_total),
    "jitter, one octave": dict(octaves=1, steps=steps_total),
    f"jitter, {K} octaves": dict(),
}
dreams = {name: dream.dream(photo, extractors["relu4_1"], dream_settings(layer="relu4_1", **change), progress=False)
          for name, change in variants.items()}
show_row([photo] + [r.image for r in dreams.values()], ["photo"] + list(dreams), "DeepDream at relu4_1")

# %% [markdown]
# ### Written question · octaves
#
# Answer in a few sentences in the cell below (double-click it to edit); your instructor grades it by hand.
#
# **Question (2 points).** A unit of `relu4_1` sees a window of 68 × 68 pixels of its input, whatever the
# image. How can a dream at `relu4_1` with octaves still contain patterns much larger than 68 pixels? Estimate
# how large, for $K = 4$ octaves with $s = 1.4$.

# %% [written] id=written_octaves points=2
# The window is 68 pixels *of the image the network is given*. At octave $k$ that image is $s^{K-1-k}$ times
# smaller than the final one, so a window there covers $68\,s^{K-1-k}$ pixels of the full-size picture: at
# the first octave $68 \cdot 1.4^3 \approx 190$ pixels. Patterns grown there are enlarged with the detail and
# added to each larger octave, which refines them with smaller windows instead of dreaming them again. So the
# final dream holds patterns of about 190, 130, 95 and 68 pixels at once; on the full image alone every
# pattern would be at most about 68 pixels across.

# %% [markdown]
# ## 3 · What the layers want to see
#
# Now the same dream at five depths. *With the pretrained network* this is the famous picture: `relu1_1`
# and `relu2_1` amplify colours, edges and fine stripes; `relu3_1` grows textures (scales, meshes, fur);
# `relu4_1` grows repeated parts (eyes, wheels, leaves, architectural arches); `relu5_1` grows whole object
# parts, most often dog and bird heads, since ImageNet has 120 dog breeds. It is the same progression from
# simple to complex that notebook 05 found in the feature maps, now drawn by the network itself. *With the
# untrained network*, every layer amplifies the patterns of random filters: colour noise early, blotches
# later, and no objects anywhere.

# %%
by_layer = [dream.dream(photo, extractors[layer], dream_settings(layer=layer), progress=False)
            for layer in DREAM_LAYERS]
show_row([r.image for r in by_layer], list(DREAM_LAYERS), "DeepDream from shallow to deep layers")
print("objective, first → last step:", {layer: f"{r.history[0]:.3g} → {r.history[-1]:.3g}"
                                        for layer, r in zip(DREAM_LAYERS, by_layer, strict=True)})

# %% [markdown]
# **One channel.** The mean over a whole layer mixes hundreds of filters. Restricting the objective to one
# channel (`channel=k`) shows what a *single* filter responds to; with pretrained weights, neighbouring
# channels of `relu4_1` give strikingly different motifs.

# %%
whole_layer = dreams[f"jitter, {K} octaves"]  # section 2's dream of the whole layer, with the same settings
channels = [0, 1]
per_channel = [dream.dream(photo, extractors["relu4_1"], dream_settings(layer="relu4_1", channel=k),
                           progress=False).image for k in channels]
show_row([whole_layer.image] + per_channel, ["relu4_1, all channels"] + [f"relu4_1, channel {k}" for k in channels],
         "the whole layer, and one filter at a time")

# %% [markdown]
# **A guide image.** Instead of "more of whatever is there", the dream can be steered towards another
# image's features: with the guide's features $g_j$ at the same layer, each position $i$ of the dream looks
# for its best match among them, and the objective is the mean of those matches,
# $\mathcal{D}_{guide} = \frac{1}{M}\sum_i \max_j f_i^\top g_j$ (the `objective_guide` of Mordvintsev et
# al.'s notebook). *With the pretrained network*, the photo grows the guide's motifs, here the mosaic's
# coloured cells and dark leading, instead of the unguided dream's. *With the untrained stand-in* the guided
# dream looks much like the unguided one: random filters give the guide little to pass on.

# %%
guided = dream.dream(photo, extractors["relu4_1"], dream_settings(layer="relu4_1"), guide=painting, progress=False)
show_row([photo, painting, whole_layer.image, guided.image], ["photo", "guide: mosaic", "no guide", "guided by the mosaic"],
         "DeepDream with a guide image (relu4_1)")

# %% [markdown]
# # Part B · Style from statistics
#
# ## 4 · Mean and standard deviation per channel
#
# Notebook 06 described a painting's style by the Gram matrix of each layer, $C \times C$ numbers. Huang &
# Belongie (2017) observed that far fewer numbers carry much of it: for each channel $c$ of a layer, the
# **mean** and the **standard deviation** of its activations over all positions,
#
# $$\mu_c(F) = \frac{1}{HW}\sum_{i,j} F_{cij}, \qquad
# \sigma_c(F) = \sqrt{\frac{1}{HW}\sum_{i,j}\left(F_{cij} - \mu_c(F)\right)^2 + \epsilon} ,$$
#
# with a small $\epsilon = 10^{-5}$ that keeps $\sigma$ away from 0 (and its gradient finite) for a channel
# that is constant. Instance normalisation, the trick that made Johnson et al.'s networks of notebook 07
# work well (Ulyanov et al., 2016), removes exactly these statistics from every image: that is why it
# removes the style of the content photo. Like the Gram matrix, they ignore *where* things are.
#
# The **mean/std style loss** of one layer compares them between the generated image's features $F$ and the
# painting's $S$ (Li et al., 2017 call it "BN statistics matching"):
#
# $$\mathcal{L}_{\mu\sigma}(F, S) = \sum_c \left(\mu_c(F) - \mu_c(S)\right)^2 + \left(\sigma_c(F) - \sigma_c(S)\right)^2 ,$$
#
# averaged over the images of a batch. (Huang & Belongie use the Euclidean norms of the two differences,
# without squaring; the square is smooth at 0, and is what we use.) `statistics.mean_std(F)` returns both
# statistics, each of shape $(N, C)$.
#
# ### Exercise 3 · `mean_std_loss`
#
# Write it for `F` of shape (N, C, H, W) and `S` of shape (N or 1, C, H', W') (the painting may have another
# size). Compute the statistics yourself: `F.mean(dim=(2, 3))` and `F.var(dim=(2, 3), unbiased=False)`
# (biased: divide by $HW$). Sum over channels, then average over the batch. Stay in torch throughout: the
# loss is optimised through its gradient.

# %% [solution] id=mean_std_loss
def mean_std_loss(F, S, *, eps=1e-5):
    r"""The mean/std style loss :math:`\sum_c (\mu_c(F) - \mu_c(S))^2 + (\sigma_c(F) - \sigma_c(S))^2`, batch-averaged.

    Args:
        F: activations of the generated images, (N, C, H, W).
        S: activations of the style images, (N, C, H', W') or (1, C, H', W').
        eps: :math:`\epsilon` in :math:`\sigma = \sqrt{\mathrm{var} + \epsilon}`.

    Returns:
        A 0-dim tensor: summed over channels, averaged over the batch.
    """
    ### BEGIN SOLUTION
    mu_F, mu_S = F.mean(dim=(2, 3)), S.mean(dim=(2, 3))  # (N, C), (N or 1, C)
    sigma_F = (F.var(dim=(2, 3), unbiased=False) + eps).sqrt()
    sigma_S = (S.var(dim=(2, 3), unbiased=False) + eps).sqrt()
    per_image = ((mu_F - mu_S) ** 2 + (sigma_F - sigma_S) ** 2).sum(dim=1)  # (N,)
    return per_image.mean()
    ### END SOLUTION

# %% [check] id=check_mean_std_loss points=3
with checks.no_tf32():
    g = torch.Generator().manual_seed(2)
    F_ = torch.rand(2, 4, 3, 5, generator=g, dtype=torch.float64, requires_grad=True)
    S_ = 2 * torch.rand(1, 4, 6, 6, generator=g, dtype=torch.float64)
    result = mean_std_loss(F_, S_)
    checks.check_type(result, torch.Tensor, name="mean_std_loss(F, S)")
    checks.check_shape(result, (), name="mean_std_loss(F, S)")
    checks.check_close(result, statistics.mean_std_loss(F_, S_), rtol=1e-8, name="mean_std_loss(F, S)",
                       factors={"a sum over the batch instead of the mean (N = 2)": 2.0,
                                "a mean over the channels instead of the sum (C = 4)": 1 / 4})
    checks.check_close(mean_std_loss(F_, F_), 0.0, atol=1e-12, name="mean_std_loss(F, F), which should be 0")
    checks.check_true(result.requires_grad, "mean_std_loss(F, S) does not depend on F for autograd: was F detached "
                      "or turned into numpy on the way? Stay with torch operations.")
    grad, = torch.autograd.grad(result, F_)
    want, = torch.autograd.grad(statistics.mean_std_loss(F_, S_), F_)
    checks.check_close(grad, want, rtol=1e-7, atol=1e-12, name="the gradient of mean_std_loss(F, S) with respect to F")
checks.passed("mean_std_loss")
### BEGIN HIDDEN TESTS
with checks.no_tf32():
    g = torch.Generator().manual_seed(42)
    for shape_F, shape_S in [((1, 1, 1, 3), (1, 1, 2, 2)), ((3, 6, 4, 5), (3, 6, 4, 5)), ((4, 8, 7, 2), (1, 8, 3, 9))]:
        F_ = torch.randn(shape_F, generator=g, dtype=torch.float64)
        S_ = torch.randn(shape_S, generator=g, dtype=torch.float64)
        for eps in (1e-5, 0.1):
            checks.check_close(mean_std_loss(F_, S_, eps=eps), statistics.mean_std_loss(F_, S_, eps=eps), rtol=1e-10,
                               name=f"mean_std_loss for F {shape_F}, S {shape_S}, eps={eps}")
    # shifting every channel by the same constant c adds C c^2; shuffling positions changes nothing
    F_ = torch.randn(2, 5, 4, 4, generator=g, dtype=torch.float64)
    checks.check_close(mean_std_loss(F_ + 0.5, F_), 5 * 0.25, rtol=1e-10, name="mean_std_loss(F + 0.5, F) for C = 5")
    perm = torch.randperm(16, generator=g)
    shuffled = F_.reshape(2, 5, 16)[:, :, perm].reshape(2, 5, 4, 4)
    checks.check_close(mean_std_loss(shuffled, F_), 0.0, atol=1e-12, name="mean_std_loss of shuffled positions")
### END HIDDEN TESTS

# %% [markdown]
# ## 5 · Adaptive instance normalisation (AdaIN)
#
# If the style is in $\mu$ and $\sigma$, we can *transplant* it: normalise the photo's features channel by
# channel, then give them the painting's statistics. Huang & Belongie (2017) call it **adaptive instance
# normalisation**:
#
# $$\operatorname{AdaIN}(x, y) = \sigma(y)\,\frac{x - \mu(x)}{\sigma(x)} + \mu(y),$$
#
# per image and channel, with $x$ the content features and $y$ the style features. The result keeps *where*
# the photo's features are strong and weak, and has exactly the painting's mean and (up to $\epsilon$)
# standard deviation in every channel. It has no parameters to learn.
#
# ### Exercise 4 · `adain`
#
# Write it for `content_features` (N, C, H, W) and `style_features` (N or 1, C, H', W'), with $\sigma$ as in
# section 4 (biased variance plus $\epsilon$, then the square root). Keep the statistics' shape $(N, C, 1, 1)$
# (`keepdim=True`) so that they broadcast over the positions.

# %% [solution] id=adain
def adain(content_features, style_features, *, eps=1e-5):
    r"""Adaptive instance normalisation: :math:`\sigma(y)\,(x - \mu(x))/\sigma(x) + \mu(y)` per image and channel.

    Args:
        content_features: :math:`x`, (N, C, H, W).
        style_features: :math:`y`, (N, C, H', W') or (1, C, H', W').
        eps: :math:`\epsilon` in :math:`\sigma = \sqrt{\mathrm{var} + \epsilon}`.

    Returns:
        A tensor of shape (N, C, H, W).
    """
    ### BEGIN SOLUTION
    mu_x = content_features.mean(dim=(2, 3), keepdim=True)  # (N, C, 1, 1)
    sigma_x = (content_features.var(dim=(2, 3), unbiased=False, keepdim=True) + eps).sqrt()
    mu_y = style_features.mean(dim=(2, 3), keepdim=True)  # (N or 1, C, 1, 1)
    sigma_y = (style_features.var(dim=(2, 3), unbiased=False, keepdim=True) + eps).sqrt()
    return sigma_y * (content_features - mu_x) / sigma_x + mu_y
    ### END SOLUTION

# %% [check] id=check_adain points=3
with checks.no_tf32():
    g = torch.Generator().manual_seed(3)
    x_ = torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    y_ = 3 + 2 * torch.randn(1, 3, 6, 2, generator=g, dtype=torch.float64, requires_grad=True)
    result = adain(x_, y_)
    checks.check_type(result, torch.Tensor, name="adain(x, y)")
    checks.check_shape(result, (2, 3, 4, 5), name="adain(x, y) for x (2, 3, 4, 5) and y (1, 3, 6, 2)")
    mu_r, sigma_r = statistics.mean_std(result.detach(), eps=0.0)
    mu_y, sigma_y = statistics.mean_std(y_.detach())
    checks.check_close(mu_r, mu_y.expand(2, 3), rtol=1e-8, name="the channel means of adain(x, y) (should be y's)")
    checks.check_close(sigma_r, sigma_y.expand(2, 3), rtol=1e-4,
                       name="the channel standard deviations of adain(x, y) (should be y's)")
    checks.check_close(result, statistics.adain(x_, y_), rtol=1e-8, atol=1e-12, name="adain(x, y)")
    checks.check_true(result.requires_grad, "adain(x, y) does not depend on x and y for autograd: was something "
                      "detached or turned into numpy? Stay with torch operations.")
    w_ = torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64)
    got = torch.autograd.grad((w_ * result).sum(), (x_, y_))
    want = torch.autograd.grad((w_ * statistics.adain(x_, y_)).sum(), (x_, y_))
    for got_, want_, which in zip(got, want, ("content_features", "style_features"), strict=True):
        checks.check_close(got_, want_, rtol=1e-7, atol=1e-12, name=f"the gradient of adain(x, y) for {which}")
checks.passed("adain")
### BEGIN HIDDEN TESTS
with checks.no_tf32():
    g = torch.Generator().manual_seed(43)
    for shape_x, shape_y in [((1, 1, 2, 2), (1, 1, 3, 1)), ((3, 5, 4, 4), (3, 5, 2, 7)), ((2, 8, 1, 9), (1, 8, 5, 5))]:
        x_ = torch.randn(shape_x, generator=g, dtype=torch.float64)
        y_ = torch.randn(shape_y, generator=g, dtype=torch.float64) * 4 - 1
        for eps in (1e-5, 0.5):
            checks.check_close(adain(x_, y_, eps=eps), statistics.adain(x_, y_, eps=eps), rtol=1e-9, atol=1e-12,
                               name=f"adain for x {shape_x}, y {shape_y}, eps={eps}")
    x_ = torch.randn(2, 4, 5, 5, generator=g, dtype=torch.float64)
    checks.check_close(adain(x_, x_, eps=1e-5), x_, rtol=1e-9, atol=1e-9, name="adain(x, x), which gives x back")
    # each image of the batch is normalised on its own
    y_ = torch.randn(1, 4, 3, 3, generator=g, dtype=torch.float64)
    checks.check_close(adain(x_, y_)[1:], adain(x_[1:], y_), rtol=1e-10, name="adain of the second image alone")
    checks.check_dtype(adain(x_.float(), y_.float()), torch.float32, name="adain of float32 features")
### END HIDDEN TESTS

# %% [markdown]
# AdaIN applied to the photo's and the painting's `relu4_1` features: the channel statistics now match the
# painting's, and the mean/std loss between them falls to about 0, while the Gram loss of notebook 06 does
# not quite (correlations *between* channels are not transplanted).

# %%
F4 = vgg.VGGFeatures(["relu4_1"], backbone=backbone).to(dev)
with torch.no_grad():
    c4, s4 = F4(photo)["relu4_1"], F4(painting)["relu4_1"]
    t4 = adain(c4, s4)
for name, feats in [("photo", c4), ("AdaIN(photo, painting)", t4)]:
    print(f"{name:24s} mean/std loss to the painting {statistics.mean_std_loss(feats, s4).item():10.4g}   "
          f"Gram loss to the painting {losses.style_layer_loss(feats, losses.gram_matrix(s4)).item():10.4g}")

# %% [markdown]
# ### Written question · what AdaIN does not transplant
#
# **Question (2 points).** AdaIN gives the photo's features exactly the painting's mean and standard
# deviation in every channel, yet the Gram loss to the painting does not fall to 0. Which entries of $G/M$
# (with $M = HW$) does AdaIN match, and which not? Write $G_{cc'}/M$ with means and covariances.

# %% [written] id=written_adain_gram points=2
# $G_{cc'}/M = \frac1M \sum_k F_{ck} F_{c'k} = \operatorname{cov}(c, c') + \mu_c \mu_{c'}$, the average product of
# two channels over the positions. On the diagonal that is $\sigma_c^2 + \mu_c^2$, which AdaIN sets to the
# painting's: the diagonal matches (up to the small $\epsilon$). Off the diagonal, AdaIN rescales and shifts each
# channel on its own, so the correlation between two channels stays the photo's: $\operatorname{cov}(c, c')$
# becomes $\sigma_c(S)\,\sigma_{c'}(S)$ (the painting's standard deviations) times the photo's correlation
# coefficient, not the painting's covariance. Those $C(C - 1)$ off-diagonal entries are what the Gram loss
# still measures.

# %% [markdown]
# ## 6 · Why the Gram loss works: a maximum mean discrepancy
#
# Look at a layer's features as a **sample**: each of the $M = HW$ positions gives one vector
# $\vec x_k \in \mathbb{R}^{C}$ (a column of $F^l$). The photo gives one cloud of $M$ points, the painting
# another, $\vec y_k$. Two images have the same style, in this view, when their two clouds come from the
# same distribution, wherever the individual points are in the image.
#
# The **maximum mean discrepancy** (MMD; Gretton et al., 2012) measures the distance between two
# distributions from samples, through a kernel $k(\vec x, \vec y)$. Its biased estimate from samples
# $X = (\vec x_1, \dots, \vec x_M)$ and $Y = (\vec y_1, \dots, \vec y_{M'})$ is
#
# $$\mathrm{MMD}^2(X, Y) = \frac{1}{M^2}\sum_{k,k'} k(\vec x_k, \vec x_{k'}) + \frac{1}{M'^2}\sum_{k,k'} k(\vec y_k, \vec y_{k'})
# - \frac{2}{M M'}\sum_{k,k'} k(\vec x_k, \vec y_{k'}) .$$
#
# With the **linear kernel** $k(\vec x, \vec y) = \vec x^\top \vec y$ it is $\lVert \bar{\vec x} - \bar{\vec y} \rVert^2$:
# it compares only the means, the $\mu$ of section 4. Li et al. (2017) noticed that with the **quadratic
# kernel** $k(\vec x, \vec y) = (\vec x^\top \vec y)^2$ it is the Gram loss. Here is why. Write $F$ for the
# $C \times M$ matrix with columns $\vec x_k$, and $G = F F^\top$. Then
# $\sum_{k,k'} (\vec x_k^\top \vec x_{k'})^2 = \lVert F^\top F \rVert_F^2 = \operatorname{tr}(F^\top F F^\top F)
# = \operatorname{tr}(F F^\top F F^\top) = \lVert G \rVert_F^2$, and in the same way the cross term is
# $\sum_{k,k'} (\vec x_k^\top \vec y_{k'})^2 = \lVert F^\top S \rVert_F^2 = \langle G, A \rangle$ with $A = S S^\top$. So
#
# $$\mathrm{MMD}^2_{quad}(X, Y) = \left\lVert \frac{G}{M} - \frac{A}{M'} \right\rVert_F^2 .$$
#
# When both images have the same number of positions, $M = M' = M_l$, compare with notebook 06's
# $E_l = \frac{1}{4 N_l^2 M_l^2}\sum_{ij}(G_{ij} - A_{ij})^2$ ($N_l = C$):
#
# $$E_l = \frac{1}{4 N_l^2}\, \mathrm{MMD}^2_{quad}(X, Y).$$
#
# Matching Gram matrices *is* matching the distributions of feature vectors, as seen through the
# quadratic kernel: all their second moments. When the sizes differ, the MMD compares the Gram matrices
# *per position*, $G/M$ against $A/M'$, while $E_l$ with the painting's raw $A$ compares $G/M$ with $A/M$:
# it asks the generated image for the painting's *total* correlations, which depend on the painting's size.
# That is one reason why style transfer changes when the painting is resized.
#
# ### Exercise 5 · `mmd2`
#
# Write the biased $\mathrm{MMD}^2$ for samples as **rows**: `X` is (M, C), `Y` is (M', C), with
# `kernel="quadratic"` or `kernel="linear"`. Kernel matrices are one product away: `X @ Y.T` is the
# (M, M') matrix of all $\vec x_k^\top \vec y_{k'}$. (The $M \times M$ matrices are fine at these sizes; the
# identity above gives a cheaper way for large $M$.)

# %% [solution] id=mmd2
def mmd2(X, Y, *, kernel="quadratic"):
    r"""The biased squared maximum mean discrepancy between samples ``X`` and ``Y`` (rows are samples).

    :math:`\frac{1}{M^2}\sum k(x, x') + \frac{1}{M'^2}\sum k(y, y') - \frac{2}{M M'}\sum k(x, y)` with
    :math:`k(x, y) = (x^\top y)^2` (``"quadratic"``) or :math:`x^\top y` (``"linear"``).

    Args:
        X: samples of shape (M, C).
        Y: samples of shape (M', C).
        kernel: ``"quadratic"`` or ``"linear"``.

    Returns:
        A 0-dim tensor.
    """
    ### BEGIN SOLUTION
    if kernel == "quadratic":
        def k(A, B):
            return (A @ B.T) ** 2  # (M_A, M_B)
    elif kernel == "linear":
        def k(A, B):
            return A @ B.T
    else:
        raise ValueError(f"kernel must be 'quadratic' or 'linear', got {kernel!r}")
    return k(X, X).mean() + k(Y, Y).mean() - 2 * k(X, Y).mean()
    ### END SOLUTION

# %% [check] id=check_mmd2 points=3
with checks.no_tf32():
    g = torch.Generator().manual_seed(4)
    X_ = torch.randn(7, 3, generator=g, dtype=torch.float64, requires_grad=True)
    Y_ = torch.randn(5, 3, generator=g, dtype=torch.float64) + 0.5
    result = mmd2(X_, Y_)
    checks.check_type(result, torch.Tensor, name="mmd2(X, Y)")
    checks.check_shape(result, (), name="mmd2(X, Y)")
    checks.check_close(result, statistics.mmd2(X_, Y_), rtol=1e-9, name="mmd2(X, Y) with the quadratic kernel")
    checks.check_close(mmd2(X_, Y_, kernel="linear"), ((X_.mean(0) - Y_.mean(0)) ** 2).sum(), rtol=1e-9,
                       name="mmd2(X, Y, kernel='linear'), which equals |mean(X) - mean(Y)|^2")
    checks.check_close(mmd2(X_, X_), 0.0, atol=1e-10, name="mmd2(X, X), which should be 0")
    checks.check_true(result.requires_grad, "mmd2(X, Y) does not depend on X for autograd: was something detached "
                      "or turned into numpy? Stay with torch operations.")
    grad, = torch.autograd.grad(result, X_)
    want, = torch.autograd.grad(statistics.mmd2(X_, Y_), X_)
    checks.check_close(grad, want, rtol=1e-7, atol=1e-12, name="the gradient of mmd2(X, Y) with respect to X")
checks.passed("mmd2")
### BEGIN HIDDEN TESTS
with checks.no_tf32():
    g = torch.Generator().manual_seed(44)
    for M, M2, C in [(1, 1, 1), (10, 3, 4), (6, 20, 9)]:
        X_ = torch.randn(M, C, generator=g, dtype=torch.float64)
        Y_ = 2 * torch.rand(M2, C, generator=g, dtype=torch.float64)
        for kernel in ("quadratic", "linear"):
            checks.check_close(mmd2(X_, Y_, kernel=kernel), statistics.mmd2(X_, Y_, kernel=kernel), rtol=1e-10,
                               atol=1e-14, name=f"mmd2 of {M} and {M2} samples in {C} dimensions, {kernel}")
            checks.check_close(mmd2(X_, Y_, kernel=kernel), mmd2(Y_, X_, kernel=kernel), rtol=1e-10, atol=1e-14,
                               name=f"mmd2 is symmetric ({kernel})")
        # the quadratic kernel sees second moments only: flipping the sign of samples changes nothing
        checks.check_close(mmd2(-X_, Y_), mmd2(X_, Y_), rtol=1e-10, atol=1e-14, name="mmd2(-X, Y) versus mmd2(X, Y)")
    for kernel in ("quadratic", "linear"):
        checks.check_close(mmd2(X_[:1], X_[:1], kernel=kernel), 0.0, atol=1e-12, name=f"mmd2 of one sample with itself ({kernel})")
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 6 · `gram_style_as_mmd`: the constant, checked
#
# Now put the identity to work. Write the Gram style loss $E_l$ of notebook 06 **through the MMD**: for
# each image $n$ of the batch, take the positions of `F[n]` (C, H, W) as rows, $X$ of shape (M, C), and those
# of the style features $Y$ (of `S[n]`, or of `S[0]` when `S` holds one image), and add up
# $\mathrm{MMD}^2_{quad}(X, Y) / (4 N_l^2)$ over the batch, with $N_l = C$. Use the library's `statistics.mmd2`,
# so that this exercise does not depend on your answer to the previous one. The check compares it with
# `losses.style_layer_loss(F, losses.gram_matrix(S))` in float64: if the constant is right, they agree to
# about 12 digits. (A common slip: `F[n].reshape(-1, C)`, which mixes channels and positions; reshape to
# (C, M) first, then transpose.)

# %% [solution] id=gram_style_as_mmd
def gram_style_as_mmd(F, S):
    r"""The Gram style loss :math:`E_l` of one layer computed as :math:`\mathrm{MMD}^2_{quad} / (4 N_l^2)`, summed over the batch.

    Args:
        F: activations of the generated images, (N, C, H, W).
        S: activations of the style images, (N or 1, C, H', W').

    Returns:
        A 0-dim tensor; equal to ``losses.style_layer_loss(F, losses.gram_matrix(S))`` when H' W' = H W.
    """
    ### BEGIN SOLUTION
    N, C = F.shape[:2]
    total = F.new_zeros(())
    for n in range(N):
        X = F[n].reshape(C, -1).T  # (M, C): positions as rows
        Y = S[n if S.shape[0] == N else 0].reshape(C, -1).T  # (M', C)
        total = total + statistics.mmd2(X, Y, kernel="quadratic") / (4 * C ** 2)
    return total
    ### END SOLUTION

# %% [check] id=check_gram_style_as_mmd points=2
with checks.no_tf32():
    g = torch.Generator().manual_seed(5)
    F_ = torch.rand(1, 4, 3, 5, generator=g, dtype=torch.float64, requires_grad=True)
    S_ = torch.rand(1, 4, 5, 3, generator=g, dtype=torch.float64)
    result = gram_style_as_mmd(F_, S_)
    checks.check_type(result, torch.Tensor, name="gram_style_as_mmd(F, S)")
    checks.check_shape(result, (), name="gram_style_as_mmd(F, S)")
    checks.check_close(result, losses.style_layer_loss(F_, losses.gram_matrix(S_)), rtol=1e-10,
                       name="gram_style_as_mmd(F, S) versus the Gram loss E_l of notebook 06 (4 channels, 15 positions)",
                       factors={"a factor 1/(N_l^2 M_l^2) instead of 1/N_l^2 (M_l = 15)": 1 / 15 ** 2,
                                "a missing 1/4": 4.0, "a missing 1/N_l^2 (N_l = 4)": 16.0})
    checks.check_true(result.requires_grad, "gram_style_as_mmd(F, S) does not depend on F for autograd: was "
                      "something detached or turned into numpy?")
    F2_, S2_ = torch.rand(2, 3, 4, 4, generator=g, dtype=torch.float64), torch.rand(1, 3, 2, 8, generator=g, dtype=torch.float64)
    checks.check_close(gram_style_as_mmd(F2_, S2_), losses.style_layer_loss(F2_, losses.gram_matrix(S2_)), rtol=1e-10,
                       name="gram_style_as_mmd for a batch of 2 images and one style image (summed over the batch?)")
checks.passed("gram_style_as_mmd")
### BEGIN HIDDEN TESTS
with checks.no_tf32():
    g = torch.Generator().manual_seed(45)
    for shape_F, shape_S in [((1, 1, 1, 1), (1, 1, 1, 1)), ((3, 6, 2, 5), (3, 6, 5, 2)), ((2, 5, 3, 3), (1, 5, 6, 4))]:
        F_ = torch.rand(shape_F, generator=g, dtype=torch.float64)
        S_ = torch.rand(shape_S, generator=g, dtype=torch.float64)
        checks.check_close(gram_style_as_mmd(F_, S_), statistics.gram_style_as_mmd(F_, S_), rtol=1e-10, atol=1e-15,
                           name=f"gram_style_as_mmd for F {shape_F} and S {shape_S}")
        if shape_F[2] * shape_F[3] == shape_S[2] * shape_S[3]:
            checks.check_close(gram_style_as_mmd(F_, S_), losses.style_layer_loss(F_, losses.gram_matrix(S_)),
                               rtol=1e-10, atol=1e-15, name=f"the Gram-MMD identity for F {shape_F} and S {shape_S}")
    F_ = torch.rand(2, 3, 4, 4, generator=g, dtype=torch.float64)
    checks.check_close(gram_style_as_mmd(F_, F_), 0.0, atol=1e-14, name="gram_style_as_mmd(F, F)")
### END HIDDEN TESTS

# %% [markdown]
# The identity on the real network, in float64: the photo's and the painting's `relu3_1` features (the
# painting resized to the photo's size, so $M = M'$), through the Gram loss, through your
# `gram_style_as_mmd`, and the linear-kernel MMD that compares the means only.

# %%
F3 = vgg.VGGFeatures(["relu3_1"], backbone=backbone).to(dev)
painting_as_photo = torch.nn.functional.interpolate(painting, size=photo.shape[-2:], mode="bilinear", antialias=True)
with torch.no_grad():  # the painting resized to the photo's size, so that both have M_l positions
    Fp, Fs = F3(photo)["relu3_1"].double().cpu(), F3(painting_as_photo)["relu3_1"].double().cpu()
N_l, M_l = Fp.shape[1], Fp.shape[2] * Fp.shape[3]
E_l = losses.style_layer_loss(Fp, losses.gram_matrix(Fs))
by_mmd = gram_style_as_mmd(Fp, Fs)
X3, Y3 = Fp[0].reshape(N_l, M_l).T, Fs[0].reshape(N_l, M_l).T  # (M, C): positions as rows
print(f"relu3_1: N_l = {N_l} channels, M_l = {M_l} positions in both images")
print(f"E_l through Gram matrices = {E_l.item():.12g}")
print(f"MMD^2_quad / (4 N_l^2)    = {by_mmd.item():.12g}   relative difference {abs(by_mmd / E_l - 1).item():.1e}")
print(f"MMD^2_linear              = {mmd2(X3, Y3, kernel='linear').item():.6g}   (= |mean difference|^2: the means only)")

# %% [markdown]
# ### Written question · where things are
#
# **Question (2 points).** Why does the Gram matrix ignore *where* things are in an image? Explain it with
# the formula for $G$ and with the MMD view of this section, and say what, in style transfer, keeps the layout
# of the photo then.

# %% [written] id=written_gram_where points=2
# $G_{cc'} = \sum_k F_{ck} F_{c'k}$ sums the products of two channels over all positions $k$. Moving a
# pattern elsewhere, or shuffling the positions in any way, only reorders the terms of that sum, so $G$ does
# not change: it records which features occur together and how strongly, not where. In the MMD view the
# positions give a cloud of $M$ feature vectors, a sample from a distribution, and the MMD compares the two
# clouds through the kernel; a sample has no order, so the position each vector came from is lost. That is
# why the style loss transfers the painting's textures and colours without its layout. The layout of the
# result comes from the content loss, which compares features position by position.

# %% [markdown]
# ## 7 · Style transfer with other statistics, and with an AdaIN target
#
# Since the Gram loss is one choice of statistics, others can take its place in the optimisation of
# notebook 06. `stylize.StyleConfig(style_loss=...)` chooses the per-layer style term:
# `"gram"` (notebook 06), `"mean_std"` (section 4: $2C$ numbers per layer instead of $C^2$) or
# `"mmd_linear"` (the means alone). Li et al. (2017) found the mean/std statistics give results close to
# Gram matrices; the means alone transfer colours and little texture.
#
# AdaIN suggests another route with **no style loss at all**: compute the target $t = \operatorname{AdaIN}(F(\vec p), F(\vec a))$
# at `relu4_1` once, and optimise the image so that its features match $t$ with the content loss,
# $\tfrac12\lVert F(\vec x) - t \rVert^2$. The target has the photo's layout and the painting's statistics, so
# any painting works, and nothing is trained.
#
# The three losses grow differently with the size of the activations (the Gram loss as their fourth power,
# the statistics as their square), so each needs its own $\beta$: the cell gives each the $\beta$ that makes
# its style term as heavy, on the photo at the start, as the Gram term is with $\beta = 10^5$.
#
# *With the pretrained network* the Gram and mean/std losses give similar painterly versions of the photo
# (Li et al.'s finding), the means alone mostly move the colours, and the AdaIN target gives a softer
# version that keeps the photo's layout. *With the untrained stand-in* the runs still optimise (the losses
# fall), but the pictures do not look like paintings.

# %%
style_size, style_steps = max(48, profile.image_size // 3), max(2, profile.style_steps // 8)
small_photo = data.builtin_image("chelsea", size=style_size).to(dev)
small_painting = data.builtin_image("mosaic", size=style_size).to(dev)
STYLE_LAYERS = losses.GATYS_STYLE_LAYERS
style_extractor = vgg.VGGFeatures(("relu4_1", "relu4_2") + STYLE_LAYERS, backbone=backbone).to(dev)
with torch.no_grad():
    feats_photo, feats_painting = style_extractor(small_photo), style_extractor(small_painting)


def starting_style_loss(kind):
    """The style loss of the photo itself against the painting, measured with the statistic `kind`."""
    targets = {layer: statistics.style_target(feats_painting[layer], kind=kind) for layer in STYLE_LAYERS}
    return statistics.style_loss(feats_photo, targets, kind=kind).item()


# The three losses grow differently with the activations (the Gram loss as their fourth power, the others as
# their square), so one beta does not fit all: each gets the beta that gives its style term the same weight
# at the start (on the photo) as the Gram loss has with beta = 1e5, a strong style weight (notebook 06's
# largest), so that a short run from the photo shows the style.
gram_beta = 1e5
settings = {name: dict(style_loss=kind, beta=gram_beta * starting_style_loss("gram") / starting_style_loss(kind))
            for name, kind in [("Gram", "gram"), ("mean/std", "mean_std"), ("means only", "mmd_linear")]}
# AdaIN target: the content loss alone, towards adain(F(photo), F(painting)) at relu4_1; no style term.
settings["AdaIN target"] = dict(content_target="adain", content_layers=("relu4_1",), beta=0.0)
runs = {}
for name, options in settings.items():
    config = stylize.StyleConfig(size=style_size, steps=style_steps, seed=profile.seed, **options)
    runs[name] = stylize.stylize(small_photo, small_painting, config, extractor=style_extractor, show_progress=False)
    print(f"{name:12s} beta = {config.beta:<9.3g} {runs[name].steps} L-BFGS steps in {runs[name].loop_seconds:.1f} s")
show_row([small_photo] + [r.image for r in runs.values()], ["photo"] + list(runs), "style from statistics")

# %% [markdown]
# ## 8 · What a real-time AdaIN network would take
#
# The optimisation above takes one run per photo. Huang & Belongie make AdaIN instant by training a
# **decoder** $g$ that turns AdaIN's features back into an image: $T(\vec p, \vec a) = g(\operatorname{AdaIN}(f(\vec p), f(\vec a)))$,
# with $f$ VGG19 up to `relu4_1` (fixed) and $g$ its mirror image (convolutions and nearest-neighbour
# upsampling, no normalisation layers). It is trained with the content loss between $f(T)$ and the AdaIN
# target plus the mean/std loss at `relu1_1` … `relu4_1`, over pairs of a photo and a painting. The paper
# used about 80,000 photos (MS-COCO) and 80,000 paintings (WikiArt), batches of 8 pairs and 160,000
# iterations. Once trained, *any* painting, even one never seen, is applied in one forward pass, fast enough
# for video on a GPU. Unlike notebook 07's networks, one decoder serves every style.
#
# That training is not part of this course: it needs the two image collections (tens of gigabytes) and far
# more computation than a laptop has. The cell below measures one forward and backward pass of the encoder
# alone on this machine, and multiplies it out.

# %%
x = torch.rand(1, 3, 256, 256, device=dev, requires_grad=True)
start = time.perf_counter()
F4(x)["relu4_1"].sum().backward()
seconds = time.perf_counter() - start
# per training image: the encoder on the photo and the painting, the decoder, and the encoder again on T
lower_bound = 2 * seconds * 8 * 160_000
print(f"encoder forward + backward at 256 x 256 on {dev}: {seconds:.2f} s; 160,000 batches of 8 would take at "
      f"least {lower_bound / 86_400:.0f} days here.")

# %% [markdown]
# ## 9 · Lecture demo
#
# The dream explorer below changes the layer, the channel, the number of octaves and the step size. On a
# CUDA GPU it dreams each time a control changes; on a CPU that would take too long, so it shows images from
# a grid computed once in advance (`nstlab present --prepare`, or
# `nstlab.widgets.dream_explorer.prepare()`, a few minutes, cached in your user cache folder, never in the
# repository). Until the grid exists, it says how to make it.

# %%
explorer = dream_explorer()
display(explorer)

# %% [markdown]
# ## Summary
#
# * DeepDream is gradient **ascent** on the pixels of a layer's (or one channel's) mean activation; each step
#   is normalised by the gradient's mean absolute value, so the step size means the same at every layer.
# * **Jitter** (a random roll before each step, undone after) removes the network's sampling grid from the
#   dream; **octaves** (coarse to fine, the detail carried up) grow patterns at several scales.
# * Shallow layers want colours and edges, deep layers textures, parts and objects: the network draws its
#   own hierarchy. One channel shows one filter's motif; a guide image steers the dream towards its features.
# * Per-channel **mean and standard deviation** carry much of a style; **AdaIN** transplants them from one
#   image's features to another's.
# * The Gram loss is a squared **MMD** with the kernel $(x^\top y)^2$: $E_l = \mathrm{MMD}^2 / (4 N_l^2)$ when
#   both images have $M_l$ positions. The linear kernel compares the means only.
# * Style transfer works with these statistics instead of Gram matrices, and with an AdaIN target and the
#   content loss alone; a decoder trained on many photos and paintings makes it real time.
#
# **References.** A. Mordvintsev, C. Olah, M. Tyka, *Inceptionism: Going Deeper into Neural Networks*
# (Google Research blog, 2015). X. Huang, S. Belongie, *Arbitrary Style Transfer in Real-time with Adaptive
# Instance Normalization* (ICCV 2017). Y. Li, N. Wang, J. Liu, X. Hou, *Demystifying Neural Style Transfer*
# (IJCAI 2017). A. Gretton et al., *A Kernel Two-Sample Test* (JMLR 2012). D. Ulyanov, A. Vedaldi,
# V. Lempitsky, *Instance Normalization: The Missing Ingredient for Fast Stylization* (2016).
