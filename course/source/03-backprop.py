# %% [markdown]
# # 03 · Neural networks and backpropagation
#
# Notebook 01 ended with XOR, which no single perceptron can learn. The fix is to connect units in layers,
# so that hidden units bend the decision boundary, and to make every unit *smooth*, so that gradient descent
# (notebook 02) can tell each weight which way to move. Computing those gradients efficiently, for every
# weight in the network at once, is **backpropagation**. We derive it, build it piece by piece, check it
# against the definition of the derivative and against PyTorch, and train networks on XOR and on
# handwritten digits.
#
# **In this notebook you will learn**
#
# 1. sigmoid and tanh neurons, and their derivatives;
# 2. to see a network as a function from an input vector to an output vector, computed by a forward pass;
# 3. to compute error terms $\delta$ from the output layer backwards, then the weight updates;
# 4. the difference between parameters and hyper-parameters;
# 5. numerical gradient checking, the test every hand-written gradient should pass;
# 6. training on XOR and on handwritten digits, and the same network in PyTorch with autograd.
#
# **Runtime** (fast profile): about 18 s on a 2-core CPU; GPU: not measured yet.

# %%
import matplotlib.pyplot as plt
import torch

from nstlab import checks, data, gradcheck, mlp, profiles

profile = profiles.get_profile()
print(profiles.describe(profile))

# %% [markdown]
# ## 1 · Sigmoid and tanh neurons
#
# A neuron computes $z = w \cdot x + b$ as before, but now passes it through a smooth, S-shaped activation.
# The **sigmoid** (logistic function) squashes any number into $(0, 1)$:
#
# $$\sigma(z) = \frac{1}{1 + e^{-z}} .$$
#
# It is a soft version of the step: for large $|z|$ it is almost 0 or 1, near $z = 0$ it changes smoothly.
# Its derivative has a famously convenient form. With $\sigma = (1 + e^{-z})^{-1}$,
#
# $$\sigma'(z) = \frac{e^{-z}}{(1 + e^{-z})^2} = \frac{1}{1 + e^{-z}} \cdot \frac{e^{-z}}{1 + e^{-z}}
#   = \sigma(z)\,\big(1 - \sigma(z)\big),$$
#
# because $e^{-z}/(1 + e^{-z}) = 1 - \sigma(z)$. So once the forward pass has computed $\sigma(z)$, the
# derivative costs one multiplication. The **tanh** neuron uses
# $\tanh z = (e^z - e^{-z})/(e^z + e^{-z}) = 2\sigma(2z) - 1$, which has the same shape but outputs in
# $(-1, 1)$, centred on zero; its derivative is $1 - \tanh^2 z$. Both derivatives are at most $1/4$ and $1$
# and vanish for large $|z|$: a *saturated* neuron barely learns, a point notebook 04 returns to.

# %%
z = torch.linspace(-5, 5, 401)
fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
axes[0].plot(z, mlp.sigmoid(z), label="σ(z)")
axes[0].plot(z, mlp.sigmoid_prime(z), label="σ'(z)")
axes[1].plot(z, mlp.tanh(z), label="tanh z")
axes[1].plot(z, mlp.tanh_prime(z), label="tanh' z")
for ax in axes:
    ax.axhline(0, color="0.8", lw=0.8)
    ax.legend()
    ax.set_xlabel("z")
fig.tight_layout()
plt.show()
plt.close(fig)

# %% [markdown]
# ### Exercise 1 · `sigmoid_prime`
#
# Write `sigmoid_prime(z)` $= \sigma(z)(1 - \sigma(z))$, elementwise, for a tensor of any shape. You may use
# `mlp.sigmoid`.

# %% [solution] id=sigmoid_prime
def sigmoid_prime(z):
    r"""The derivative :math:`\sigma'(z) = \sigma(z)\,(1 - \sigma(z))`, elementwise."""
    ### BEGIN SOLUTION
    s = mlp.sigmoid(z)
    return s * (1.0 - s)
    ### END SOLUTION

