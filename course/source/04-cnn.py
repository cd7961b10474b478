# %% [markdown]
# # 04 · Convolutional networks
#
# The networks of Part I connect every neuron to every input. For images that is wasteful: a 256 × 256
# colour photo has 196,608 inputs, so *one* fully connected neuron already needs that many weights, and it
# has to learn separately that an edge at the top left looks like an edge at the bottom right. A
# **convolutional network** (CNN) builds two facts about images into its wiring: what matters is local (a
# neuron looks at a small window), and the same pattern can appear anywhere (all windows share one set of
# weights). In this notebook we build its parts from scratch, check each against PyTorch, and train a small
# CNN that reads handwritten digits.
#
# **In this notebook you will learn**
#
# 1. the ReLU activation, and its three claimed advantages, each *measured*: speed, gradients that do not
#    vanish in deep stacks, and sparse activations;
# 2. what a convolution computes, with padding and stride, and the formula for the output size;
# 3. how to write a convolution with loops, then without them, and why the second is a thousand times faster;
# 4. max pooling, and where its gradient goes;
# 5. why a CNN's neurons form width × height × depth volumes, and where fully connected layers fit in, by
#    assembling a whole CNN from your own layers as a PyTorch module;
# 6. why one learning rate struggles on an ill-conditioned loss, and how momentum and Adam help, by writing
#    both updates and comparing them with `torch.optim`;
# 7. how to write the training loop of a PyTorch model (forward, loss, backward, step, zero_grad; training and
#    evaluation modes), train your CNN to about 97 % on handwritten digits, and look at its filters and
#    feature maps.
#
# **Runtime** (fast profile): about 1 minute on a 2-core CPU; GPU: not measured yet.

# %%
import contextlib
import copy
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

from nstlab import checks, cnn, data, optimisers, profiles
from nstlab.widgets.conv_playground import conv_playground

# The networks here are tiny: splitting each small operation over several CPU threads costs more in
# coordination than it saves, and on a busy shared machine it was measured to be ten times slower.
torch.set_num_threads(1)
profile = profiles.get_profile()
print(profiles.describe(profile))

# %% [markdown]
# ## 1 · The rectified linear unit
#
# Part I used the sigmoid $\sigma(z) = 1 / (1 + e^{-z})$. Almost every modern CNN uses instead the
# **rectified linear unit**
#
# $$\operatorname{ReLU}(z) = \max(0, z), \qquad \operatorname{ReLU}'(z) = \begin{cases} 1 & z > 0, \\ 0 & z < 0. \end{cases}$$
#
# (At exactly $z = 0$ the derivative is undefined; libraries use 0.) It is linear for positive inputs and
# silent for negative ones. Three advantages are usually claimed for it: it is **cheaper** to compute, its
# gradient **does not vanish** in deep networks, and it makes activations **sparse**. We check all three
# below, after you write it.
#
# ### Exercise 1 · `relu`
#
# Write `relu(x)` for a tensor of any shape. It must return a *new* tensor (do not change `x` in place) of the
# same shape and dtype, and whose gradient at exactly 0 is 0, as the library's and `torch.relu`'s are (the
# check tests it): `torch.where(x > 0, x, ...)` and `x.clamp(min=0)` do that, while `torch.where(x >= 0, ...)`
# and `x * (x >= 0)` pass a gradient of 1 at 0 and `torch.maximum` splits it in halves.

# %% [solution] id=relu
def relu(x):
    r"""The rectified linear unit :math:`f(x) = \max(0, x)`, entry by entry.

    Args:
        x: a tensor of any shape.

    Returns:
        A new tensor of the same shape; negative entries become 0.
    """
    ### BEGIN SOLUTION
    return torch.where(x > 0, x, torch.zeros_like(x))
    ### END SOLUTION

# %% [check] id=check_relu points=2
x = torch.tensor([-2.0, -0.5, 0.0, 0.5, 3.0])
x_before = x.clone()
result = relu(x)
checks.check_type(result, torch.Tensor, name="relu(x)")
checks.check_shape(result, x.shape, name="relu(x)")
checks.check_close(result, cnn.relu(x), name="relu(x)")
checks.check_true(torch.equal(x, x_before), "relu(x) changed x in place; compute a new tensor instead.")
checks.check_dtype(relu(x.double()), torch.float64, name="relu of a float64 tensor")
x_grad = x.clone().requires_grad_(True)
checks.check_grad(relu(x_grad), cnn.relu(x_grad), [x_grad], name="relu(x)")
checks.passed("relu")
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(11)
for shape in [(7,), (3, 4), (2, 3, 5, 5)]:
    xx = torch.randn(shape, generator=g, dtype=torch.float64)
    out = relu(xx)
    checks.check_dtype(out, torch.float64, name=f"relu of a float64 tensor of shape {shape}")
    checks.check_close(out, cnn.relu(xx), name=f"relu on shape {shape}")
### END HIDDEN TESTS

# %% [markdown]
# ### Advantage 1 · speed
#
# The sigmoid needs an exponential and a division per entry; ReLU needs one comparison. We time both on a
# million numbers (the median of several runs, after a warm-up, so that the first call's set-up cost does not
# count), forwards and forwards-plus-backwards.

