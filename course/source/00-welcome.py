# %% [markdown]
# # 00 · Welcome to nstlab
#
# This course takes you from a single artificial neuron, the perceptron, to *neural style transfer*: painting
# a photograph in the style of another picture with a convolutional network. Every notebook explains one idea,
# shows it working, and then asks you to build it yourself.
#
# **In this notebook you will learn**
#
# 1. how the course stores images as tensors, and why the shape is $(N, 3, H, W)$;
# 2. where a computation runs (CPU or GPU) and how the course chooses;
# 3. what a *profile* is and why your notebook runs smaller on a laptop;
# 4. how exercises, check cells and grading work — by doing two warm-up exercises and answering two short
#    written questions;
# 5. whether the pretrained networks used later are on your machine.
#
# **Runtime** (fast profile): about 20 s on a 2-core CPU; GPU: not measured yet.

# %%
import numpy as np
import torch
import matplotlib.pyplot as plt

from nstlab import checks, data, device, images, profiles

profile = profiles.get_profile()
print(profiles.describe(profile))

# %% [markdown]
# ## 1 · Images are tensors
#
# A *tensor* is an $n$-dimensional array of numbers. The course keeps every image in one convention:
#
# * shape $(N, 3, H, W)$: a **batch** of $N$ images, **3** colour channels (red, green, blue), $H$ rows and
#   $W$ columns of pixels;
# * values of type `float32` between $0$ (dark) and $1$ (full brightness).
#
# Why channels first? Convolutional layers in PyTorch expect it, and a batch axis lets one call process many
# images at once. Why $[0, 1]$ and not $0 \dots 255$? Gradients and losses behave the same whatever file an
# image came from. Here is a built-in photo (nothing is downloaded: it ships with scikit-image).

# %%
photo = data.builtin_image("astronaut", size=profile.widget_size)
print("shape:", tuple(photo.shape), " dtype:", photo.dtype, " range:", (photo.min().item(), photo.max().item()))

fig, axes = plt.subplots(1, 4, figsize=(10, 2.8))
axes[0].imshow(photo[0].permute(1, 2, 0))  # matplotlib wants (H, W, 3)
axes[0].set_title("RGB")
for ax, channel, name in zip(axes[1:], range(3), ("red", "green", "blue"), strict=True):
    ax.imshow(photo[0, channel], cmap="gray", vmin=0, vmax=1)
    ax.set_title(f"{name} channel")
for ax in axes:
    ax.axis("off")
plt.show()

# %% [markdown]
# Files and libraries such as PIL or matplotlib hand you images the other way round: an array of shape
# $(H, W, 3)$ with whole numbers $0 \dots 255$ (`uint8`). Converting between the two is your first exercise.
#
# ### Exercise 1 · `array_to_tensor`
#
# Write `array_to_tensor(array)` that turns a `uint8` array of shape $(H, W, 3)$ into a `float32` tensor of
# shape $(1, 3, H, W)$ with values $x / 255$. Useful: `torch.from_numpy`, `.float()` or `.astype`,
# `.permute(...)` to reorder axes, `.unsqueeze(0)` to add the batch axis.

# %% [solution] id=array_to_tensor
def array_to_tensor(array):
    """Convert an 8-bit RGB array of shape (H, W, 3) to the course's image convention.

    Args:
        array: ``uint8`` array of shape (H, W, 3), values 0..255, as PIL and matplotlib give them.

    Returns:
        float32 tensor of shape (1, 3, H, W) with values in [0, 1].
    """
    ### BEGIN SOLUTION
    x = torch.from_numpy(array.astype(np.float32) / 255.0)  # (H, W, 3)
    return x.permute(2, 0, 1).unsqueeze(0)  # (1, 3, H, W)
    ### END SOLUTION

# %% [check] id=check_array_to_tensor points=2
# Check cell: run it after your solution. It compares your function with the library's reference.
rng = np.random.default_rng(0)
sample = rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
result = array_to_tensor(sample)
checks.check_type(result, torch.Tensor, name="array_to_tensor(sample)")
checks.check_shape(result, (1, 3, 5, 7), name="array_to_tensor(sample)")
checks.check_dtype(result, torch.float32, name="array_to_tensor(sample)")
checks.check_close(result, images.array_to_tensor(sample), name="array_to_tensor(sample)")
checks.passed("array_to_tensor")
### BEGIN HIDDEN TESTS
for seed, (h, w) in enumerate([(1, 1), (3, 2), (16, 9)]):
    other = np.random.default_rng(seed + 100).integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    checks.check_close(array_to_tensor(other), images.array_to_tensor(other), name=f"array_to_tensor on {h}×{w}")