# %% [check] id=check_sigmoid_prime points=2
z_check = torch.linspace(-6, 6, 13, dtype=torch.float64)
result = sigmoid_prime(z_check)
checks.check_shape(result, (13,), name="sigmoid_prime(z)")
checks.check_close(result, mlp.sigmoid_prime(z_check), name="sigmoid_prime(z)")
checks.check_close(sigmoid_prime(torch.zeros(1)), [0.25], name="sigmoid_prime(0) (should be 1/4)")
checks.passed("sigmoid_prime")
### BEGIN HIDDEN TESTS
zz = torch.randn(3, 4, 5, generator=torch.Generator().manual_seed(21), dtype=torch.float64) * 4
zz_req = zz.clone().requires_grad_(True)
(autograd_d,) = torch.autograd.grad(torch.sigmoid(zz_req).sum(), zz_req)
checks.check_close(sigmoid_prime(zz), autograd_d, name="sigmoid_prime against autograd on a (3, 4, 5) tensor")
checks.check_dtype(sigmoid_prime(zz), torch.float64, name="sigmoid_prime of a float64 z")
### END HIDDEN TESTS

# %% [markdown]
# ## 2 · A network is a function from vectors to vectors
#
# Arrange neurons in **layers**. Layer 0 is the input $x \in \mathbb{R}^{D_0}$; layer $l = 1, \dots, L$ has
# $D_l$ neurons, each connected to every neuron of layer $l - 1$. Collect the weights of layer $l$ in a matrix
# $W^l$ of shape $(D_l, D_{l-1})$ (row $j$ holds the weights *into* neuron $j$) and the biases in $b^l$. Then a
# whole layer is one matrix-vector product and one elementwise activation:
#
# $$a^0 = x, \qquad z^l = W^l a^{l-1} + b^l, \qquad a^l = f(z^l), \qquad l = 1, \dots, L .$$
#
# The network is the composition $\hat y = a^L = F(x)$, a function from $\mathbb{R}^{D_0}$ to $\mathbb{R}^{D_L}$;
# computing it layer by layer is the **forward pass**. Layers between input and output are **hidden**. In
# this course the hidden layers use $f = \sigma$ or $\tanh$ and the output layer always uses $\sigma$, so
# outputs lie in $(0, 1)$, like the 0/1 targets. For a batch of $N$ inputs stacked as the rows of $X$
# $(N, D_0)$, the same formula reads $Z^l = A^{l-1} W^{l\top} + b^l$, shape $(N, D_l)$.
#
# `mlp.init_params([2, 3, 1])` makes a network with 2 inputs, 3 hidden neurons and 1 output: a list of
# `(W, b)` pairs, one per layer.

# %%
params = mlp.init_params([2, 3, 1], seed=profile.seed)
for l, (W, b) in enumerate(params, start=1):
    print(f"layer {l}: W{l} has shape {tuple(W.shape)}, b{l} has shape {tuple(b.shape)}")
X_xor, y_xor = data.logic_gate("xor")
X_xor, T_xor = X_xor.double(), y_xor.double()[:, None]  # (4, 2) inputs, (4, 1) targets
zs, activations = mlp.forward(params, X_xor)
print("untrained outputs on the XOR inputs:", activations[-1][:, 0].round(decimals=3).tolist())

# %% [markdown]
# ### Exercise 2 · `forward`
#
# Write the forward pass `forward(params, X, *, activation="sigmoid")`. Return two lists: `zs` with
# $z^1, \dots, z^L$ and `activations` with $a^0 = X, a^1, \dots, a^L$ (so one more entry than `zs`). Hidden
# layers use `mlp.ACTIVATIONS[activation][0]`; the **last** layer always uses `mlp.sigmoid`. For a batch,
# $z = a\,W^\top + b$ (`a @ W.T + b`).