# %%
def median_time(fn, repeats=15):
    """The median wall-clock seconds of ``repeats`` calls of ``fn`` after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


z = torch.randn(1_000_000, generator=torch.Generator().manual_seed(profile.seed))
z_grad = z.clone().requires_grad_()
for name, f in [("sigmoid", torch.sigmoid), ("relu", torch.relu)]:
    forward = median_time(lambda f=f: f(z))
    both = median_time(lambda f=f: f(z_grad).sum().backward())
    print(f"{name:8s} forward {forward * 1e3:6.2f} ms   forward + backward {both * 1e3:6.2f} ms")

# %% [markdown]
# On a CPU ReLU is typically a few times faster. Inside a whole network the activation is a small share of
# the work (convolutions dominate), so the saving per layer is modest; the other two advantages matter more.
#
# ### Advantage 2 · gradients that do not vanish
#
# Backpropagation (notebook 03) computes the error term of layer $l$ from the one above:
#
# $$\delta_l = f'(z_l) \odot \left( W_{l+1}^\top \delta_{l+1} \right).$$
#
# Each layer multiplies by $f'(z_l)$ once. The sigmoid's derivative $\sigma'(z) = \sigma(z)(1 - \sigma(z))$ is
# at most $\tfrac14$, so over $L$ layers the error signal can shrink like $4^{-L}$: the layers nearest the
# input barely learn. ReLU's derivative is exactly 1 wherever the neuron is active, so the signal passes
# unshrunk through the active paths. `cnn.gradient_norms_per_layer` builds a 20-layer fully connected stack
# with the same weights for each activation and measures $\lVert \partial E / \partial W_l \rVert$ per layer.

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
for name in ["sigmoid", "tanh", "relu"]:
    norms = cnn.gradient_norms_per_layer(name, depth=20, seed=profile.seed)
    ax.semilogy(range(1, 21), norms, marker="o", ms=3, label=name)
ax.set(xlabel="layer (1 = nearest the input)", ylabel="‖∂E/∂W‖ (log scale)",
       title="gradient norm per layer in a 20-layer stack")
ax.legend()
plt.show()
plt.close(fig)

# %% [markdown]
# The sigmoid's gradient falls by many orders of magnitude from the last layer to the first; ReLU's stays
# within a small factor. tanh does not vanish here either: its derivative is 1 at $z = 0$, and with these
# weights its inputs stay near 0, where it is almost linear. Once its neurons saturate ($|z|$ beyond 2 or so,
# where $\tanh'(z) < 0.08$) it shrinks the signal like the sigmoid.
#
# ### Advantage 3 · sparsity
#
# A ReLU outputs exactly zero for every negative input, so for inputs centred on zero about half the neurons
# are silent; a sigmoid neuron is never exactly zero. Sparse activations are cheaper to store and tend to be
# easier to read: each input switches on only a subset of detectors. We count exact zeros after one random
# layer (`cnn.sparsity`); later we count them in the trained network.

# %%
g = torch.Generator().manual_seed(profile.seed)
inputs = torch.randn(256, 64, generator=g)
W_random = torch.randn(64, 64, generator=g) / 8
print(f"zeros after sigmoid: {cnn.sparsity(torch.sigmoid(inputs @ W_random)):.1%}")
print(f"zeros after relu:    {cnn.sparsity(cnn.relu(inputs @ W_random)):.1%}")

# %% [markdown]
# ## 2 · Convolution
#
# A convolutional layer takes a **volume** $x$ of shape $(C, H, W)$: $C$ channels (3 for a colour photo)
# of $H \times W$ pixels. It holds $D$ **kernels** (filters) $w_d$, each of shape $(C, k, k)$, and $D$ biases
# $b_d$. The neuron at depth $d$ and position $(i, j)$ looks at the $k \times k$ window of all channels that
# starts at $(i s, j s)$ and computes a weighted sum, exactly like a neuron of Part I, but only of that window:
#
# $$a_{d,i,j} = b_d + \sum_{c=0}^{C-1} \sum_{p=0}^{k-1} \sum_{q=0}^{k-1} w_{d,c,p,q}\; x^{\text{pad}}_{c,\; is+p,\; js+q}.$$
#
# Two hyper-parameters shape the result:
#
# * the **stride** $s$ is how far the window moves between neighbouring neurons; $s = 2$ halves the output;
# * the **padding** $P$ surrounds the input with $P$ rows and columns of zeros, so that windows at the border
#   fit and the output need not shrink ($x^{\text{pad}}$ is the padded input).
#
# Every neuron at depth $d$ uses the same $w_d$: this **weight sharing** is what makes the layer detect the
# same pattern everywhere, with $D \cdot C \cdot k^2 + D$ parameters however large the image is. (Strictly,
# the formula is a cross-correlation, the kernel is not flipped; every deep-learning library calls it
# convolution.) Counting the window positions along one side gives the **output size**
#
# $$H_\text{out} = \left\lfloor \frac{H + 2P - k}{s} \right\rfloor + 1 ,$$
#
# and the same for the width. A 28-pixel side, $k = 5$, no padding, stride 1 gives 24; with $k = 3$, $P = 1$
# the size is kept (28), and stride 2 then halves it (14).
#
# Here is a hand-made kernel at work on a photo: a vertical-edge detector (the Sobel kernel) responds where
# brightness changes from left to right, and a blur averages each window.

# %%
photo = data.builtin_image("astronaut", size=profile.widget_size).mean(dim=1, keepdim=True)  # (1, 1, H, W) grey
sobel_x = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])[None, None]  # (D=1, C=1, 3, 3)
blur = torch.full((1, 1, 5, 5), 1 / 25)
fig, axes = plt.subplots(1, 4, figsize=(12, 3.3))
panels = [(photo, "input (grey)"), (cnn.conv2d(photo, sobel_x, padding=1), "Sobel x, P=1, s=1"),
          (cnn.conv2d(photo, blur, padding=2), "5×5 blur, P=2, s=1"),
          (cnn.conv2d(photo, sobel_x, padding=1, stride=4), "Sobel x, P=1, s=4")]
for ax, (img, title) in zip(axes, panels, strict=True):
    ax.imshow(img[0, 0], cmap="gray")
    ax.set_title(f"{title}\n{tuple(img.shape[2:])}", fontsize=9)
    ax.axis("off")
plt.show()
plt.close(fig)

# %% [markdown]
# ### Exercise 2 · `output_size`
#
# Write `output_size(n, *, kernel_size, stride=1, padding=0)` using the formula above. Python's `//` is the
# floor division. If the window does not fit into the padded input ($n + 2P < k$), raise a `ValueError`.

# %% [solution] id=output_size
def output_size(n, *, kernel_size, stride=1, padding=0):
    r"""The number of positions along one side: :math:`\lfloor (n + 2P - k) / s \rfloor + 1`.

    Args:
        n: input size along that side (height or width).
        kernel_size: window size k.
        stride: step s between windows.
        padding: zeros P added on each end.

    Returns:
        The output size, at least 1.

    Raises:
        ValueError: if the window does not fit into the padded input, or a size is not positive.
    """
    ### BEGIN SOLUTION
    if n < 1 or kernel_size < 1 or stride < 1 or padding < 0:
        raise ValueError("need n, kernel_size, stride >= 1 and padding >= 0")
    if n + 2 * padding < kernel_size:
        raise ValueError(f"a window of {kernel_size} does not fit into {n} pixels padded by {padding}")
    return (n + 2 * padding - kernel_size) // stride + 1
    ### END SOLUTION

# %% [check] id=check_output_size points=2
for n, k, s, p in [(28, 5, 1, 0), (28, 3, 1, 1), (28, 3, 2, 1), (7, 3, 2, 0)]:
    checks.check_close(output_size(n, kernel_size=k, stride=s, padding=p),
                       cnn.output_size(n, kernel_size=k, stride=s, padding=p),
                       name=f"output_size({n}, kernel_size={k}, stride={s}, padding={p})")
try:
    output_size(2, kernel_size=5)
    raise checks.CheckFailed("output_size(2, kernel_size=5) should raise ValueError: a 5-window does not fit in 2")
except ValueError:
    pass
checks.passed("output_size")
### BEGIN HIDDEN TESTS
for n in (1, 4, 9, 32):
    for k in (1, 2, 3):
        for s in (1, 2, 3):
            for p in (0, 1, 2):
                if n + 2 * p >= k:
                    expected = F.conv2d(torch.zeros(1, 1, n, n), torch.zeros(1, 1, k, k), stride=s, padding=p).shape[-1]
                    checks.check_close(output_size(n, kernel_size=k, stride=s, padding=p), expected,
                                       name=f"output_size({n}, kernel_size={k}, stride={s}, padding={p})")
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 3 · `conv2d_loops`: convolution by the definition
#
# Write the convolution with four nested loops, over the batch $n$, the depth $d$, and the output
# positions $i, j$, exactly as the formula reads (inputs now carry a batch axis: $x$ is $(N, C, H, W)$, $w$ is
# $(D, C, k_H, k_W)$). Steps:
#
# 1. compute $H_\text{out}, W_\text{out}$ (with `cnn.output_size` or yours);
# 2. pad: `F.pad(x, (P, P, P, P))` adds $P$ zeros on the left, right, top and bottom;
# 3. make `out = x.new_zeros(N, D, H_out, W_out)` and fill each entry with the sum over the window
#    `xp[n, :, i*s : i*s + kH, j*s : j*s + kW]` times `w[d]`, plus `b[d]` when `b` is not `None`.
#
# The result must equal `torch.nn.functional.conv2d(x, w, b, stride=s, padding=P)`.

# %% [solution] id=conv2d_loops
def conv2d_loops(x, w, b=None, *, stride=1, padding=0):
    r"""2-D convolution written as loops over every output neuron (the definition, slowly).

    Args:
        x: input of shape (N, C, H, W).
        w: kernels of shape (D, C, kH, kW).
        b: biases of shape (D,), or ``None``.
        stride: step between windows, the same along both sides.
        padding: zeros added on every side.

    Returns:
        Shape (N, D, H_out, W_out), equal to ``torch.nn.functional.conv2d(x, w, b, stride, padding)``.
    """
    ### BEGIN SOLUTION
    N, C, H, W = x.shape
    D, _, kH, kW = w.shape
    H_out = cnn.output_size(H, kernel_size=kH, stride=stride, padding=padding)
    W_out = cnn.output_size(W, kernel_size=kW, stride=stride, padding=padding)
    xp = F.pad(x, (padding, padding, padding, padding))
    out = x.new_zeros(N, D, H_out, W_out)
    for n in range(N):
        for d in range(D):
            for i in range(H_out):
                for j in range(W_out):
                    window = xp[n, :, i * stride : i * stride + kH, j * stride : j * stride + kW]
                    out[n, d, i, j] = (window * w[d]).sum() + (b[d] if b is not None else 0.0)
    return out
    ### END SOLUTION

# %% [check] id=check_conv2d_loops points=3
g = torch.Generator().manual_seed(0)
x = torch.randn(1, 2, 5, 5, generator=g, dtype=torch.float64)
w = torch.randn(3, 2, 3, 3, generator=g, dtype=torch.float64)
b = torch.randn(3, generator=g, dtype=torch.float64)
checks.check_close(conv2d_loops(x, w, b), F.conv2d(x, w, b), name="conv2d_loops(x, w, b)", rtol=1e-10)
checks.check_close(conv2d_loops(x, w), F.conv2d(x, w), name="conv2d_loops(x, w) without bias", rtol=1e-10)
checks.check_close(conv2d_loops(x, w, b, padding=1), F.conv2d(x, w, b, padding=1),
                   name="conv2d_loops(x, w, b, padding=1)", rtol=1e-10)
checks.check_close(conv2d_loops(x, w, b, stride=2), F.conv2d(x, w, b, stride=2),
                   name="conv2d_loops(x, w, b, stride=2)", rtol=1e-10)
checks.passed("conv2d_loops")
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(21)
for N, C, D, H, W, kH, kW, s, p in [(2, 3, 2, 6, 7, 3, 2, 2, 1), (1, 1, 1, 4, 4, 4, 4, 1, 0), (2, 2, 3, 5, 3, 1, 3, 3, 2)]:
    xx = torch.randn(N, C, H, W, generator=g, dtype=torch.float64)
    ww = torch.randn(D, C, kH, kW, generator=g, dtype=torch.float64)
    bb = torch.randn(D, generator=g, dtype=torch.float64)
    checks.check_close(conv2d_loops(xx, ww, bb, stride=s, padding=p), F.conv2d(xx, ww, bb, stride=s, padding=p),
                       name=f"conv2d_loops on x {tuple(xx.shape)}, w {tuple(ww.shape)}, stride={s}, padding={p}",
                       rtol=1e-10, atol=1e-10)
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 4 · `conv2d`: the same without loops
#
# The loops call Python once per output neuron. The trick that libraries use (called *im2col*) is to cut
# out every window at once and then do all the weighted sums in one tensor operation. Plan it by shapes:
#
# 1. **Pad** as in exercise 3: `xp` has shape $(N, C, H + 2P, W + 2P)$.
# 2. **Cut out the windows** into one tensor `windows` of shape $(N, C, H_\text{out}, W_\text{out}, k_H, k_W)$,
#    such that `windows[n, :, i, j]` is the loop version's window `xp[n, :, i*s : i*s + kH, j*s : j*s + kW]`.
#    The tool is `t.unfold(dim, size, step)`: it returns a *view* of `t` (no copy) holding every window of
#    length `size`, `step` apart, along axis `dim`, as a new last axis:
#
#    ```python
#    >>> torch.arange(7.0).unfold(0, 3, 2)        # windows of 3 along axis 0, 2 apart
#    tensor([[0., 1., 2.],
#            [2., 3., 4.],
#            [4., 5., 6.]])
#    >>> torch.arange(12.0).reshape(3, 4).unfold(1, 2, 2).shape   # along the columns: (3 rows, 2 windows, 2)
#    torch.Size([3, 2, 2])
#    ```
#
#    A convolution's windows run along two axes, height and width. Which axes of `xp` are they, and where do
#    the new window axes end up after one `unfold`, and after a second? (Underneath, `unfold` only changes the
#    *strides*, the steps in memory from one index to the next; `Tensor.as_strided(size, stride)` builds such
#    a view by hand, if you are curious.) Compare one window with `xp[...]` on a small example before going on.
# 3. **Contract**: for every $(n, d, i, j)$, multiply the window by the kernel $w_d$ and sum over the three
#    axes the formula sums over ($c$, $p$, $q$); the result has shape $(N, D, H_\text{out}, W_\text{out})$.
#    `torch.einsum` does such products and sums in one call: name every axis by a letter, and the letters
#    missing after `->` are summed over (for example `torch.einsum("ij,j->i", A, x)` is a matrix–vector
#    product). Another route is a matrix product: reshape the windows into a matrix with one row per
#    $(n, i, j)$ and one column per $(c, p, q)$, the kernels into one with a row per $(c, p, q)$ and a column per
#    $d$, multiply, and bring the axes back into the order $(N, D, H_\text{out}, W_\text{out})$.
# 4. **Add the bias** $b_d$ to every position of channel $d$, by broadcasting: which shape must `b` take so
#    that it lines up with axis 1 of the result?
#
# No Python loop: the check compares with `F.conv2d` for several strides and paddings.

# %% [solution] id=conv2d
def conv2d(x, w, b=None, *, stride=1, padding=0):
    r"""2-D convolution without Python loops: cut all windows at once, then one tensor contraction.

    Args:
        x: input of shape (N, C, H, W).
        w: kernels of shape (D, C, kH, kW).
        b: biases of shape (D,), or ``None``.
        stride: step between windows, the same along both sides.
        padding: zeros added on every side.

    Returns:
        Shape (N, D, H_out, W_out), equal to ``torch.nn.functional.conv2d(x, w, b, stride, padding)``.
    """
    ### BEGIN SOLUTION
    _, _, kH, kW = w.shape
    xp = F.pad(x, (padding, padding, padding, padding))
    windows = xp.unfold(2, kH, stride).unfold(3, kW, stride)
    out = torch.einsum("ncijpq,dcpq->ndij", windows, w)
    if b is not None:
        out = out + b[None, :, None, None]
    return out
    ### END SOLUTION

# %% [check] id=check_conv2d points=3
g = torch.Generator().manual_seed(1)
x = torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64)
w = torch.randn(4, 3, 3, 3, generator=g, dtype=torch.float64)
b = torch.randn(4, generator=g, dtype=torch.float64)
for s, p in [(1, 0), (1, 1), (2, 1), (3, 2)]:
    checks.check_close(conv2d(x, w, b, stride=s, padding=p), F.conv2d(x, w, b, stride=s, padding=p),
                       name=f"conv2d(x, w, b, stride={s}, padding={p})", rtol=1e-10, atol=1e-10)
checks.check_close(conv2d(x, w), F.conv2d(x, w), name="conv2d(x, w) without bias", rtol=1e-10, atol=1e-10)
checks.passed("conv2d")
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(31)
for _ in range(10):
    N, C, D = (int(v) for v in torch.randint(1, 4, (3,), generator=g))
    kH, kW = (int(v) for v in torch.randint(1, 5, (2,), generator=g))
    s, p = int(torch.randint(1, 4, (1,), generator=g)), int(torch.randint(0, 3, (1,), generator=g))
    H, W = (int(v) for v in torch.randint(max(kH, kW), 12, (2,), generator=g))
    xx = torch.randn(N, C, H, W, generator=g, dtype=torch.float64)
    ww = torch.randn(D, C, kH, kW, generator=g, dtype=torch.float64)
    bb = torch.randn(D, generator=g, dtype=torch.float64)
    checks.check_close(conv2d(xx, ww, bb, stride=s, padding=p), F.conv2d(xx, ww, bb, stride=s, padding=p),
                       name=f"conv2d on x {tuple(xx.shape)}, w {tuple(ww.shape)}, stride={s}, padding={p}",
                       rtol=1e-10, atol=1e-10)
xx = torch.randn(1, 2, 6, 6, generator=g, dtype=torch.float64, requires_grad=True)
ww = torch.randn(3, 2, 3, 3, generator=g, dtype=torch.float64)
conv2d(xx, ww, padding=1).sum().backward()
xx2 = xx.detach().clone().requires_grad_()
F.conv2d(xx2, ww, padding=1).sum().backward()
checks.check_close(xx.grad, xx2.grad, name="the gradient of conv2d(x, w).sum() with respect to x", rtol=1e-10)
### END HIDDEN TESTS

# %% [markdown]
# How much do the loops cost? We time the library's two versions (yours could be used the same way) on one
# 28 × 28 input with 8 channels and 8 kernels of 3 × 3.

# %%
g = torch.Generator().manual_seed(profile.seed)
x28, w28, b28 = torch.randn(1, 8, 28, 28, generator=g), torch.randn(8, 8, 3, 3, generator=g), torch.randn(8, generator=g)
t_loops = median_time(lambda: cnn.conv2d_loops(x28, w28, b28, padding=1), repeats=3)
t_vec = median_time(lambda: cnn.conv2d(x28, w28, b28, padding=1), repeats=30)
t_torch = median_time(lambda: F.conv2d(x28, w28, b28, padding=1), repeats=30)
print(f"loops {t_loops * 1e3:.1f} ms, vectorised {t_vec * 1e3:.3f} ms ({t_loops / t_vec:.0f}× faster), "
      f"torch {t_torch * 1e3:.3f} ms")
print("largest difference vectorised vs torch:", float((cnn.conv2d(x28, w28, b28, padding=1)
                                                        - F.conv2d(x28, w28, b28, padding=1)).abs().max()))

# %% [markdown]
# The same arithmetic, hundreds of times faster: the time of the loop version goes into Python, not into
# multiplying. `docs/benchmarks.md` records the measurement made with `benchmarks/bench_conv.py`.
#
# ## 3 · Max pooling
#
# A **pooling** layer shrinks each channel separately. **Max pooling** with window $k$ and stride $s$ keeps
# the largest value of each window:
#
# $$a_{c,i,j} = \max_{0 \le p, q < k} x_{c,\; is + p,\; js + q}.$$
#
# The usual choice $k = s = 2$ halves width and height and keeps the depth. It has no parameters. It makes
# the network tolerant to small shifts (the maximum of a window does not care where in the window a feature
# fired) and cuts the work of later layers by four.
#
# In backpropagation, the maximum behaves like a switch: only the **arg-max** of each window influenced the
# output, so it receives the whole upstream gradient $\partial E / \partial a_{c,i,j}$, and the other
# $k^2 - 1$ entries of the window receive 0.
#
# ### Exercise 5 · `max_pool2d`
#
# Write `max_pool2d(x, *, kernel_size=2, stride=None)` for $x$ of shape $(N, C, H, W)$; `stride=None`
# means `stride = kernel_size`. It is `conv2d`'s plan with a different last step:
#
# 1. cut out the windows as in `conv2d` (no padding here), a view of shape $(N, C, H_\text{out}, W_\text{out},
#    k, k)$;
# 2. instead of a weighted sum over channels and window, take the **maximum of each window, channel by
#    channel**: a reduction over the two window axes only, leaving $(N, C, H_\text{out}, W_\text{out})$.
#
# torch's `max(dim=...)` reduces one axis and returns the values and their indices; `amax(dim=...)` accepts
# several axes. To use `max`, first merge the two window axes into one (the view is not contiguous, so
# `view` refuses; `reshape` copies when it must). Both send the gradient to the largest entry, as pooling
# should (`amax` splits it evenly among ties).

# %% [solution] id=max_pool2d
def max_pool2d(x, *, kernel_size=2, stride=None):
    r"""Max pooling: the largest value of each ``kernel_size`` × ``kernel_size`` window, per channel.

    Args:
        x: input of shape (N, C, H, W).
        kernel_size: window size k.
        stride: step s between windows; ``None`` means ``kernel_size`` (windows that do not overlap).

    Returns:
        Shape (N, C, H_out, W_out), equal to ``torch.nn.functional.max_pool2d(x, kernel_size, stride)``.
    """
    ### BEGIN SOLUTION
    k = kernel_size
    s = k if stride is None else stride
    windows = x.unfold(2, k, s).unfold(3, k, s)
    return windows.reshape(*windows.shape[:4], k * k).max(dim=-1).values
    ### END SOLUTION

# %% [check] id=check_max_pool2d points=3
g = torch.Generator().manual_seed(2)
x = torch.randn(2, 3, 6, 6, generator=g, dtype=torch.float64)
checks.check_close(max_pool2d(x), F.max_pool2d(x, 2), name="max_pool2d(x)")
checks.check_close(max_pool2d(x, kernel_size=3, stride=1), F.max_pool2d(x, 3, 1),
                   name="max_pool2d(x, kernel_size=3, stride=1)")
checks.passed("max_pool2d")
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(41)
for k, s, H, W in [(2, None, 7, 9), (3, 2, 9, 8), (2, 3, 8, 8), (1, 1, 3, 3)]:
    xx = torch.randn(2, 2, H, W, generator=g, dtype=torch.float64)
    checks.check_close(max_pool2d(xx, kernel_size=k, stride=s), F.max_pool2d(xx, k, s),
                       name=f"max_pool2d on shape {(2, 2, H, W)}, kernel_size={k}, stride={s}")
xx = torch.randn(1, 2, 4, 4, generator=g, dtype=torch.float64, requires_grad=True)
max_pool2d(xx).sum().backward()
xx2 = xx.detach().clone().requires_grad_()
F.max_pool2d(xx2, 2).sum().backward()
checks.check_close(xx.grad, xx2.grad, name="the gradient of max_pool2d(x).sum(): it should go to each arg-max")
### END HIDDEN TESTS

# %% [markdown]
# The gradient really goes to the arg-max only. The numbers below are a 4 × 4 input; after pooling and
# backpropagating ones, each 2 × 2 window has a single 1, at its largest entry.

# %%
x_small = torch.randn(1, 1, 4, 4, generator=torch.Generator().manual_seed(profile.seed), requires_grad=True)
cnn.max_pool2d(x_small).sum().backward()
print("input:\n", x_small.detach()[0, 0].numpy().round(2))
print("gradient:\n", x_small.grad[0, 0].numpy())

# %% [markdown]
# ## 4 · Volumes, and fully connected layers at the end
#
# Put the pieces together and look at the shapes. Each layer's neurons form a **volume** of width × height ×
# depth: width and height say *where* in the image a neuron looks, depth says *which* of the $D$ kernels it
# applies. The arrangement is not decoration; it follows from the two assumptions of a CNN. Locality means a
# neuron at $(i, j)$ needs only the input near $(i, j)$, so the neurons keep the image's layout; sharing means
# that all neurons of one depth slice apply the same kernel, so a slice is a **feature map**: "where in the
# image is this pattern?". Deeper layers see windows of windows, so their neurons cover more of the image
# (their *receptive field* grows) and can respond to larger, more complex patterns, while pooling trades
# resolution for depth.
#
# At the end, the last volume is flattened into a vector and passed through one or more **fully connected
# layers**, the layers of Part I, $a = f(W x + b)$ with every output connected to every input. They combine
# the detected features, wherever they were found, into the class scores. The comparison of parameter counts
# shows why the early layers are convolutions: a fully connected layer from an 8 × 8 × 16 volume to an
# 8 × 8 × 32 one would need $1024 \cdot 2048 \approx 2$ million weights, the convolution that does it here has
# $32 \cdot 16 \cdot 3 \cdot 3 = 4{,}608$.
#
# `cnn.SmallCNN` is the library's version of the network you will build and train next; its `feature_maps`
# method returns every volume by name, with the VGG-style names used in the rest of the course.

# %%
model_shapes = cnn.SmallCNN()
maps = model_shapes.feature_maps(torch.zeros(1, 1, 8, 8))
params = {name: sum(p.numel() for p in module.parameters()) for name, module in model_shapes.named_children()}
print(f"{'layer':10s} {'volume (depth × height × width)':34s} parameters")
for name, volume in maps.items():
    shape = " × ".join(str(s) for s in volume.shape[1:])
    print(f"{name:10s} {shape:34s} {params.get(name, '')}")

# %% [markdown]
# ### Written question · what the convolution saves
#
# Answer in a few sentences in the cell below (double-click it to edit); your instructor grades it by hand.
#
# **Question (2 points).** `conv1_2` maps a 16 × 8 × 8 volume to a 32 × 8 × 8 one with 4,640 parameters. How
# many would a fully connected layer between the same two volumes need? Which two assumptions about images
# let the convolution do with so few, and for what kind of input would one of them be wrong?

# %% [written] id=written_weight_sharing points=2
# A fully connected layer needs one weight per pair of input and output neurons plus a bias per output:
# $1024 \cdot 2048 + 2048 = 2{,}099{,}200$ parameters, 450 times more. The convolution rests on **locality**
# (a neuron needs only a small window, $3 \times 3$ positions of all 16 channels, 144 weights instead of 1,024)
# and on **weight sharing** (a pattern can appear anywhere, so all 64 positions of one depth slice use the same
# kernel): 32 kernels of 144 weights and 32 biases, $32 \cdot 144 + 32 = 4{,}640$. Locality fails for inputs
# whose neighbouring entries are unrelated, such as a table of measurements whose column order is arbitrary;
# sharing is less apt for aligned images where position carries meaning (centred faces, where an eye is
# always found at the same place and other places need other detectors).

# %% [markdown]
# ### Exercise 6 · `SmallCNN`: a whole CNN from your layers
#
# Now assemble that network yourself, as a PyTorch **module**. A class derived from `nn.Module` has two
# methods:
#
# * `__init__` creates the layers that hold parameters and stores them as attributes (after calling
#   `super().__init__()`). The module registers every attribute that is itself a module, so that
#   `model.parameters()` lists all their weights for an optimiser, and `model.state_dict()` names them. Create
#   `conv1_1`, `conv1_2`, `conv2_1` with `nn.Conv2d(in_channels, out_channels, 3, padding=1)` and `fc1`,
#   `fc2` with `nn.Linear(in_features, out_features)`, with the sizes of the table above, in this order.
#   Created in the same order, they draw the same initial weights as the library's network after the same
#   seed, so the two can be compared weight for weight later.
# * `forward(x)` computes the class scores (N, 10) of digits $x$ of shape (N, 1, 8, 8). Here use **your own**
#   `conv2d`, `relu` and `max_pool2d`: an `nn.Conv2d` layer serves only as the container of its kernels
#   `self.conv1_1.weight`, shape $(D, C, 3, 3)$, and biases `self.conv1_1.bias`, shape $(D,)$ (padding 1 as
#   in the table). Flatten the last volume to (N, 256) with `.flatten(1)`, then call the fully connected
#   layers, `self.fc1(...)`: they compute $W x + b$, the layers of Part I. Return the raw scores, with no
#   ReLU or softmax after `fc2`: a score must be free to be negative, and the loss applies the softmax itself.
#
# Why your layers and not torch's `nn.Conv2d` and `F.max_pool2d`? Because they are differentiable as they
# stand (`unfold`, `einsum` and `max` all carry gradients), so the network will train through your own code.
# The honest price is speed: torch calls one optimised routine per layer, while `unfold` and `einsum` go
# through several general operations, so on these 8 × 8 digits an epoch takes a few times as long
# (measured below). Seconds here; for the photos of notebooks 05–08, torch's layers, which compute the same
# numbers as yours (your checks proved it), are the right tool.
#
# The check grades the assembly alone: it runs your `SmallCNN` with the library's `relu`, `conv2d` and
# `max_pool2d` in place of yours (their own checks graded those) and puts yours back; section 6 trains the
# network with yours.

# %% [solution] id=small_cnn
class SmallCNN(nn.Module):
    """A small CNN for 8 × 8 digits, with VGG-style layer names.

    ``conv1_1`` (1 → 16) · ``relu1_1`` · ``conv1_2`` (16 → 32) · ``relu1_2`` · ``pool1`` (8 → 4) ·
    ``conv2_1`` (32 → 64) · ``relu2_1`` · ``pool2`` (4 → 2) · flatten (64 × 2 × 2 = 256) · ``fc1`` (256 → 64)
    · ``relu_fc1`` · ``fc2`` (64 → 10 class scores). All convolutions are 3 × 3 with padding 1, so they keep
    the width and height and only the 2 × 2 max poolings halve them. The parameters live in ``nn.Conv2d`` and
    ``nn.Linear`` layers named as above; ``forward(x)`` maps digits (N, 1, 8, 8) to scores (N, 10).
    """

    def __init__(self):
        super().__init__()
        ### BEGIN SOLUTION
        self.conv1_1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv1_2 = nn.Conv2d(16, 32, 3, padding=1)
        self.conv2_1 = nn.Conv2d(32, 64, 3, padding=1)
        self.fc1 = nn.Linear(64 * 2 * 2, 64)
        self.fc2 = nn.Linear(64, 10)
        ### END SOLUTION

    def forward(self, x):
        """The class scores (N, 10) of digits ``x`` (N, 1, 8, 8): raw scores, no softmax (the loss applies it)."""
        ### BEGIN SOLUTION
        a = relu(conv2d(x, self.conv1_1.weight, self.conv1_1.bias, padding=1))  # (N, 16, 8, 8)
        a = relu(conv2d(a, self.conv1_2.weight, self.conv1_2.bias, padding=1))  # (N, 32, 8, 8)
        a = max_pool2d(a)  # (N, 32, 4, 4)
        a = relu(conv2d(a, self.conv2_1.weight, self.conv2_1.bias, padding=1))  # (N, 64, 4, 4)
        a = max_pool2d(a)  # (N, 64, 2, 2)
        a = relu(self.fc1(a.flatten(1)))  # (N, 256) -> (N, 64)
        return self.fc2(a)  # (N, 10)
        ### END SOLUTION

# %% [check] id=check_small_cnn points=4
@contextlib.contextmanager
def library_layers():
    """Run the block with the library's relu, conv2d and max_pool2d in place of yours, then put yours back.

    SmallCNN is graded on its own: a mistake in your layers costs the points of their exercises, not these too.
    """
    yours = {name: globals()[name] for name in ("relu", "conv2d", "max_pool2d")}
    globals().update(relu=cnn.relu, conv2d=cnn.conv2d, max_pool2d=cnn.max_pool2d)
    try:
        yield
    finally:
        globals().update(yours)


with library_layers():
    reference = cnn.SmallCNN().double()
    model = SmallCNN().double()
    checks.check_type(model, nn.Module, name="SmallCNN()")
    mine = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    missing, extra = sorted(set(theirs) - set(mine)), sorted(set(mine) - set(theirs))
    reshaped = [f"{k} is {mine[k]}, not {theirs[k]}" for k in sorted(set(mine) & set(theirs)) if mine[k] != theirs[k]]
    checks.check_true(not (missing or extra or reshaped),
                      f"SmallCNN()'s parameters differ from the table's: missing {missing}, unexpected {extra}, "
                      f"wrong shapes {reshaped}. Create conv1_1, conv1_2, conv2_1, fc1 and fc2 in __init__.")
    model.load_state_dict(reference.state_dict())  # the same weights in both networks
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(6), dtype=torch.float64, requires_grad=True)
    try:
        scores = model(x)
    except RuntimeError as err:
        raise checks.CheckFailed(
            f"SmallCNN()(x) for x of shape (4, 1, 8, 8) raised: {err}. Follow the table's shapes: with padding=1 "
            "each convolution keeps the size, each pooling halves it (8 → 4 → 2), so fc1 gets 64 · 2 · 2 = 256 "
            "numbers per image.") from None
    expected = reference(x)
    checks.check_close(scores, expected, name="SmallCNN()(x), with the weights of cnn.SmallCNN", rtol=1e-9,
                       atol=1e-12,
                       mistakes={"a ReLU after fc2; return the raw scores, which may be negative": expected.relu(),
                                 "a softmax after fc2; return the raw scores (the cross-entropy applies the "
                                 "softmax)": expected.softmax(dim=1)})
    checks.check_grad(scores, expected, [x], name="SmallCNN()(x)", rtol=1e-9, atol=1e-12)
    scores.sum().backward()
    expected.sum().backward()
    for name, p in reference.named_parameters():
        mine_p = dict(model.named_parameters())[name]
        checks.check_true(mine_p.grad is not None, f"{name} receives no gradient: does forward use {name}'s "
                          "weight and bias, as tensors that autograd can follow?")
        checks.check_close(mine_p.grad, p.grad, name=f"the gradient of the scores with respect to {name}",
                           rtol=1e-9, atol=1e-12)
checks.passed("SmallCNN")
### BEGIN HIDDEN TESTS
def randomised(net, seed):
    """``net`` with every parameter redrawn from a local generator (deterministic, unlike the global RNG)."""
    gen = torch.Generator().manual_seed(seed)
    net.load_state_dict({k: 0.3 * torch.randn(v.shape, generator=gen, dtype=v.dtype) for k, v in net.state_dict().items()})
    return net


with library_layers():
    for seed, n in [(21, 1), (22, 7)]:
        ref_h = randomised(cnn.SmallCNN().double(), seed)
        mine_h = SmallCNN().double()
        mine_h.load_state_dict(ref_h.state_dict())
        xh = torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        checks.check_close(mine_h(xh), ref_h(xh), name=f"SmallCNN()(x) for {n} images, other weights", rtol=1e-9,
                           atol=1e-12)
### END HIDDEN TESTS

# %% [markdown]
# ## 5 · Optimisers: momentum and Adam
#
# Part I trained with gradient descent, $w \leftarrow w - \eta\, \partial E / \partial w$. The library trains
# its CNN with **Adam**, which this section derives, together with the idea it builds on, **momentum**.
#
# **The trouble with one learning rate.** Take the elongated bowl
# $E(w) = \tfrac12 \left(w_0^2 + \kappa\, w_1^2\right)$, which is $\kappa$ times steeper across ($w_1$) than
# along ($w_0$). Its gradient is $(w_0,\ \kappa w_1)$, so a step of gradient descent multiplies $w_0$ by
# $(1 - \eta)$ and $w_1$ by $(1 - \eta \kappa)$. The steep direction blows up unless $|1 - \eta\kappa| < 1$,
# that is $\eta < 2 / \kappa$; with $\kappa = 100$, $\eta < 0.02$, and then $w_0$ shrinks by only 2 % per
# step. Such a loss is called **ill-conditioned** ($\kappa$ is its condition number), and the losses of
# networks are full of directions whose curvatures differ by orders of magnitude.
#
# **Momentum** (Polyak, 1964; for deep networks Sutskever et al., 2013) keeps a running sum $v$ of the
# gradients $g$ and steps along it:
#
# $$v_t = \mu\, v_{t-1} + g_t, \qquad w_t = w_{t-1} - \eta\, v_t, \qquad v_0 = 0 .$$
#
# Along the valley the gradients point the same way step after step, so $v$ grows towards
# $g / (1 - \mu)$, ten times the gradient for the usual $\mu = 0.9$; across the valley they change sign every
# step and largely cancel. With $\mu = 0$ it is plain gradient descent. (This is PyTorch's form,
# `torch.optim.SGD(momentum=mu)`. Sutskever et al. write $v_t = \mu v_{t-1} - \eta g_t$, $w_t = w_{t-1} + v_t$:
# the same steps for a constant $\eta$, with their $v$ equal to $-\eta$ times ours.)
#
# ### Exercise 7 · `sgd_momentum_step`
#
# Write one step, `sgd_momentum_step(w, grad, v, *, eta, mu=0.9)`, returning the new `(w, v)`. Return new
# tensors: `v *= mu` or `w -= ...` would change the caller's tensors in place (the check tests it). The check
# runs your steps against `torch.optim.SGD`'s.

# %% [solution] id=sgd_momentum_step
def sgd_momentum_step(w, grad, v, *, eta, mu=0.9):
    r"""One step of gradient descent with momentum: :math:`v \leftarrow \mu v + g`, :math:`w \leftarrow w - \eta v`.

    With ``mu=0`` this is plain gradient descent. It is the update of ``torch.optim.SGD(momentum=mu)``.

    Args:
        w: the parameters, any shape.
        grad: the gradient :math:`g = \partial E / \partial w` at ``w``, the same shape.
        v: the running sum of past gradients (the "velocity"), the same shape; zeros before the first step.
        eta: the learning rate :math:`\eta`.
        mu: the momentum coefficient :math:`\mu`, between 0 and 1.

    Returns:
        ``(w_new, v_new)``, new tensors of the shape of ``w``; the inputs are left unchanged.
    """
    ### BEGIN SOLUTION
    v_new = mu * v + grad
    return w - eta * v_new, v_new
    ### END SOLUTION

# %% [check] id=check_sgd_momentum_step points=3
curvature = torch.tensor([1.0, 10.0, 100.0], dtype=torch.float64)  # E(w) = ½ Σ curvature · w², gradient curvature · w
w_start = torch.tensor([1.0, -0.5, 0.2], dtype=torch.float64)


def torch_steps(make_optimiser, steps):
    """The parameters after each of ``steps`` steps of a torch optimiser on E, from w_start."""
    w_torch = w_start.clone().requires_grad_()
    optimiser = make_optimiser([w_torch])
    path = []
    for _ in range(steps):
        w_torch.grad = curvature * w_torch.detach()
        optimiser.step()
        path.append(w_torch.detach().clone())
    return path


for mu in (0.9, 0.5):
    expected = torch_steps(lambda p, mu=mu: torch.optim.SGD(p, lr=0.005, momentum=mu), 5)
    plain = torch_steps(lambda p: torch.optim.SGD(p, lr=0.005), 5)
    w, v = w_start.clone(), torch.zeros(3, dtype=torch.float64)
    for t in range(1, 6):
        grad = curvature * w
        before = [w.clone(), grad.clone(), v.clone()]
        result = sgd_momentum_step(w, grad, v, eta=0.005, mu=mu)
        checks.check_type(result, tuple, name="sgd_momentum_step(...)")
        checks.check_true(len(result) == 2, "sgd_momentum_step should return two tensors, (w_new, v_new).")
        checks.check_true(all(torch.equal(a, b) for a, b in zip(before, [w, grad, v], strict=True)),
                          "sgd_momentum_step changed w, grad or v in place; compute new tensors instead.")
        w_new, v_new = result
        if t == 1:
            checks.check_close(v_new, grad, name="v after the first step (from v = 0, it is the gradient)",
                               factors={"v ← μ v + (1 − μ) g, a running mean instead of the running sum": 1 - mu,
                                        "v ← μ v + η g, the other convention; here v sums the gradients": 0.005})
            checks.check_close(w_new, expected[0], name=f"w after one step (mu={mu})",
                               mistakes={"w did not move: update w with the new v, not the old one": w_start})
        checks.check_close(w_new, expected[t - 1], name=f"w after {t} steps with mu={mu}, against torch.optim.SGD",
                           rtol=1e-10, atol=1e-12,
                           mistakes={"these are plain gradient descent's steps: is the term μ v missing?": plain[t - 1]})
        w, v = w_new, v_new
checks.passed("sgd_momentum_step")
### BEGIN HIDDEN TESTS
g_h = torch.Generator().manual_seed(71)
for mu_h, eta_h, shape in [(0.0, 0.1, (4,)), (0.99, 0.01, (2, 3)), (0.3, 1.0, (5,))]:
    w_h, v_h = torch.randn(shape, generator=g_h, dtype=torch.float64), torch.randn(shape, generator=g_h, dtype=torch.float64)
    grad_h = torch.randn(shape, generator=g_h, dtype=torch.float64)
    for got, want in zip(sgd_momentum_step(w_h, grad_h, v_h, eta=eta_h, mu=mu_h),
                         optimisers.sgd_momentum_step(w_h, grad_h, v_h, eta=eta_h, mu=mu_h), strict=True):
        checks.check_close(got, want, name=f"sgd_momentum_step with mu={mu_h}, eta={eta_h}, shape {shape}", rtol=1e-12)
w_h = torch.randn(3, generator=g_h, dtype=torch.float64)
checks.check_close(sgd_momentum_step(w_h, w_h, torch.zeros(3, dtype=torch.float64), eta=0.1)[0],
                   optimisers.sgd_momentum_step(w_h, w_h, torch.zeros(3, dtype=torch.float64), eta=0.1)[0],
                   name="sgd_momentum_step with the default mu")
### END HIDDEN TESTS

# %% [markdown]
# **Adam** (Kingma & Ba, 2015, Algorithm 1) keeps two running means per parameter, of the gradient and of
# its square, and divides one by the square root of the other:
#
# $$m_t = \beta_1 m_{t-1} + (1 - \beta_1)\, g_t, \qquad v_t = \beta_2 v_{t-1} + (1 - \beta_2)\, g_t^2,
# \qquad m_0 = v_0 = 0,$$
#
# $$\hat m_t = \frac{m_t}{1 - \beta_1^t}, \qquad \hat v_t = \frac{v_t}{1 - \beta_2^t}, \qquad
# w_t = w_{t-1} - \eta\, \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon},$$
#
# with $\beta_1 = 0.9$, $\beta_2 = 0.999$ and $\epsilon = 10^{-8}$ by default (the paper calls $\eta$
# $\alpha$). $m$ is a momentum, averaged rather than summed. Dividing by $\sqrt{\hat v}$, the typical size of
# that parameter's gradient, makes the step about $\eta$ for *every* parameter whose gradient keeps its sign,
# however steep or shallow its direction: on the bowl, $w_0$ and $w_1$ move at the same speed.
#
# The **bias correction** $1/(1 - \beta^t)$ is there because the running means start at zero: after the first
# step $m_1 = 0.1\, g_1$ and $v_1 = 0.001\, g_1^2$, far too small as estimates of $g$ and $g^2$; dividing by
# $1 - \beta_1 = 0.1$ and $1 - \beta_2 = 0.001$ makes them exact at $t = 1$, and the correction fades as
# $\beta^t \to 0$. Without it the first step would be $0.1 / \sqrt{0.001} \approx 3.2$ times too long.
#
# ### Exercise 8 · `adam_step`
#
# Write `adam_step(w, grad, m, v, t, *, eta=1e-3, beta1=0.9, beta2=0.999, eps=1e-8)`, returning the new
# `(w, m, v)`. The step number `t` starts at 1. Add $\epsilon$ to $\sqrt{\hat v}$, outside the square root, as
# the paper and torch do. The check runs five of your steps against `torch.optim.Adam` on a problem whose
# gradients differ in size by a factor of 100.

# %% [solution] id=adam_step
def adam_step(w, grad, m, v, t, *, eta=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    r"""One step of Adam (Kingma & Ba, 2015, Algorithm 1), with the bias correction of both moments.

    .. math::

        m_t = \beta_1 m_{t-1} + (1 - \beta_1) g, \quad v_t = \beta_2 v_{t-1} + (1 - \beta_2) g^2, \quad
        w_t = w_{t-1} - \eta \frac{m_t / (1 - \beta_1^t)}{\sqrt{v_t / (1 - \beta_2^t)} + \epsilon}

    Args:
        w: the parameters, any shape.
        grad: the gradient :math:`g` at ``w``, the same shape.
        m: the running mean of the gradient (first moment), the same shape; zeros before the first step.
        v: the running mean of the squared gradient (second moment), the same shape; zeros at first.
        t: the number of this step, 1 for the first.
        eta: the learning rate :math:`\eta` (the paper's :math:`\alpha`).
        beta1, beta2: the decay rates of the two running means.
        eps: :math:`\epsilon`, added to the denominator so that a zero gradient does not divide by zero.

    Returns:
        ``(w_new, m_new, v_new)``, new tensors of the shape of ``w``; the inputs are left unchanged.

    Raises:
        ValueError: if ``t`` is below 1 (the bias correction would divide by zero).
    """
    ### BEGIN SOLUTION
    if t < 1:
        raise ValueError(f"t is the number of the step and starts at 1, got t={t}")
    m_new = beta1 * m + (1 - beta1) * grad
    v_new = beta2 * v + (1 - beta2) * grad**2
    m_hat = m_new / (1 - beta1**t)
    v_hat = v_new / (1 - beta2**t)
    return w - eta * m_hat / (v_hat.sqrt() + eps), m_new, v_new
    ### END SOLUTION

# %% [check] id=check_adam_step points=4
curvature = torch.tensor([1.0, 4.0, 16.0, 64.0, 100.0], dtype=torch.float64)  # gradients from 1 to 100 in size
w_start = torch.tensor([1.0, -2.0, 0.5, 1.5, -1.0], dtype=torch.float64)
w_torch = w_start.clone().requires_grad_()
optimiser = torch.optim.Adam([w_torch], lr=0.1)
expected = []
for _ in range(5):
    w_torch.grad = curvature * w_torch.detach()
    optimiser.step()
    expected.append(w_torch.detach().clone())
w, m, v = w_start.clone(), torch.zeros(5, dtype=torch.float64), torch.zeros(5, dtype=torch.float64)
for t in range(1, 6):
    grad = curvature * w
    before = [w.clone(), grad.clone(), m.clone(), v.clone()]
    result = adam_step(w, grad, m, v, t, eta=0.1)
    checks.check_type(result, tuple, name="adam_step(...)")
    checks.check_true(len(result) == 3, "adam_step should return three tensors, (w_new, m_new, v_new).")
    checks.check_true(all(torch.equal(a, b) for a, b in zip(before, [w, grad, m, v], strict=True)),
                      "adam_step changed w, grad, m or v in place; compute new tensors instead.")
    w_new, m_new, v_new = result
    if t == 1:
        checks.check_close(w_new - w_start, expected[0] - w_start, name="the first step of adam_step, w₁ − w₀",
                           factors={"Adam without the bias correction (m and v not divided by 1 − β₁ᵗ and "
                                    "1 − β₂ᵗ)": (1 - 0.9) / (1 - 0.999) ** 0.5})
    checks.check_close(w_new, expected[t - 1], name=f"w after {t} steps of adam_step, against torch.optim.Adam",
                       rtol=1e-10, atol=1e-12)
    w, m, v = w_new, m_new, v_new
checks.passed("adam_step")
### BEGIN HIDDEN TESTS
g_h = torch.Generator().manual_seed(81)
for t_h, kw in [(1, {}), (3, {"eta": 0.5, "beta1": 0.5, "beta2": 0.9}), (100, {"eps": 1e-3}), (2, {"beta1": 0.0})]:
    w_h = torch.randn(2, 3, generator=g_h, dtype=torch.float64)
    grad_h = torch.randn(2, 3, generator=g_h, dtype=torch.float64)
    m_h, v_h = torch.randn(2, 3, generator=g_h, dtype=torch.float64), torch.rand(2, 3, generator=g_h, dtype=torch.float64)
    for got, want in zip(adam_step(w_h, grad_h, m_h, v_h, t_h, **kw), optimisers.adam_step(w_h, grad_h, m_h, v_h, t_h, **kw),
                         strict=True):
        checks.check_close(got, want, name=f"adam_step at t={t_h} with {kw}", rtol=1e-10, atol=1e-14)
tiny = torch.full((3,), 1e-6, dtype=torch.float64)  # eps inside the square root would show here
zeros_h = torch.zeros(3, dtype=torch.float64)
checks.check_close(adam_step(zeros_h, tiny, zeros_h, zeros_h, 1)[0], optimisers.adam_step(zeros_h, tiny, zeros_h, zeros_h, 1)[0],
                   name="adam_step with gradients of 1e-6 (eps is added outside the square root)", rtol=1e-6)
### END HIDDEN TESTS

# %% [markdown]
# Over more steps, and with torch's default settings, your `adam_step` and `torch.optim.Adam` agree to the
# last digits. The same holds for every parameter tensor of a network: `torch.optim.Adam` keeps `m`, `v` and
# `t` for each one and applies this update.

# %%
g = torch.Generator().manual_seed(profile.seed)
target = torch.randn(6, generator=g, dtype=torch.float64)
w_mine = torch.zeros(6, dtype=torch.float64)
m_mine, v_mine = torch.zeros(6, dtype=torch.float64), torch.zeros(6, dtype=torch.float64)
w_torch = torch.zeros(6, dtype=torch.float64, requires_grad=True)
optimiser = torch.optim.Adam([w_torch])
for t in range(1, 51):
    w_mine, m_mine, v_mine = adam_step(w_mine, 3 * (w_mine - target) ** 3 + (w_mine - target), m_mine, v_mine, t)
    w_torch.grad = 3 * (w_torch.detach() - target) ** 3 + (w_torch.detach() - target)
    optimiser.step()
    if t in (1, 10, 50):
        print(f"step {t:2d}: largest difference between your adam_step and torch.optim.Adam "
              f"{float((w_mine - w_torch.detach()).abs().max()):.1e}")

# %% [markdown]
# Here are the three optimisers on the elongated bowl with $\kappa = 100$, 100 steps each from $(-4, 1)$
# (`optimisers.descend` runs the library's versions of your two functions): gradient descent at
# $\eta = 0.019$, just inside its limit $2/\kappa$; momentum with $\eta = 0.01$, $\mu = 0.9$; Adam with
# $\eta = 0.1$.

# %%
bowl = optimisers.elongated_bowl  # kappa = 100
w_start = torch.tensor([-4.0, 1.0], dtype=torch.float64)
runs = {"gradient descent, η = 0.019": optimisers.descend("sgd", bowl, w_start, steps=100, eta=0.019),
        "momentum, η = 0.01, μ = 0.9": optimisers.descend("momentum", bowl, w_start, steps=100, eta=0.01),
        "Adam, η = 0.1": optimisers.descend("adam", bowl, w_start, steps=100, eta=0.1)}
grid = torch.stack(torch.meshgrid(torch.linspace(-4.5, 1.5, 200), torch.linspace(-1.3, 1.3, 200), indexing="xy"), -1)
fig, (ax_path, ax_loss) = plt.subplots(1, 2, figsize=(12, 3.8), gridspec_kw={"width_ratios": [1.6, 1]})
ax_path.contour(grid[..., 0], grid[..., 1], bowl(grid), levels=[0.05, 0.2, 0.5, 1, 2, 4, 8, 16, 32], colors="grey",
                linewidths=0.6)
for label, path in runs.items():
    ax_path.plot(path[:, 0], path[:, 1], marker=".", ms=3, lw=1, label=label)
    ax_loss.semilogy(range(len(path)), bowl(path), label=label)
ax_path.plot(0, 0, "k*", ms=10)
ax_path.set(xlabel="$w_0$ (shallow)", ylabel="$w_1$ (steep)", title="paths on E = ½(w₀² + 100 w₁²)")
ax_path.legend(fontsize=8, loc="lower right")
ax_loss.set(xlabel="step", ylabel="E (log scale)", title="loss per step")
plt.show()
plt.close(fig)
for label, path in runs.items():
    print(f"{label:30s} E after 100 steps: {float(bowl(path[-1])):.1e}")

# %% [markdown]
# Gradient descent zig-zags across the steep direction at first and then crawls along the shallow one: its
# $\eta$ is capped by the steep direction. Momentum zig-zags across the valley too, but builds up speed along
# it, overshoots the minimum and swings back. Adam starts by moving both coordinates at about the same speed (the diagonal
# start of its path), because it divides each coordinate's gradient by its own typical size. Both end far
# below gradient descent. In the CNN the gradients of the first convolution's kernels and of `fc2`'s weights
# differ in size in the same way, which is why the library trains it with Adam.

# %% [markdown]
# ### Written question · a rotated bowl
#
# Answer in a few sentences in the cell below (double-click it to edit); your instructor grades it by hand.
#
# **Question (2 points).** Rotate the bowl by 45°, so that its steep and shallow directions both mix $w_0$ and
# $w_1$ (for a rotation matrix `R`, the loss `lambda w: bowl(w @ R)`, started from the rotated starting
# point). Which of the three optimisers take exactly the same losses step by step as before, and which loses
# its advantage? Explain why from the update formulas. (You may try it with `optimisers.descend`.)

# %% [written] id=written_rotated_bowl points=2
# Gradient descent and momentum build their steps from sums and multiples of gradients only, and rotating the
# coordinates rotates every gradient the same way, so their whole paths rotate with the bowl and the losses
# are the same at every step (after 100 steps still about 0.17 and $1.5 \cdot 10^{-4}$). Adam divides each
# *coordinate* by its own $\sqrt{\hat v}$, which does not commute with a rotation. On the aligned bowl the
# steep direction is exactly $w_1$, so this division acts like a separate learning rate per direction, small
# for the steep one and large for the shallow one. Rotated, both coordinates mix steep and shallow parts and
# have gradients of similar size, so the division no longer tells the directions apart: Adam moves roughly
# along the signs of the gradient and zig-zags across the valley (with $\eta = 0.1$ it ends near $E \approx 3$,
# worse than gradient descent). Adam helps most when the parameters whose gradients differ in scale are
# themselves the steep and shallow directions, as for different layers of a network.

# %% [markdown]
# ## 6 · Training the CNN
#
# The UCI digits (`data.digits`) are 1,797 handwritten digits of 8 × 8 pixels; 80 % train the network, and
# 20 % are held out to test it. Small as they are, 8 × 8 pixels are enough for the network above: two 3 × 3
# convolutions, a pooling, another convolution and pooling leave a 64 × 2 × 2 volume for the fully connected
# layers. (Upsampling to 28 × 28 would only add pixels that carry no new information and cost 12 times the
# work.)
#
# One **epoch** passes over every training image once, in shuffled mini-batches (notebook 02's stochastic
# gradient descent, a batch at a time). Every PyTorch training loop does five things per batch:
#
# 1. **forward**: the scores of the batch, `model(x[batch])`, shape (B, 10);
# 2. **loss**: the mean cross-entropy of the scores and the labels (notebook 03, section 8: softmax, then
#    $-\ln$ of the probability of the right class), `F.cross_entropy(scores, y[batch])`;
# 3. **backward**: `loss.backward()` puts $\partial E / \partial w$ into the `.grad` of every parameter;
# 4. **step**: `optimiser.step()` updates every parameter from its `.grad` (for Adam, your `adam_step`, with
#    the optimiser keeping `m`, `v` and `t` of each parameter tensor);
# 5. **zero_grad**: `optimiser.zero_grad()` clears the `.grad`s. `backward` *adds* to `.grad` (useful when a
#    gradient is accumulated over several passes on purpose), so without this every step would use the sum of
#    all gradients so far.
#
# A module also has two **modes**: `model.train()` and `model.eval()`. Some layers behave differently in them:
# dropout switches random neurons off during training only, and batch normalisation uses the batch's
# statistics during training and stored averages during evaluation. `SmallCNN` has neither, so here the mode
# changes no number; but a loop is called after an evaluation (which switches to `eval`), and a network with
# dropout trained in evaluation mode would silently train without it. So a training epoch starts with
# `model.train()`, and evaluation code calls `model.eval()`.
#
# ### Exercise 9 · `train_epoch`
#
# Write `train_epoch(model, optimiser, x, y, *, batch_size=32, generator=None)`:
#
# * start with `model.train()`;
# * shuffle with `torch.randperm(N, generator=generator)` and cut the order into batches with
#   `.split(batch_size)` (the last batch holds the rest); use exactly this, so that your loop can be compared
#   step for step with the library's;
# * for every batch the five steps above;
# * return the epoch's mean loss as a Python float: each batch's `loss.item()` weighted by its number of images,
#   summed, divided by $N$. (`.item()` also lets the batch's graph go; adding up loss tensors would keep every
#   batch's graph in memory.)
#
# The check runs your loop on a small linear classifier that records how it was called.

# %% [solution] id=train_epoch
def train_epoch(model, optimiser, x, y, *, batch_size=32, generator=None):
    r"""One epoch of mini-batch training on the cross-entropy: every image once, in a shuffled order.

    The model is switched to training mode first (``model.train()``: layers such as dropout and batch norm
    behave differently in training and in evaluation). The order of the images is
    ``torch.randperm(N, generator=generator)``, cut into batches of ``batch_size`` (the last one holds the
    rest). For each batch: forward pass, mean cross-entropy of the scores, backward pass, one optimiser step,
    and the gradients set back to zero, because ``backward`` *adds* to every ``.grad``.

    Args:
        model: a classifier mapping x to scores (N, classes); it is left in training mode.
        optimiser: a torch optimiser over the model's parameters.
        x: inputs (N, ...), e.g. digits (N, 1, 8, 8).
        y: integer labels (N,).
        batch_size: images per step.
        generator: the random generator of the shuffle; ``None`` uses torch's global one.

    Returns:
        The epoch's mean loss as a float: each batch's mean cross-entropy weighted by its number of images
        (computed before that batch's step).
    """
    ### BEGIN SOLUTION
    model.train()
    total = 0.0
    for batch in torch.randperm(len(y), generator=generator).split(batch_size):
        loss = F.cross_entropy(model(x[batch]), y[batch])
        loss.backward()
        optimiser.step()
        optimiser.zero_grad()
        total += loss.item() * len(batch)
    return total / len(y)
    ### END SOLUTION

# %% [check] id=check_train_epoch points=4
class Probe(nn.Module):
    """A linear classifier of 8 × 8 digits that records the mode and the scores of each forward pass."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(64, 10, dtype=torch.float64)
        self.modes, self.scores = [], []

    def forward(self, x):
        self.modes.append(self.training)
        out = self.linear(x.flatten(1))
        self.scores.append(out.detach())
        return out


few = data.digits(seed=0, limit=100)
x, y = few.x_train[:70].double(), few.y_train[:70]  # 70 digits: batches of 16, 16, 16, 16 and 6
with torch.random.fork_rng(devices=[]):
    torch.manual_seed(4)
    probe = Probe().eval()  # in evaluation mode, as after evaluating the previous epoch
reference = copy.deepcopy(probe)
w_before = probe.linear.weight.detach().clone()
leftover = []  # at each backward: was a previous batch's gradient still in .grad?
for p in probe.parameters():
    p.register_hook(lambda grad, p=p: leftover.append(p.grad is not None and bool(p.grad.abs().sum() > 0)))
loss = train_epoch(probe, torch.optim.SGD(probe.parameters(), lr=0.5), x, y, batch_size=16,
                   generator=torch.Generator().manual_seed(3))
loss_expected = cnn.train_epoch(reference, torch.optim.SGD(reference.parameters(), lr=0.5), x, y, batch_size=16,
                                generator=torch.Generator().manual_seed(3))
checks.check_true(len(probe.modes) == 5, f"train_epoch ran the model {len(probe.modes)} times on 70 images in "
                  "batches of 16; it should run it once per batch, 5 times (16, 16, 16, 16 and the last 6).")
checks.check_true(all(probe.modes), "train_epoch ran the model in evaluation mode. Call model.train() at its start: "
                  "a model evaluated after the previous epoch is still in eval mode, and dropout or batch "
                  "normalisation would then behave as at test time.")
checks.check_true(probe.training, "After train_epoch the model is in evaluation mode; leave it in training mode "
                  "(whoever evaluates it calls model.eval() first).")
checks.check_true(not any(leftover), "When backward() ran, .grad still held an earlier batch's gradient, so the "
                  "gradients accumulated and each step used their sum: call optimiser.zero_grad() once per batch "
                  "(after step(), or before backward()).")
checks.check_close(probe.linear.weight, reference.linear.weight, rtol=1e-9, atol=1e-12,
                   name="the weights after train_epoch (SGD with η = 0.5, batches of 16)",
                   mistakes={"the weights did not change: is optimiser.step() missing, or does zero_grad() run "
                             "between backward() and step()?": w_before})
checks.check_close(probe.linear.bias, reference.linear.bias, rtol=1e-9, atol=1e-12, name="the biases after train_epoch")
checks.check_type(loss, float, name="train_epoch's result (the epoch's mean loss, a Python float: loss.item())")
batch_losses = [F.cross_entropy(s, y[b]).item()
                for s, b in zip(probe.scores, torch.randperm(70, generator=torch.Generator().manual_seed(3)).split(16),
                                strict=True)]
checks.check_close(loss, loss_expected, name="train_epoch's mean loss", rtol=1e-9,
                   mistakes={"the plain mean of the batch losses: weight each by its number of images (the last "
                             "batch has only 6)": sum(batch_losses) / len(batch_losses),
                             "the sum of the batch losses, not their mean over the images": sum(batch_losses),
                             "the last batch's loss only: add up every batch's": batch_losses[-1]})
checks.passed("train_epoch")
### BEGIN HIDDEN TESTS
def randomised_cnn(seed):
    """A float64 cnn.SmallCNN with every parameter drawn from a local generator."""
    net, gen = cnn.SmallCNN().double(), torch.Generator().manual_seed(seed)
    net.load_state_dict({k: 0.3 * torch.randn(v.shape, generator=gen, dtype=v.dtype) for k, v in net.state_dict().items()})
    return net


few_h = data.digits(seed=1, limit=120)
for bs_h, n_h in [(7, 50), (64, 64), (100, 90)]:
    mine_h = randomised_cnn(bs_h)
    ref_h = copy.deepcopy(mine_h)
    xh, yh = few_h.x_train[:n_h].double(), few_h.y_train[:n_h]
    loss_h = train_epoch(mine_h, torch.optim.Adam(mine_h.parameters(), lr=1e-2), xh, yh, batch_size=bs_h,
                         generator=torch.Generator().manual_seed(bs_h))
    want_h = cnn.train_epoch(ref_h, torch.optim.Adam(ref_h.parameters(), lr=1e-2), xh, yh, batch_size=bs_h,
                             generator=torch.Generator().manual_seed(bs_h))
    checks.check_close(loss_h, want_h, name=f"train_epoch's loss with Adam, batch_size={bs_h}, N={n_h}", rtol=1e-6)
    for (name_h, p_h), q_h in zip(mine_h.named_parameters(), ref_h.parameters(), strict=True):
        checks.check_close(p_h, q_h, name=f"{name_h} after train_epoch with Adam, batch_size={bs_h}", rtol=1e-6, atol=1e-9)
probe_h = Probe()
ref_h = copy.deepcopy(probe_h)
torch.manual_seed(9)
loss_h = train_epoch(probe_h, torch.optim.SGD(probe_h.parameters(), lr=0.1), x, y)
torch.manual_seed(9)
want_h = cnn.train_epoch(ref_h, torch.optim.SGD(ref_h.parameters(), lr=0.1), x, y)
checks.check_close(loss_h, want_h, name="train_epoch with the default batch_size and generator=None", rtol=1e-9)
### END HIDDEN TESTS

# %% [markdown]
# Now train **your** `SmallCNN` with **your** loop, with the settings of `cnn.train_cnn` (Adam with
# $\eta = 3 \cdot 10^{-3}$, batches of 32, the learning rate decaying along a cosine from epoch to epoch, the
# same seed for the weights and the shuffle), beside the library's. The number of epochs and of training
# images comes from the profile, so grading runs a tiny version.

# %%
digits = data.digits(seed=profile.seed, limit=profile.train_samples)
result = cnn.train_cnn(digits, epochs=profile.train_epochs, seed=profile.seed)

# %%
with torch.random.fork_rng(devices=[]):
    torch.manual_seed(profile.seed)  # the same initial weights as cnn.train_cnn's network
    my_model = SmallCNN()
optimiser = torch.optim.Adam(my_model.parameters(), lr=3e-3)
schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=profile.train_epochs)
shuffle = torch.Generator().manual_seed(profile.seed)
my_loss, my_test_accuracy = [], []
start = time.perf_counter()
for _ in range(profile.train_epochs):
    my_loss.append(train_epoch(my_model, optimiser, digits.x_train, digits.y_train, batch_size=32, generator=shuffle))
    schedule.step()
    my_model.eval()
    my_test_accuracy.append(cnn.accuracy(my_model, digits.x_test, digits.y_test))
my_seconds = time.perf_counter() - start

print(f"{len(digits.y_train)} training images, {profile.train_epochs} epochs; accuracy on the held-out digits:")
print(f"  your SmallCNN and train_epoch: {my_test_accuracy[-1]:.1%} in {my_seconds:.1f} s")
print(f"  cnn.train_cnn:                 {result.test_accuracy[-1]:.1%} in {result.seconds:.1f} s")
epochs = range(1, len(result.loss) + 1)
fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.3))
ax_loss.plot(epochs, result.loss, marker="o", label="cnn.train_cnn")
ax_loss.plot(epochs, my_loss, marker="x", ls="--", label="yours")
ax_loss.set(xlabel="epoch", ylabel="mean cross-entropy", title="training loss")
ax_loss.legend()
ax_acc.plot(epochs, result.train_accuracy, marker="o", label="train (cnn.train_cnn)")
ax_acc.plot(epochs, result.test_accuracy, marker="o", label="test (cnn.train_cnn)")
ax_acc.plot(epochs, my_test_accuracy, marker="x", ls="--", label="test (yours)")
ax_acc.axhline(0.97, color="grey", ls=":", label="97 %")
ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
ax_acc.legend()
plt.show()
plt.close(fig)