extremes = np.array([[[0, 255, 128]]], dtype=np.uint8)
checks.check_close(array_to_tensor(extremes), [[[[0.0]], [[1.0]], [[128 / 255]]]], name="0, 255 and 128")
copy = sample.copy()
array_to_tensor(sample)
checks.check_true(np.array_equal(copy, sample), "array_to_tensor must not modify its input array")
### END HIDDEN TESTS

# %% [markdown]
# ## 2 · How checks and grading work
#
# Each exercise has three parts:
#
# * a **solution cell** where you replace `raise NotImplementedError()` with your code;
# * a **check cell** (locked) that tests your function and, when something differs, says *what*: the shape it
#   got, the first entries that disagree, the relative error against the tolerance, and often a hint;
# * **hidden tests** that your instructor's grader adds: other sizes, other seeds, other properties. Code that
#   passes the visible check because it is right (not because it memorised one answer) passes them too.
#
# **Use the library, but not as the answer.** Each exercise re-implements a library function of the same name:
# your `luminance` below is your own version of `images.luminance`. Answering an exercise by calling the
# library's own implementation of that function (for example calling `images.luminance` inside your
# `luminance`) scores 0 for that exercise when your instructor grades it, and the feedback says why. Every
# other library function remains yours to use. Graded notebooks also run in a sandbox without network and
# without access to other files, so code that reads files outside the notebook's folder or downloads anything
# will fail there.
#
# Here is what a failed check looks like. We compare a deliberately wrong value with the right one:

# %%
try:
    checks.check_close(torch.tensor([1.0, 2.0, 3.0]) * 2, torch.tensor([1.0, 2.0, 3.0]), name="my_result")
except checks.CheckFailed as failure:
    print("CheckFailed:", failure)

# %% [markdown]
# Read such a message from the left: *which* value is wrong, *where*, *by how much*, and the hint at the end.
#
# ### Exercise 2 · `luminance`
#
# Later, in style transfer, we will keep the colours of a photo and change only its brightness. The
# perceived brightness (luma) of an RGB pixel is the weighted sum
#
# $$Y = 0.299\,R + 0.587\,G + 0.114\,B .$$
#
# The weights differ because the eye is most sensitive to green. Write `luminance(image)` that maps a batch
# $(N, 3, H, W)$ to $(N, 1, H, W)$. Try to do it without a Python loop over pixels: index the channel axis,
# or multiply by a weight tensor of shape $(1, 3, 1, 1)$ and sum with `keepdim=True`.

# %% [solution] id=luminance
def luminance(image):
    r"""The perceived brightness of each pixel, :math:`Y = 0.299 R + 0.587 G + 0.114 B`.

    Args:
        image: (N, 3, H, W), RGB.

    Returns:
        (N, 1, H, W), same dtype and device.
    """
    ### BEGIN SOLUTION
    w = image.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)  # (1, 3, 1, 1)
    return (image * w).sum(dim=1, keepdim=True)  # (N, 1, H, W)
    ### END SOLUTION