# %% [solution] id=forward
def forward(params, X, *, activation="sigmoid"):
    r"""The forward pass: :math:`z^l = a^{l-1} W^{l\top} + b^l`, :math:`a^l = f(z^l)`, sigmoid at the output.

    Args:
        params: list of L pairs (W, b).
        X: inputs, shape (N, D_0).
        activation: ``"sigmoid"`` or ``"tanh"`` for the hidden layers.

    Returns:
        ``(zs, activations)``: zs holds :math:`z^1 \dots z^L`, each of shape (N, D_l); activations holds
        :math:`a^0 = X, a^1 \dots a^L` (L + 1 tensors). The network's output is ``activations[-1]``.
    """
    ### BEGIN SOLUTION
    f, _ = mlp.ACTIVATIONS[activation]
    zs, activations = [], [X]
    for layer, (W, b) in enumerate(params, start=1):
        z = activations[-1] @ W.T + b
        zs.append(z)
        activations.append(mlp.sigmoid(z) if layer == len(params) else f(z))
    return zs, activations
    ### END SOLUTION

# %% [check] id=check_forward points=3
result = forward(params, X_xor)
checks.check_type(result, tuple, name="forward(params, X)")
my_zs, my_acts = result
ref_zs, ref_acts = mlp.forward(params, X_xor)
checks.check_true(len(my_zs) == 2 and len(my_acts) == 3,
                  f"for 2 layers expected 2 z's and 3 activations (a0 = X too), got {len(my_zs)} and {len(my_acts)}")
for l in range(2):
    checks.check_close(my_zs[l], ref_zs[l], name=f"zs[{l}] (z of layer {l + 1})")
for l in range(3):
    checks.check_close(my_acts[l], ref_acts[l], name=f"activations[{l}]")
checks.passed("forward")
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(22)
for sizes, act in [([3, 1], "sigmoid"), ([4, 5, 2, 3], "tanh"), ([6, 2, 6], "sigmoid")]:
    p = mlp.init_params(sizes, seed=int(torch.randint(0, 100, (1,), generator=g)))
    Xh = torch.randn(7, sizes[0], generator=g, dtype=torch.float64)
    mz, ma = forward(p, Xh, activation=act)
    rz, ra = mlp.forward(p, Xh, activation=act)
    checks.check_true(len(mz) == len(rz) and len(ma) == len(ra), f"wrong number of layers for sizes {sizes}")
    for mine_t, ref_t in zip(mz + ma, rz + ra):
        checks.check_close(mine_t, ref_t, name=f"forward with sizes {sizes} and {act}")
### END HIDDEN TESTS