# %% [markdown]
# The two runs start from the same weights and see the batches in the same order, so they differ only by
# rounding (your `conv2d` adds its products in another order than torch's routine), and their curves lie
# almost on top of each other; in the fast profile both reach about 97 % or more on digits they never saw.
# Your network takes a few times longer per epoch, the price of `unfold` and `einsum` against torch's
# dedicated routines.

# %% [markdown]
# ### Written question · training and evaluation modes
#
# Answer in a few sentences in the cell below (double-click it to edit); your instructor grades it by hand.
#
# **Question (2 points).** `SmallCNN` has no dropout, so its mode changes nothing. Suppose `fc1` were followed
# by dropout with $p = 0.5$ (in training mode it zeroes each neuron with probability $p$ and doubles the
# others). What would go wrong, and would you notice, (a) if `train_epoch` forgot `model.train()` after an
# evaluation, (b) if the test accuracy were measured without `model.eval()`?

# %% [written] id=written_train_eval points=2
# (a) After the first evaluation the network stays in evaluation mode, where dropout does nothing: from the
# second epoch on it trains without dropout. Nothing fails and the training loss even falls faster; the only
# sign is that the network overfits as if dropout had never been added (the gap between training and test
# accuracy grows), so the mistake easily goes unnoticed. (b) In training mode dropout stays active at test
# time: every prediction uses a random half of `fc1`'s neurons, so the scores are noisy, the accuracy is lower
# than the network's real accuracy and changes from one evaluation to the next (a hint that something is
# wrong). With batch normalisation the effects are similar: in training mode a prediction would depend on the
# other images of the batch, and evaluating would overwrite its stored averages with the test data.