# %% [check] id=check_luminance points=2
grey = luminance(photo)
checks.check_shape(grey, (photo.shape[0], 1, *photo.shape[2:]), name="luminance(photo)")
checks.check_close(grey, images.luminance(photo), name="luminance(photo)", rtol=1e-5, atol=1e-6)
checks.passed("luminance")
plt.figure(figsize=(3, 3))
plt.imshow(grey[0, 0], cmap="gray", vmin=0, vmax=1)
plt.title("luminance")
plt.axis("off")
plt.show()
### BEGIN HIDDEN TESTS
batch = torch.rand(3, 3, 5, 4, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
before = batch.clone()
out = luminance(batch)
checks.check_shape(out, (3, 1, 5, 4), name="luminance of a batch of 3")
checks.check_close(out, images.luminance(batch), name="luminance of a batch of 3", rtol=1e-12)
checks.check_true(out.dtype == torch.float64, f"luminance should keep the input's dtype, got {out.dtype}")
checks.check_true(torch.equal(before, batch), "luminance must not modify its input")
white = luminance(torch.ones(1, 3, 2, 2))
checks.check_close(white, torch.ones(1, 1, 2, 2), name="luminance of white (weights should sum to 1)")
### END HIDDEN TESTS

# %% [markdown]
# ### Written questions
#
# Some questions are answered in words. Write your answer in the cell below each question (double-click it to
# edit it); your instructor reads and grades these by hand, so the checks above say nothing about them.
#
# **Question 1 (1 point).** Compute $Y$ for a white pixel $(R, G, B) = (1, 1, 1)$ and for a grey pixel
# $(g, g, g)$. What do the results tell you about the three weights, and why is that a property we want?

# %% [written] id=written_luminance_weights points=1
# White gives $Y = 0.299 + 0.587 + 0.114 = 1$ and grey gives $Y = (0.299 + 0.587 + 0.114)\,g = g$: the three
# weights sum to 1. So a grey pixel keeps its brightness, white stays at full brightness, and $Y$ stays in
# $[0, 1]$ like every image of the course (it is a weighted *average* of the channels). Weights summing to
# more than 1 would make white brighter than $1$, outside the image range; less than 1 would darken every
# grey.

# %% [markdown]
# **Question 2 (1 point).** Your instructor's grader adds hidden tests with other sizes, seeds and properties.
# Describe a wrong `luminance` that passes the visible check above but fails such tests.

# %% [written] id=written_hidden_tests points=1
# The visible check tries a single input: the photo, one image of one size in `float32`. Code that is right
# only for that input passes it and fails elsewhere, for example: a `luminance` that returns a stored copy of
# the expected result for the photo (hard-coded), one that only handles a batch of one (`image[0]`, or a
# reshape with the photo's size written in), one that converts to `float32` and so loses the `float64` the
# caller gave it, or one that modifies its input in place. Hidden tests with another batch size, shape and
# dtype, and properties such as "white gives 1" and "the input is unchanged", catch each of these.

# %% [markdown]
# ## 3 · Devices: where the arithmetic happens
#
# A tensor lives on a *device*: the CPU, an NVIDIA GPU (`cuda`) or an Apple GPU (`mps`). The library always
# computes on the device of its inputs; one helper chooses a device for you and tells you why.

# %%
choice = device.choose_device()
print(choice)
on_device = photo.to(choice.device)
print("luminance computed on", images.luminance(on_device).device)

# %% [markdown]
# To force a device, pass it (`device.choose_device("cpu")`) or set the environment variable
# `NSTLAB_DEVICE` before starting Jupyter.
#
# ## 4 · Profiles: one dial for every size
#
# Style transfer at $512 \times 512$ pixels with 500 optimisation steps takes seconds on a GPU and far too long
# on a laptop. So no notebook hard-codes a size; each reads it from the active **profile**:
#
# | profile | when | sizes |
# |---|---|---|
# | `fast` | default on a CPU | small images, few steps: minutes |
# | `full` | default on a GPU | the papers' settings |
# | `grade` | while the grader runs your notebook | tiny and deterministic |
#
# Set `NSTLAB_PROFILE=full` (or `fast`) before starting Jupyter to choose yourself.

# %%
for name in profiles.PROFILES:
    print(profiles.describe(profiles.get_profile(name)))

# %% [markdown]
# ## 5 · Pretrained networks
#
# From notebook 05 on we look inside VGG, a network trained on a million photos. Its weights (about
# 550 MB) are downloaded once, checked against a published checksum and cached. Without them the notebooks
# still run, on an *untrained* network, and every figure says so. In a terminal, `nstlab weights status`
# shows the same and explains how to import a file copied from a USB stick.

# %%
from nstlab import weights

for item in weights.status():
    print(f"{item.arch:6} {'present' if item.present else 'missing':8} {item.filename}")

# %% [markdown]
# ## Where next
#
# `01-perceptron` starts from a single neuron. To begin, run `nstlab course start 01-perceptron` (or
# `make lab`, which does it for every notebook): it copies the notebook into `work/`, where course updates
# never overwrite your answers.