# %% [markdown]
# ## 3 · Error terms, from the output layer backwards
#
# Training means lowering the error, as in notebook 02, now summed over examples *and* outputs:
#
# $$E = \frac12 \sum_n \sum_k (t_{nk} - \hat y_{nk})^2 .$$
#
# We need $\partial E / \partial W^l$ for every layer. The trick is to first compute, for every neuron, its
# **error term** $\delta^l_j = \partial E / \partial z^l_j$: how much $E$ changes when that neuron's weighted
# input changes. (Take one example; for a batch, everything is summed over examples.)
#
# **Output layer.** $E$ depends on $z^L_j$ only through $\hat y_j = \sigma(z^L_j)$, so by the chain rule
#
# $$\delta^L_j = \frac{\partial E}{\partial \hat y_j}\,\frac{\partial \hat y_j}{\partial z^L_j}
#   = (\hat y_j - t_j)\,\sigma'(z^L_j), \qquad \delta^L = (\hat y - t) \odot \sigma'(z^L).$$
#
# **Hidden layer.** $z^l_j$ influences $E$ through every neuron $k$ of the next layer, via
# $z^{l+1}_k = \sum_j W^{l+1}_{kj}\, f(z^l_j) + b^{l+1}_k$. Adding up those paths,
#
# $$\delta^l_j = \sum_k \frac{\partial E}{\partial z^{l+1}_k}\,\frac{\partial z^{l+1}_k}{\partial z^l_j}
#   = \sum_k \delta^{l+1}_k\, W^{l+1}_{kj}\, f'(z^l_j), \qquad
#   \delta^l = \big(W^{l+1\top} \delta^{l+1}\big) \odot f'(z^l).$$
#
# The error flows **backwards** through the same weights the signal flowed forwards through: hence
# *backpropagation*. Each $\delta^l$ needs only $\delta^{l+1}$, so one backward sweep gives them all.
#
# **Weights.** Since $z^l_j = \sum_i W^l_{ji} a^{l-1}_i + b^l_j$,
#
# $$\frac{\partial E}{\partial W^l_{ji}} = \delta^l_j\, a^{l-1}_i, \qquad \frac{\partial E}{\partial b^l_j} = \delta^l_j,$$
#
# the error at the neuron times the activity at the input of the weight; for a batch these are summed over
# examples: $\partial E / \partial W^l = \Delta^{l\top} A^{l-1}$ with $\Delta^l$ of shape $(N, D_l)$. Then
# every weight takes the gradient-descent step $W^l \leftarrow W^l - \eta\, \partial E / \partial W^l$.
#
# *A note on signs:* Mitchell's *Machine Learning* (1997, ch. 4) defines $\delta$ as $-\partial E / \partial z$ and therefore *adds*
# $\eta\,\delta\,a$; we follow Nielsen's $\delta = +\partial E / \partial z$ and subtract. Same update.
#
# In batch form (rows are examples) the hidden rule reads `(delta_next @ W_next) * f_prime(z)`.
#
# ### Exercise 3 · `output_delta`
#
# Write `output_delta(z, y_hat, T)` $= (\hat y - t) \odot \sigma'(z)$; all three arguments have shape $(N, D_L)$.

# %% [solution] id=output_delta
def output_delta(z, y_hat, T):
    r"""The output layer's error term :math:`\delta^L = (\hat y - t) \odot \sigma'(z^L)`.

    Args:
        z: :math:`z^L`, shape (N, D_L).
        y_hat: the outputs :math:`\hat y = \sigma(z^L)`, shape (N, D_L).
        T: targets, shape (N, D_L).

    Returns:
        :math:`\delta^L`, shape (N, D_L).
    """
    ### BEGIN SOLUTION
    return (y_hat - T) * mlp.sigmoid_prime(z)
    ### END SOLUTION

# %% [check] id=check_output_delta points=2
zs, activations = mlp.forward(params, X_xor)
result = output_delta(zs[-1], activations[-1], T_xor)
checks.check_shape(result, (4, 1), name="output_delta(z, y_hat, T)")
checks.check_close(result, mlp.output_delta(zs[-1], activations[-1], T_xor), name="output_delta(z, y_hat, T)")
checks.passed("output_delta")
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(23)
zh = torch.randn(6, 4, generator=g, dtype=torch.float64)
Th = torch.rand(6, 4, generator=g, dtype=torch.float64)
checks.check_close(output_delta(zh, mlp.sigmoid(zh), Th), mlp.output_delta(zh, mlp.sigmoid(zh), Th),
                   name="output_delta on a (6, 4) batch")
checks.check_close(output_delta(zh, mlp.sigmoid(zh), mlp.sigmoid(zh)), torch.zeros(6, 4),
                   name="output_delta when the output equals the target")
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 4 · `hidden_delta`
#
# Write `hidden_delta(delta_next, W_next, z, *, activation="sigmoid")` $= (\delta^{l+1} W^{l+1}) \odot f'(z^l)$
# for a batch: `delta_next` $(N, D_{l+1})$, `W_next` $(D_{l+1}, D_l)$, `z` $(N, D_l)$. Take $f'$ from
# `mlp.ACTIVATIONS[activation][1]`. Check the shapes on paper first: which product gives $(N, D_l)$?