# %% [markdown]
# ## 7 · What did it learn?
#
# The 16 kernels of `conv1_1` are 3 × 3 weight patterns on the raw pixels (blue negative, red positive);
# many resemble small edge and stroke detectors. Below them, the feature maps of one test digit at three
# depths: `relu1_1` still looks like the digit, filtered sixteen ways; by `relu2_1` (after one pooling)
# the maps are coarse, and each channel says only roughly *where* its pattern was found. Dark means zero:
# many maps are silent for this digit, which is the sparsity of ReLU at work in a trained network.

# %%
model = result.model
kernels = model.conv1_1.weight.detach()[:, 0]  # (16, 3, 3)
fig, axes = plt.subplots(1, 16, figsize=(14, 1.2))
limit = float(kernels.abs().max())
for ax, kernel in zip(axes, kernels, strict=True):
    ax.imshow(kernel, cmap="bwr", vmin=-limit, vmax=limit)
    ax.axis("off")
fig.suptitle("the 16 learned kernels of conv1_1", y=1.15)
plt.show()
plt.close(fig)

digit = digits.x_test[:1]
with torch.no_grad():
    maps = model.feature_maps(digit)
fig, axes = plt.subplots(3, 9, figsize=(12, 4.4))
for row, name in zip(axes, ["relu1_1", "relu1_2", "relu2_1"], strict=True):
    row[0].imshow(digit[0, 0], cmap="gray_r")
    row[0].set_title(f"label {int(digits.y_test[0])}", fontsize=8)
    for c, ax in enumerate(row[1:]):
        ax.imshow(maps[name][0, c], cmap="magma")
        ax.set_title(f"{name}[{c}]", fontsize=7)
    for ax in row:
        ax.axis("off")
