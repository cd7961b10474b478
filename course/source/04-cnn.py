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
# 5. why a CNN's neurons form width × height × depth volumes, and where fully connected layers fit in;
# 6. how to train a small CNN to 97 % on handwritten digits, and what its filters and feature maps look like.
#
# **Runtime** (fast profile): 30 to 45 s on a 2-core CPU; GPU: not measured yet.

# %%
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from nstlab import checks, cnn, data, profiles
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
# out every window at once and do all the weighted sums in one tensor operation.
# `t.unfold(dim, size, step)` returns a *view* of all windows of length `size`, `step` apart, along `dim`,
# as a new last axis. Applied to the padded input twice,
#
# ```python
# windows = xp.unfold(2, kH, stride).unfold(3, kW, stride)   # (N, C, H_out, W_out, kH, kW)
# ```
#
# gives every window, without copying. The convolution is then a sum over $c$, $p$, $q$ for all $n, d, i, j$:
# `torch.einsum("ncijpq,dcpq->ndij", windows, w)`. (Equivalently, reshape the windows to a matrix of
# shape $(N \cdot H_\text{out} \cdot W_\text{out},\ C k_H k_W)$ and multiply by the kernels as a
# $(C k_H k_W,\ D)$ matrix.) Add the bias with broadcasting: `b[None, :, None, None]` has shape (1, D, 1, 1).

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
# means `stride = kernel_size`. Use `unfold` twice as in `conv2d`, flatten the last two axes
# (`reshape(*windows.shape[:4], k * k)`) and take `.max(dim=-1).values`.

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
# `cnn.SmallCNN` is the network we train next; its `feature_maps` method returns every volume by name, with
# the VGG-style names used in the rest of the course.

# %%
model_shapes = cnn.SmallCNN()
maps = model_shapes.feature_maps(torch.zeros(1, 1, 8, 8))
params = {name: sum(p.numel() for p in module.parameters()) for name, module in model_shapes.named_children()}
print(f"{'layer':10s} {'volume (depth × height × width)':34s} parameters")
for name, volume in maps.items():
    shape = " × ".join(str(s) for s in volume.shape[1:])
    print(f"{name:10s} {shape:34s} {params.get(name, '')}")

# %% [markdown]
# ## 5 · A small CNN for handwritten digits
#
# The UCI digits (`data.digits`) are 1,797 handwritten digits of 8 × 8 pixels; 80 % train the network, and
# 20 % are held out to test it. Small as they are, 8 × 8 pixels are enough: two 3 × 3 convolutions,
# a pooling, another convolution and pooling leave a 64 × 2 × 2 volume for the fully connected layers.
# (Upsampling to 28 × 28 would only add pixels that carry no new information and cost 12 times the work.)
#
# `cnn.train_cnn` trains with mini-batches of 32 and the cross-entropy loss, using Adam, a variant of gradient
# descent that scales each parameter's step by a running estimate of its gradient's size, with the learning
# rate decaying to 0 along a cosine. The progress bar shows the epochs; the number of epochs (and the number
# of training images) comes from the profile, so grading runs a tiny version. In the fast profile this
# reaches at least 97 % on the held-out digits in a few seconds.

# %%
digits = data.digits(seed=profile.seed, limit=profile.train_samples)
result = cnn.train_cnn(digits, epochs=profile.train_epochs, seed=profile.seed)
print(f"{len(digits.y_train)} training images, {profile.train_epochs} epochs in {result.seconds:.1f} s: "
      f"test accuracy {result.test_accuracy[-1]:.1%}")
epochs = range(1, len(result.loss) + 1)
fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.3))
ax_loss.plot(epochs, result.loss, marker="o")
ax_loss.set(xlabel="epoch", ylabel="mean cross-entropy", title="training loss")
ax_acc.plot(epochs, result.train_accuracy, marker="o", label="train")
ax_acc.plot(epochs, result.test_accuracy, marker="o", label="test (held out)")
ax_acc.axhline(0.97, color="grey", ls=":", label="97 %")
ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
ax_acc.legend()
plt.show()
plt.close(fig)

# %% [markdown]
# ## 6 · What did it learn?
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
#   connected layers; a small one reads 8 × 8 digits at 97 % or more.
#
# Notebook 05 looks inside a much larger CNN, VGG, trained on a million photos.