# %% [solution] id=hidden_delta
def hidden_delta(delta_next, W_next, z, *, activation="sigmoid"):
    r"""A hidden layer's error term :math:`\delta^l = (\delta^{l+1} W^{l+1}) \odot f'(z^l)`.

    Args:
        delta_next: :math:`\delta^{l+1}`, shape (N, D_{l+1}).
        W_next: :math:`W^{l+1}`, shape (D_{l+1}, D_l).
        z: :math:`z^l`, shape (N, D_l).
        activation: the hidden layers' activation.

    Returns:
        :math:`\delta^l`, shape (N, D_l).
    """
    ### BEGIN SOLUTION
    _, f_prime = mlp.ACTIVATIONS[activation]
    return (delta_next @ W_next) * f_prime(z)
    ### END SOLUTION

# %% [check] id=check_hidden_delta points=3
delta_out = mlp.output_delta(zs[-1], activations[-1], T_xor)
result = hidden_delta(delta_out, params[1][0], zs[0])
checks.check_shape(result, (4, 3), name="hidden_delta(delta_out, W2, z1)")
sigmoid_prime_ = mlp.ACTIVATIONS["sigmoid"][1]
checks.check_close(result, mlp.hidden_delta(delta_out, params[1][0], zs[0]), name="hidden_delta(delta_out, W2, z1)",
                   mistakes={"f'(z) left out: multiply δW entry by entry by f'(z^l)": delta_out @ params[1][0],
                             "f' applied to the activation a = f(z) instead of to z":
                                 (delta_out @ params[1][0]) * sigmoid_prime_(activations[1])})
checks.passed("hidden_delta")
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(24)
for n, d_next, d in [(1, 1, 1), (5, 3, 7), (8, 10, 4)]:
    dn = torch.randn(n, d_next, generator=g, dtype=torch.float64)
    Wn = torch.randn(d_next, d, generator=g, dtype=torch.float64)
    zh = torch.randn(n, d, generator=g, dtype=torch.float64)
    for act in ("sigmoid", "tanh"):
        checks.check_close(hidden_delta(dn, Wn, zh, activation=act), mlp.hidden_delta(dn, Wn, zh, activation=act),
                           name=f"hidden_delta with N={n}, D_next={d_next}, D={d}, {act}")
### END HIDDEN TESTS

# %% [markdown]
# The library's `mlp.backward` strings these together: one forward pass, $\delta^L$, then $\delta^{L-1},
# \dots, \delta^1$, and at each layer the gradients $\Delta^{l\top} A^{l-1}$ and $\sum_n \delta^l_n$. One
# gradient-descent step with them lowers the error:

# %%
grads = mlp.backward(params, X_xor, T_xor)
for l, (dW, db) in enumerate(grads, start=1):
    print(f"dE/dW{l} has shape {tuple(dW.shape)} (same as W{l}); dE/db{l} has shape {tuple(db.shape)}")
stepped = mlp.update(params, grads, eta=0.5)
print(f"E before: {float(mlp.loss(params, X_xor, T_xor)):.5f}   after one step: {float(mlp.loss(stepped, X_xor, T_xor)):.5f}")