plt.show()
plt.close(fig)
with torch.no_grad():
    test_maps = model.feature_maps(digits.x_test)
for name in ["relu1_1", "relu1_2", "relu2_1", "relu_fc1"]:
    print(f"zeros in {name} over the test set: {cnn.sparsity(test_maps[name]):.0%}")

# %% [markdown]
# ## Lecture demo · the convolution playground
#
# Choose a photo and a preset kernel, or type your own numbers into the 3 × 3 grid, and change the stride and
# padding: the output and its size (from the formula) update at once.

# %%
conv_playground(size=profile.widget_size)

# %% [markdown]
# ## Summary
#
# * ReLU, $\max(0, z)$, is cheap, passes gradients unshrunk through active neurons (the sigmoid's shrink by up
#   to 4 per layer), and silences many neurons exactly.
# * A convolution is a layer of neurons that look at local windows and share their weights across positions;
#   its output size is $\lfloor (n + 2P - k)/s \rfloor + 1$.
# * Cutting out all windows at once (`unfold`) turns the loops into one tensor contraction, hundreds of
#   times faster and equal to `F.conv2d`.
# * Max pooling keeps the largest value of each window, and its gradient goes to that arg-max only.
# * A CNN arranges neurons in width × height × depth volumes, shrinks them by pooling, and finishes with fully
#   connected layers; as an `nn.Module`, `__init__` creates the layers that hold parameters and `forward`
#   computes the scores.
# * One learning rate is capped by the steepest direction of the loss; momentum sums gradients so that
#   consistent directions speed up, and Adam divides each parameter's step by the typical size of its
#   gradient, with a bias correction for running means that start at zero.
# * A training epoch: for each shuffled batch forward, loss, backward, step and zero_grad (backward adds to
#   `.grad`), in training mode. Your CNN, trained by your loop, reads 8 × 8 digits as well as the library's,
#   at 97 % or more.
#
# Notebook 05 looks inside a much larger CNN, VGG, trained on a million photos.