# %% [markdown]
# ## 4 · Parameters and hyper-parameters
#
# The **parameters** are what training learns: every $W^l$ and $b^l$ (here $2\cdot3 + 3 + 3\cdot1 + 1 = 13$
# numbers; VGG in notebook 05 has 140 million). The **hyper-parameters** are the choices *we* make before
# training, which gradient descent does not touch: the number of layers and neurons per layer, the
# activation, the learning rate $\eta$, the batch size, the number of epochs, the initialisation. They are
# chosen by trying values and comparing on data the network was not trained on (a *validation* set),
# never on the test set we report at the end.
#
# ## 5 · Gradient checking
#
# A wrong gradient rarely crashes anything: the network just learns badly, and you cannot tell why. The
# definition of the derivative gives an independent check. For each parameter $\theta_i$,
#
# $$\frac{\partial E}{\partial \theta_i} \approx \frac{E(\theta + \epsilon e_i) - E(\theta - \epsilon e_i)}{2\epsilon},$$
#
# where $e_i$ is the unit vector along $\theta_i$. This *central* difference is accurate to order $\epsilon^2$
# (a Taylor expansion cancels the $\epsilon$ terms). We compare the two gradients $g$ (backprop) and
# $\tilde g$ (finite differences) by the relative error
# $r = \lVert g - \tilde g \rVert / (\lVert g \rVert + \lVert \tilde g \rVert)$. In float64 with
# $\epsilon = 10^{-6}$, a correct gradient gives $r \approx 10^{-8}$ or smaller; a bug gives $r$ near 1. Use
# float64: in float32 the round-off error $\approx 10^{-7}/\epsilon$ swamps the comparison. It costs two
# evaluations of $E$ per parameter, so we use it to test, never to train.
#
# ### Exercise 5 · `numerical_gradient`
#
# Write `numerical_gradient(f, theta, *, eps)` for a function `f` that maps a tensor shaped like `theta` to a
# number. Loop over the entries (`theta.numel()`); for entry $i$, build a perturbation of zeros with `eps` at
# entry $i$ (`theta.new_zeros(theta.shape)`, then index its flattened `.view(-1)`), and evaluate
# `f(theta + step)` and `f(theta - step)`. Do not modify `theta` itself.

# %% [solution] id=numerical_gradient
def numerical_gradient(f, theta, *, eps=gradcheck.DEFAULT_EPS):
    r"""The central-difference gradient of a scalar function ``f`` at ``theta``, one entry at a time.

    Args:
        f: maps a tensor shaped like ``theta`` to a 0-d tensor (or a number).
        theta: the point, any shape; not modified (``f`` sees perturbed copies).
        eps: the step :math:`\epsilon`.

    Returns:
        A tensor of the shape and dtype of ``theta``.
    """
    ### BEGIN SOLUTION
    grad = theta.new_zeros(theta.shape)
    for i in range(theta.numel()):
        step = theta.new_zeros(theta.shape)
        step.view(-1)[i] = eps
        grad.view(-1)[i] = (float(f(theta + step)) - float(f(theta - step))) / (2 * eps)
    return grad
    ### END SOLUTION

# %% [check] id=check_numerical_gradient points=3
W1 = params[0][0]
E_of_W1 = lambda W: mlp.loss([(W, params[0][1]), params[1]], X_xor, T_xor)  # noqa: E731
result = numerical_gradient(E_of_W1, W1)
checks.check_shape(result, tuple(W1.shape), name="numerical_gradient(E_of_W1, W1)")
checks.check_close(result, gradcheck.numerical_gradient(E_of_W1, W1), name="numerical_gradient(E_of_W1, W1)",
                   rtol=1e-6, atol=1e-9)
checks.check_true(gradcheck.relative_error(result, mlp.backward(params, X_xor, T_xor)[0][0]) < 1e-6,
                  "your finite differences disagree with backprop's dE/dW1: is it a central difference?")
checks.passed("numerical_gradient")
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(25)
A = torch.randn(5, 5, generator=g, dtype=torch.float64)
v = torch.randn(5, generator=g, dtype=torch.float64)
v_keep = v.clone()
checks.check_close(numerical_gradient(lambda u: u @ A @ u, v), (A + A.T) @ v, name="gradient of a quadratic form",
                   rtol=1e-6, atol=1e-8)
checks.check_true(torch.equal(v, v_keep), "numerical_gradient must not modify theta")
cube = torch.randn(2, 3, 2, generator=g, dtype=torch.float64)
checks.check_close(numerical_gradient(lambda u: (u ** 3).sum(), cube, eps=1e-5), 3 * cube ** 2,
                   name="gradient of sum(u^3) on a (2, 3, 2) tensor", rtol=1e-6, atol=1e-8)
### END HIDDEN TESTS

# %% [markdown]
# The check on the whole network, for every W and b, and what a typical bug looks like (forgetting the
# $f'(z^l)$ factor in the hidden δ):

# %%
numerical = gradcheck.network_numerical_gradients(params, X_xor, T_xor)
print(f"backprop vs finite differences: largest relative error {gradcheck.max_relative_error(grads, numerical):.2e}")


def backward_without_f_prime(params, X, T):
    """A buggy backprop: the hidden δ lacks the factor f'(z)."""
    zs, acts = mlp.forward(params, X)
    delta2 = mlp.output_delta(zs[1], acts[2], T)
    delta1 = delta2 @ params[1][0]  # bug: should be multiplied by sigmoid'(z1)
    return [(delta1.T @ acts[0], delta1.sum(0)), (delta2.T @ acts[1], delta2.sum(0))]


buggy = backward_without_f_prime(params, X_xor, T_xor)
print(f"buggy backprop vs finite differences: largest relative error {gradcheck.max_relative_error(buggy, numerical):.2e}")

# %% [markdown]
# ## 6 · Training on XOR
#
# With a hidden layer of three sigmoid neurons, XOR becomes learnable. We train by gradient descent on all
# four examples at once (batch size 4) with `mlp.train`; the hidden layer learns two useful features (roughly
# "OR" and "AND"), and the output combines them. The right panel colours the plane by the network's output:
# the boundary is no longer a straight line.

# %%
xor_epochs = 200 * profile.train_epochs
xor_params, xor_losses = mlp.train(mlp.init_params([2, 3, 1], seed=profile.seed), X_xor, T_xor,
                                   epochs=xor_epochs, eta=2.0, batch_size=4)
outputs = mlp.forward(xor_params, X_xor)[1][-1][:, 0]
print(f"after {xor_epochs} epochs, outputs on (0,0), (0,1), (1,0), (1,1): {outputs.round(decimals=3).tolist()}")

grid = torch.linspace(-0.5, 1.5, 101, dtype=torch.float64)
g1, g2 = torch.meshgrid(grid, grid, indexing="xy")
surface = mlp.forward(xor_params, torch.stack([g1.flatten(), g2.flatten()], 1))[1][-1].reshape(g1.shape)
fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
axes[0].plot(xor_losses)
axes[0].set(xlabel="epoch", ylabel="E / N", yscale="log", title="training error on XOR")
mesh = axes[1].contourf(g1, g2, surface, levels=20, cmap="RdBu_r", vmin=0, vmax=1)
axes[1].scatter(X_xor[:, 0], X_xor[:, 1], c=T_xor[:, 0], cmap="RdBu_r", edgecolors="white", linewidths=2, s=90, vmin=0, vmax=1)
axes[1].set(title="network output over the plane", xlabel="$x_1$", ylabel="$x_2$")
fig.colorbar(mesh, ax=axes[1])
fig.tight_layout()
plt.show()
plt.close(fig)

# %% [markdown]
# ## 7 · Handwritten digits
#
# The same code scales to a real task: the UCI handwritten digits that ship with scikit-learn, 1,797 images
# of $8 \times 8$ pixels (no download needed). Each image becomes a vector of 64 inputs; the target is a
# *one-hot* vector of 10 outputs (a 1 in the position of the digit). The network $64 \to 30 \to 10$ has
# $64\cdot30 + 30 + 30\cdot10 + 10 = 2{,}260$ parameters. We train with mini-batch SGD (10 examples per step,
# learning rate 3, as in Nielsen's book) and report accuracy on **test** images the network never saw: the
# predicted digit is the output with the largest value.

# %%
digits = data.digits(seed=profile.seed, limit=profile.train_samples)
X_train, X_test = digits.x_train.flatten(1).double(), digits.x_test.flatten(1).double()  # (N, 64)
T_train = mlp.one_hot(digits.y_train, 10)  # (N, 10)
print(f"{len(X_train)} training and {len(X_test)} test images")
digit_params, digit_losses = mlp.train(mlp.init_params([64, 30, 10], seed=profile.seed), X_train, T_train,
                                       epochs=profile.train_epochs, eta=3.0, batch_size=10, seed=profile.seed)
test_accuracy = mlp.accuracy(digit_params, X_test, digits.y_test)
print(f"test accuracy after {profile.train_epochs} epochs: {100 * test_accuracy:.1f} %")

predicted = mlp.forward(digit_params, X_test)[1][-1].argmax(1)
fig, axes = plt.subplots(2, 8, figsize=(9, 2.8))
for ax, image, label, guess in zip(axes.flat, digits.x_test, digits.y_test, predicted):
    ax.imshow(image[0], cmap="gray_r")
    ax.set_title(f"{int(guess)}" + ("" if guess == label else f" (is {int(label)})"),
                 color="k" if guess == label else "C3", fontsize=9)
    ax.axis("off")
fig.suptitle("test images and the network's guesses")
fig.tight_layout()
plt.show()
plt.close(fig)

# %% [markdown]
# ## 8 · The same network in PyTorch
#
# PyTorch's **autograd** records the operations of the forward pass and runs backpropagation for us. Our
# `(W, b)` pairs become `nn.Linear` layers (which store the weight as $(D_{out}, D_{in})$, the same layout), and
# `loss.backward()` fills every parameter's `.grad`. If our hand derivation is right, the two gradients agree
# to the last few digits of float64:

# %%
net = mlp.to_torch(digit_params)
print(net)
batch_X, batch_T = X_train[:32], T_train[:32]
torch.testing.assert_close(net(batch_X), mlp.forward(digit_params, batch_X)[1][-1])  # same function

E = 0.5 * ((batch_T - net(batch_X)) ** 2).sum()
net.zero_grad()
E.backward()
torch_grads = [(m.weight.grad, m.bias.grad) for m in net if isinstance(m, torch.nn.Linear)]
hand_grads = mlp.backward(digit_params, batch_X, batch_T)
print(f"hand-written backprop vs autograd: largest relative error "
      f"{gradcheck.max_relative_error(hand_grads, torch_grads):.1e}")

# %% [markdown]
# In practice we let autograd do this work, from notebook 04 on. Knowing what it computes, error terms
# flowing backwards through the weights, is what lets us reason about vanishing gradients, choose
# activations, and (in notebook 06) differentiate a loss with respect to the *image* instead of the weights.
#
# ## Lecture demo · one backprop pass, step by step
#
# A $2 \to 2 \to 1$ network on one XOR example. Each click computes one stage: the hidden layer, the output
# and its error, $\delta^2$, $\delta^1$, the gradients, and the update.

# %%
from nstlab.widgets.backprop_stepper import backprop_stepper

backprop_stepper()

# %% [markdown]
# ## Summary
#
# * Sigmoid and tanh neurons are smooth steps with cheap derivatives: $\sigma' = \sigma(1 - \sigma)$,
#   $\tanh' = 1 - \tanh^2$.
# * A network computes $z^l = W^l a^{l-1} + b^l$, $a^l = f(z^l)$ layer by layer.
# * Backpropagation: $\delta^L = (\hat y - t)\odot\sigma'(z^L)$, $\delta^l = (W^{l+1\top}\delta^{l+1})\odot f'(z^l)$,
#   $\partial E/\partial W^l = \delta^l a^{l-1\top}$.
# * Check hand-written gradients with central differences in float64; autograd gives the same numbers.
# * One hidden layer learns XOR; $64 \to 30 \to 10$ recognises digits.
