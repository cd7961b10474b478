# %% [markdown]
# # 03 · Neural networks and backpropagation
#
# Notebook 01 ended with XOR, which no single perceptron can learn. The fix is to connect units in layers,
# so that hidden units bend the decision boundary, and to make every unit *smooth*, so that gradient descent
# (notebook 02) can tell each weight which way to move. Computing those gradients efficiently, for every
# weight in the network at once, is **backpropagation**. We derive it, build it piece by piece, check it
# against the definition of the derivative and against PyTorch, and train networks on XOR and on
# handwritten digits with a backward pass and a training loop that you write yourself.
#
# **In this notebook you will learn**
#
# 1. sigmoid and tanh neurons, and their derivatives;
# 2. to see a network as a function from an input vector to an output vector, computed by a forward pass;
# 3. to compute error terms $\delta$ from the output layer backwards, then every gradient: the whole backward
#    pass;
# 4. the difference between parameters and hyper-parameters;
# 5. numerical gradient checking, the test every hand-written gradient should pass;
# 6. mini-batch stochastic gradient descent, and why its step uses the batch's *mean* gradient;
# 7. to train on XOR and on handwritten digits with your own code, and what initialisation and overfitting do;
# 8. softmax outputs and the cross-entropy, and why they learn faster than squared error on sigmoid outputs;
# 9. the same network in PyTorch with autograd.
#
# **Runtime** (fast profile): about 35 s on a 2-core CPU; GPU: not measured yet.

# %%
import matplotlib.pyplot as plt
import torch

from nstlab import checks, data, gradcheck, mlp, profiles

# The networks here are tiny: splitting each small matrix product over several CPU threads costs more in
# coordination than it saves, and on a busy machine it was measured to be up to fifty times slower.
torch.set_num_threads(1)
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
# ### Exercise 5 · `backward`, the whole backward pass
#
# Now string the pieces together. `backward(params, X, T, *, activation="sigmoid")` returns one pair
# $(\partial E/\partial W^l, \partial E/\partial b^l)$ per layer, in layer order $l = 1, \dots, L$, each summed
# over the batch and shaped like $(W^l, b^l)$:
#
# 1. one forward pass (your `forward`) gives the $z^l$ and the $a^l$;
# 2. `output_delta` gives $\delta^L$;
# 3. then, for $l = L, L-1, \dots, 1$: the gradients $\partial E/\partial W^l = \Delta^{l\top} A^{l-1}$, shape
#    $(D_l, D_{l-1})$, and $\partial E/\partial b^l = \sum_n \delta^l_n$, shape $(D_l,)$; and, unless $l = 1$,
#    the next error term $\delta^{l-1}$ from `hidden_delta` with $W^l$ and $z^{l-1}$.
#
# Mind Python's indices: `params[l - 1]` is layer $l$, `zs[l - 1]` is $z^l$ and `activations[l - 1]` is
# $a^{l-1}$. The sweep visits the layers backwards, but the list you return starts with layer 1. Pass
# `activation` on to everything that needs it. The gradient is the batch's **sum**, as $E$ is a sum.

# %% [solution] id=backward
def backward(params, X, T, *, activation="sigmoid"):
    r"""The gradient of :func:`loss` by backpropagation: one forward pass, then δ from the output back.

    Args:
        params: list of L pairs (W, b).
        X: inputs, shape (N, D_0).
        T: targets, shape (N, D_L).
        activation: the hidden layers' activation.

    Returns:
        A list of L pairs ``(dW, db)`` with the shapes of ``params``: :math:`\partial E/\partial W^l` and
        :math:`\partial E/\partial b^l`, summed over the batch.
    """
    ### BEGIN SOLUTION
    zs, activations = forward(params, X, activation=activation)
    delta = output_delta(zs[-1], activations[-1], T)  # delta^L, (N, D_L)
    grads = []
    for l in range(len(params), 0, -1):  # layer l = L, ..., 1
        grads.append((delta.T @ activations[l - 1], delta.sum(0)))  # (D_l, D_l-1) and (D_l,)
        if l > 1:
            delta = hidden_delta(delta, params[l - 1][0], zs[l - 2], activation=activation)  # delta^(l-1)
    return grads[::-1]
    ### END SOLUTION

# %% [check] id=check_backward points=4
result = backward(params, X_xor, T_xor)
checks.check_type(result, list, name="backward(params, X, T)")
checks.check_true(len(result) == len(params),
                  f"backward should return one (dW, db) pair per layer ({len(params)}), got {len(result)} entries")
checks.check_true(tuple(result[0][0].shape) != tuple(params[-1][0].shape),
                  "backward's pairs come in the order the sweep visits them (layer L first): return them in layer "
                  "order 1, ..., L, so that entry l - 1 belongs to layer l (reverse the list before returning)")
ref = mlp.backward(params, X_xor, T_xor)
for l, ((dW, db), (dW_ref, db_ref)) in enumerate(zip(result, ref), start=1):
    checks.check_shape(dW, tuple(dW_ref.shape), name=f"dE/dW{l} (backward(...)[{l - 1}][0])")
    checks.check_shape(db, tuple(db_ref.shape), name=f"dE/db{l} (backward(...)[{l - 1}][1])")
    checks.check_close(dW, dW_ref, name=f"dE/dW{l}", factors={"a mean over the batch where E, and so its gradient, is a sum": 1 / 4})
    checks.check_close(db, db_ref, name=f"dE/db{l}", factors={"a mean over the batch where E, and so its gradient, is a sum": 1 / 4})
g = torch.Generator().manual_seed(30)
deep = mlp.init_params([3, 4, 5, 2], seed=3)
X_deep, T_deep = torch.randn(6, 3, generator=g, dtype=torch.float64), torch.rand(6, 2, generator=g, dtype=torch.float64)
mine_deep, ref_deep = backward(deep, X_deep, T_deep, activation="tanh"), mlp.backward(deep, X_deep, T_deep, activation="tanh")
sigmoid_deep = mlp.backward(deep, X_deep, T_deep)
checks.check_true(len(mine_deep) == 3, f"for 3 layers backward should return 3 pairs, got {len(mine_deep)}")
for l in range(3):
    checks.check_close(mine_deep[l][0], ref_deep[l][0], name=f"dE/dW{l + 1} of a 3 → 4 → 5 → 2 tanh network",
                       mistakes={"the hidden layers' derivative is the sigmoid's: pass activation on to forward and "
                                 "hidden_delta": sigmoid_deep[l][0]})
    checks.check_close(mine_deep[l][1], ref_deep[l][1], name=f"dE/db{l + 1} of a 3 → 4 → 5 → 2 tanh network")
checks.passed("backward")
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(31)
for sizes, act, n in [([5, 1], "sigmoid", 3), ([2, 6, 6, 6, 3], "sigmoid", 1), ([4, 3, 7, 2], "tanh", 9)]:
    p = [(W * 2, torch.randn(b.shape, generator=g, dtype=torch.float64)) for W, b in mlp.init_params(sizes, seed=n)]
    Xh, Th = torch.randn(n, sizes[0], generator=g, dtype=torch.float64), torch.rand(n, sizes[-1], generator=g, dtype=torch.float64)
    mine_h = backward(p, Xh, Th, activation=act)
    checks.check_true(len(mine_h) == len(p), f"wrong number of layers for sizes {sizes}")
    for (dW_h, db_h), (dW_o, db_o) in zip(mine_h, mlp.autograd_gradients(p, Xh, Th, activation=act)):
        checks.check_close(dW_h, dW_o, name=f"dE/dW against autograd for sizes {sizes}, {act}", rtol=1e-7, atol=1e-10)
        checks.check_close(db_h, db_o, name=f"dE/db against autograd for sizes {sizes}, {act}", rtol=1e-7, atol=1e-10)
### END HIDDEN TESTS

# %% [markdown]
# One gradient-descent step with your gradients lowers the error:

# %%
grads = backward(params, X_xor, T_xor)
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
# ### Exercise 6 · `numerical_gradient`
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
# The check on your whole `backward`, for every W and b, and what a typical bug looks like (forgetting the
# $f'(z^l)$ factor in the hidden δ):

# %%
numerical = gradcheck.network_numerical_gradients(params, X_xor, T_xor)
print(f"your backward vs finite differences: largest relative error {gradcheck.max_relative_error(grads, numerical):.2e}")

zs, activations = mlp.forward(params, X_xor)
delta2 = mlp.output_delta(zs[1], activations[2], T_xor)
delta1_buggy = delta2 @ params[1][0]  # bug: should be multiplied by sigmoid'(z1)
buggy = [(delta1_buggy.T @ X_xor, delta1_buggy.sum(0)), grads[1]]
print(f"buggy backprop vs finite differences: largest relative error {gradcheck.max_relative_error(buggy, numerical):.2e}")

# %% [markdown]
# ## 6 · Mini-batch stochastic gradient descent
#
# Notebook 02 defined $E$ as a **sum** over the examples, and the gradient of a sum is the sum of the
# examples' gradients: that is what `backward` returns. Batch gradient descent takes one step per pass over
# all $N$ examples; stochastic gradient descent takes one per example. In between, **mini-batch SGD**
# (Nielsen's `network.py`) shuffles the training set at every epoch, cuts it into batches of $m$ examples, and
# takes one step per batch: many cheap, slightly noisy steps per epoch.
#
# Here the library departs from notebook 02, and says so: **it steps with the batch's *mean* gradient**,
#
# $$W \leftarrow W - \frac{\eta}{m} \sum_{n \in \text{batch}} \frac{\partial E_n}{\partial W},$$
#
# which is the summed gradient of `backward` with the learning rate $\eta / m$:
# `mlp.update(params, grads, eta=eta / m)`. Why? A sum of $m$ gradients grows with $m$, so with the sum the
# size of a step would depend on the batch size, and every change of $m$ would need a new $\eta$ (with
# $m = 100$, the $\eta$ that suits $m = 1$ takes steps a hundred times too long and diverges). With the mean,
# a step stays about the size of one example's gradient whatever $m$ is, and $\eta$ can be chosen once. The price is
# that $\eta$ means something else than in notebook 02: Nielsen's $\eta = 3$ with $m = 10$ is a step of
# $0.3$ times the summed gradient. PyTorch's losses average for the same reason (`reduction="mean"`, their
# default), and notebook 04 trains with them. When $m$ does not divide $N$, the last batch of an epoch is
# smaller: divide by *its* size.
#
# ### Exercise 7 · `train`, the training loop
#
# Write `train(params, X, T, *, epochs, eta, batch_size=10, seed=0, activation="sigmoid")`. For each epoch:
#
# * shuffle with exactly `order = torch.randperm(N, generator=torch.Generator().manual_seed(seed + epoch))`
#   (then your run can be compared with the library's, step by step);
# * walk through `order` in batches of `batch_size` indices; for each batch, compute the gradient with your
#   `backward` on those rows of `X` and `T`, and step with `mlp.update` and the learning rate for the *mean*
#   gradient;
# * after the epoch, record $E/N$ on the whole training set: `float(mlp.loss(params, X, T, activation=activation)) / N`.
#
# Return `(params, losses)`. `mlp.update` returns new tensors, so the `params` passed in stay as they were.

# %% [solution] id=train
def train(params, X, T, *, epochs, eta, batch_size=10, seed=0, activation="sigmoid"):
    r"""Mini-batch stochastic gradient descent with :func:`backward`, as in Nielsen's ``network.py``.

    Each epoch shuffles the examples (seed ``seed + epoch``) and takes one step per batch of ``batch_size``
    examples with the batch's *mean* gradient, :math:`W \leftarrow W - \frac{\eta}{m} \sum_{n \in \text{batch}}
    \partial E_n / \partial W`, where m is the size of that batch (the last one may be smaller).
    :func:`backward` returns the batch's summed gradient; dividing :math:`\eta` by m makes it the mean.

    Args:
        params: list of L pairs (W, b), not modified.
        X: inputs, shape (N, D_0).
        T: targets, shape (N, D_L).
        epochs: passes over the training set.
        eta: the learning rate :math:`\eta` for the mean gradient of a batch.
        batch_size: examples per step (m).
        seed: the shuffle of epoch e uses the seed ``seed + e``.
        activation: the hidden layers' activation.

    Returns:
        ``(params, losses)``: the trained parameters (new tensors) and E / N on the whole training set after
        each epoch.
    """
    ### BEGIN SOLUTION
    N = X.shape[0]
    losses = []
    for epoch in range(epochs):
        order = torch.randperm(N, generator=torch.Generator().manual_seed(seed + epoch))
        for start in range(0, N, batch_size):
            batch = order[start : start + batch_size]
            grads = backward(params, X[batch], T[batch], activation=activation)
            params = mlp.update(params, grads, eta=eta / len(batch))
        losses.append(float(mlp.loss(params, X, T, activation=activation)) / N)
    return params, losses
    ### END SOLUTION

# %% [check] id=check_train points=4
g = torch.Generator().manual_seed(32)
X_small, T_small = torch.randn(12, 3, generator=g, dtype=torch.float64), torch.rand(12, 3, generator=g, dtype=torch.float64)
p_small = mlp.init_params([3, 4, 3], seed=1)
p_keep = [(W.clone(), b.clone()) for W, b in p_small]
result = train(p_small, X_small, T_small, epochs=3, eta=0.5, batch_size=4, seed=2)
checks.check_type(result, tuple, name="train(...)")
checks.check_true(len(result) == 2, f"train should return (params, losses), got {len(result)} items")
mine_params, mine_losses = result
ref_params, ref_losses = mlp.train(p_small, X_small, T_small, epochs=3, eta=0.5, batch_size=4, seed=2)
summed, _ = mlp.train(p_small, X_small, T_small, epochs=3, eta=0.5 * 4, batch_size=4, seed=2)  # batches of 4: eta/4 -> eta
same_shuffle = p_small
for _ in range(3):
    same_shuffle, _ = mlp.train(same_shuffle, X_small, T_small, epochs=1, eta=0.5, batch_size=4, seed=2)
checks.check_true(all(torch.equal(W, W0) and torch.equal(b, b0) for (W, b), (W0, b0) in zip(p_small, p_keep)),
                  "train changed the params passed in: build new tensors (mlp.update does) instead of writing into W and b")
checks.check_true(len(mine_params) == 2, f"train should return one (W, b) pair per layer (2), got {len(mine_params)}")
for l in range(2):
    checks.check_close(mine_params[l][0], ref_params[l][0], name=f"W{l + 1} after 3 epochs of train",
                       mistakes={"each step uses the batch's summed gradient with η; the library steps with the mean, "
                                 "that is with η / m (m = the batch's size)": summed[l][0],
                                 "every epoch shuffles the same way: seed epoch e's shuffle with seed + e": same_shuffle[l][0]})
    checks.check_close(mine_params[l][1], ref_params[l][1], name=f"b{l + 1} after 3 epochs of train")
short_params, _ = train(p_small, X_small[:10], T_small[:10], epochs=1, eta=0.5, batch_size=4, seed=2)
short_ref, _ = mlp.train(p_small, X_small[:10], T_small[:10], epochs=1, eta=0.5, batch_size=4, seed=2)
checks.check_close(short_params[0][0], short_ref[0][0],
                   name="W1 after one epoch of 10 examples in batches of 4 (the last batch holds only 2: divide by its size)")
checks.check_true(type(mine_losses) is list and len(mine_losses) == 3,
                  f"losses should be a list with one number per epoch (3 epochs); got a {type(mine_losses).__name__}"
                  + (f" of length {len(mine_losses)}" if isinstance(mine_losses, (list, tuple)) else ""))
checks.check_close(mine_losses, ref_losses, name="losses (E / N after each epoch)",
                   factors={"E where the losses are E / N (N = 12 examples)": 12,
                            "the mean of ½(t - ŷ)² over all N·K = 36 entries, where the losses are E / N": 1 / 3})
checks.passed("train")
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(33)
for n, sizes, m, act, epochs in [(10, [2, 3, 1], 4, "sigmoid", 2), (7, [4, 5, 3, 2], 1, "tanh", 2), (9, [3, 2], 20, "sigmoid", 3)]:
    Xh, Th = torch.randn(n, sizes[0], generator=g, dtype=torch.float64), torch.rand(n, sizes[-1], generator=g, dtype=torch.float64)
    ph = mlp.init_params(sizes, seed=n)
    mine_p, mine_l = train(ph, Xh, Th, epochs=epochs, eta=0.8, batch_size=m, seed=n, activation=act)
    ref_p, ref_l = mlp.train(ph, Xh, Th, epochs=epochs, eta=0.8, batch_size=m, seed=n, activation=act)
    for (W_m, b_m), (W_r, b_r) in zip(mine_p, ref_p):
        checks.check_close(W_m, W_r, name=f"W after train with N={n}, batch_size={m}, {act}")
        checks.check_close(b_m, b_r, name=f"b after train with N={n}, batch_size={m}, {act}")
    checks.check_close(mine_l, ref_l, name=f"losses of train with N={n}, batch_size={m}, {act}")
### END HIDDEN TESTS

# %% [markdown]
# With your `backward` and `train`, a hidden layer of three sigmoid neurons learns XOR. All four examples
# form one batch (so this is batch gradient descent); the hidden layer learns two useful features (roughly
# "OR" and "AND"), and the output combines them. The right panel colours the plane by the network's output:
# the boundary is no longer a straight line.

# %%
xor_epochs = 200 * profile.train_epochs
xor_params, xor_losses = train(mlp.init_params([2, 3, 1], seed=profile.seed), X_xor, T_xor,
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
# ### Written question · the mean gradient
#
# Answer in a few sentences in the cell below (double-click it to edit); your instructor grades it by hand.
#
# **Question (2 points).** Notebook 02 stepped with $\eta\,\partial E/\partial W$, where $E$ is a sum over the
# examples; `train` steps with $\eta/m$ times the summed gradient of a batch of $m$. Suppose you switch a
# working run ($m = 10$, $\eta = 3$) to batches of $m = 100$. What happens to the size of a step with the
# mean, and with the sum if you keep $\eta = 3$? Which $\eta$ would make the summed version take the same
# steps as the mean?

# %% [written] id=written_mean_gradient points=2
# With the mean, a step is $\eta$ times an average of $m$ gradients, whose size does not grow with $m$:
# batches of 100 only make the average less noisy, so $\eta = 3$ still works (with ten times fewer steps per
# epoch). With the sum, a batch's gradient is about $m$ times one example's, so $\eta = 3$ with $m = 100$
# makes steps of about $300$ times one example's gradient, where the mean makes steps of about $3$ times it
# (and the sum with $m = 10$ about $30$ times): the steps are far too long, training overshoots and diverges.
# The summed version takes the same steps as the mean with $\eta_{\text{sum}} = \eta/m = 3/100 = 0.03$. That
# is what `train` does inside (`eta / len(batch)`), so that the library's $\eta$ is chosen once, whatever the
# batch size.

# %% [markdown]
# ## 7 · Handwritten digits, with your own code
#
# The same code scales to a real task: the UCI handwritten digits that ship with scikit-learn, 1,797 images
# of $8 \times 8$ pixels (no download needed). Each image becomes a vector of 64 inputs; the target is a
# *one-hot* vector of 10 outputs (a 1 in the position of the digit). The network $64 \to 30 \to 10$ has
# $64\cdot30 + 30 + 30\cdot10 + 10 = 2{,}260$ parameters. Your `train` trains it with mini-batches of 10
# examples and $\eta = 3$ for the mean gradient, as in Nielsen's book, and we report the accuracy on **test**
# images the network never saw: the predicted digit is the output with the largest value.

# %%
digits = data.digits(seed=profile.seed, limit=profile.train_samples)
X_train, X_test = digits.x_train.flatten(1).double(), digits.x_test.flatten(1).double()  # (N, 64)
T_train = mlp.one_hot(digits.y_train, 10)  # (N, 10)
print(f"{len(X_train)} training and {len(X_test)} test images")
digit_params, digit_losses = train(mlp.init_params([64, 30, 10], seed=profile.seed), X_train, T_train,
                                   epochs=profile.train_epochs, eta=3.0, batch_size=10, seed=profile.seed)
test_accuracy = mlp.accuracy(digit_params, X_test, digits.y_test)
print(f"test accuracy of your network after {profile.train_epochs} epochs: {100 * test_accuracy:.1f} %")

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
# ### Initialisation: why the weights start small
#
# `mlp.init_params` draws $W^l_{ji} \sim \mathcal N(0, 1/D_{l-1})$, not $\mathcal N(0, 1)$. The reason is in
# $z^l_j = \sum_i W^l_{ji} a^{l-1}_i + b^l_j$: a sum of $D_{l-1}$ independent terms has a variance $D_{l-1}$
# times that of one term. With $\mathcal N(0, 1)$ weights and the 64 pixels of a digit, $z$ is typically
# several units large, the sigmoid sits on one of its flat ends, $\sigma'(z) \approx 0$, and every $\delta$ that
# passes through it is multiplied by almost nothing: the neuron is **saturated** and learns slowly. Dividing
# the standard deviation by $\sqrt{D_{l-1}}$ keeps $z$ of order one, where $\sigma$ is steep. Left: the hidden
# activations of the untrained network on the training digits; right: the test accuracy after each epoch
# (the same training, only the start differs).

# %%
standard = mlp.init_params([64, 30, 10], seed=profile.seed)
inits = {"N(0, 1/D), as init_params": standard,
         "N(0, 1)": [(W * W.shape[1] ** 0.5, b) for W, b in standard]}  # undo the 1/sqrt(D_l-1) scaling
fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
for name, p in inits.items():
    a1 = mlp.forward(p, X_train)[1][1]  # hidden activations, (N, 30)
    saturated = float(((a1 < 0.02) | (a1 > 0.98)).double().mean())
    axes[0].hist(a1.flatten(), bins=40, range=(0, 1), alpha=0.6, label=f"{name}: {saturated:.0%} saturated")
    curve = []
    for epoch in range(profile.train_epochs):  # one epoch at a time (seed + epoch): the same run as epochs=...
        p, _ = mlp.train(p, X_train, T_train, epochs=1, eta=3.0, batch_size=10, seed=profile.seed + epoch)
        curve.append(mlp.accuracy(p, X_test, digits.y_test))
    axes[1].plot(range(1, profile.train_epochs + 1), curve, marker="o", label=name)
    print(f"{name:28s} hidden neurons saturated at the start: {saturated:5.1%}   test accuracy after epoch 1: "
          f"{curve[0]:.1%}, after epoch {profile.train_epochs}: {curve[-1]:.1%}")
axes[0].set(xlabel="hidden activation $a^1$ before training", ylabel="count", title="where the hidden neurons start")
axes[0].legend(fontsize=8)
axes[1].set(xlabel="epoch", ylabel="test accuracy", title="learning from each start")
axes[1].legend(fontsize=8)
fig.tight_layout()
plt.show()
plt.close(fig)

# %% [markdown]
# ### Overfitting: few examples, many parameters
#
# A network with 2,260 parameters trained on only 50 digits can learn those 50 by heart. Below, the same
# network trains for many epochs on the first 50 training digits; after each epoch we measure the accuracy
# on those 50 and on the test digits. The training accuracy climbs to 100 % while the test accuracy stops far
# below what the whole training set gave (dotted line): from then on the network fits the particular 50
# images, not digits in general. This gap is **overfitting**. The remedies are more data (the dotted line),
# stopping when the accuracy on held-out data stops improving (*early stopping*), a smaller network, or
# regularisation that keeps the weights small (Nielsen, ch. 3); each is a hyper-parameter choice made on a
# validation set, never on the test set.

# %%
few = 50
X_few, T_few, y_few = X_train[:few], T_train[:few], digits.y_train[:few]
overfit_epochs = 15 * profile.train_epochs
p = mlp.init_params([64, 30, 10], seed=profile.seed)
few_train_accuracy, few_test_accuracy = [], []
for epoch in range(overfit_epochs):
    p, _ = mlp.train(p, X_few, T_few, epochs=1, eta=3.0, batch_size=10, seed=profile.seed + epoch)
    few_train_accuracy.append(mlp.accuracy(p, X_few, y_few))
    few_test_accuracy.append(mlp.accuracy(p, X_test, digits.y_test))
print(f"trained on {few} digits for {overfit_epochs} epochs: training accuracy {few_train_accuracy[-1]:.0%}, "
      f"test accuracy {few_test_accuracy[-1]:.1%} (with all {len(X_train)} training digits: {test_accuracy:.1%})")

fig, ax = plt.subplots(figsize=(6.5, 3.4))
ax.plot(range(1, overfit_epochs + 1), few_train_accuracy, label=f"training accuracy ({few} digits)")
ax.plot(range(1, overfit_epochs + 1), few_test_accuracy, label="test accuracy")
ax.axhline(test_accuracy, color="grey", ls=":", label=f"test accuracy, trained on all {len(X_train)}")
ax.set(xlabel="epoch", ylabel="accuracy", title="overfitting: training and test accuracy part ways")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()
plt.close(fig)

# %% [markdown]
# ### Written question · overfitting
#
# Answer in a few sentences in the cell below (double-click it to edit); your instructor grades it by hand.
#
# **Question (2 points).** In the overfitting figure, the training accuracy on 50 digits reaches 100 % while
# the test accuracy stays far lower and stops improving. What has the network learned, and why does training
# longer not help? Name two remedies, and say on which data you would choose between them.

# %% [written] id=written_overfitting points=2
# With 2,260 parameters and only 50 examples, the network can fit those 50 images exactly, including what is
# peculiar to them (a particular stroke, a position), instead of what makes a digit a 3 in general. Once
# every training example is classified correctly, the gradient only makes the training outputs more
# confident; nothing in the 50 images tells the network about the test digits, so the test accuracy stays
# where it is. Remedies: more training data (the whole training set gives about 96 %), stopping early when the
# accuracy on held-out data stops rising, a smaller network, or regularisation such as weight decay (or
# augmenting the data with shifted digits). The choice between them, like every hyper-parameter, is made on a
# validation set held out from the training data, never on the test set, which must stay unseen to give an
# honest final estimate.

# %% [markdown]
# ## 8 · Softmax outputs and the cross-entropy
#
# ### The learning slowdown of squared error
#
# With the squared error, the output error term carries the factor $\sigma'(z^L)$:
# $\delta^L = (\hat y - t)\,\sigma'(z^L)$. When an output is badly wrong *and* saturated, say $\hat y = 0.98$
# for a target $t = 0$, then $\sigma'(z^L) = \hat y(1 - \hat y) \approx 0.02$ and the neuron barely moves,
# exactly when it should move most. Nielsen (*Neural Networks and Deep Learning*, ch. 3) shows it with one
# neuron: input $x = 1$, target $t = 0$, starting weights $w = b = 2$ (so $\hat y = \sigma(4) \approx 0.98$),
# and $\eta = 0.15$.
#
# The **cross-entropy** $C = -\big[t \ln \hat y + (1 - t) \ln (1 - \hat y)\big]$ removes the factor. Its
# derivative $\partial C/\partial \hat y = (\hat y - t)/\big(\hat y (1 - \hat y)\big)$ is divided by exactly what
# $\sigma'$ multiplies by, so
#
# $$\delta^L = \frac{\partial C}{\partial \hat y}\,\sigma'(z^L) = \hat y - t:$$
#
# the further the output is from its target, the faster it learns. Left: the neuron's output during
# training with each cost; right: the size of $\delta$ as a function of the output, for the target 0.

# %%
x_one, t_one, eta_one, steps = 1.0, 0.0, 0.15, 300
neuron_outputs = {}
for cost in ("squared error", "cross-entropy"):
    w, b = torch.tensor(2.0, dtype=torch.float64), torch.tensor(2.0, dtype=torch.float64)
    outputs = []
    for _ in range(steps):
        z = w * x_one + b
        y_hat = mlp.sigmoid(z)
        delta = (y_hat - t_one) * mlp.sigmoid_prime(z) if cost == "squared error" else y_hat - t_one
        w, b = w - eta_one * delta * x_one, b - eta_one * delta
        outputs.append(float(y_hat))
    neuron_outputs[cost] = outputs
    print(f"{cost:14s} output after 50 steps: {outputs[50]:.3f}, after {steps}: {outputs[-1]:.3f}")

y_axis = torch.linspace(0.001, 0.999, 200, dtype=torch.float64)
fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
for cost, outputs in neuron_outputs.items():
    axes[0].plot(outputs, label=cost)
axes[0].set(xlabel="step", ylabel=r"output $\hat y$ (target 0)", title="one neuron, started badly wrong")
axes[1].plot(y_axis, y_axis * y_axis * (1 - y_axis), label=r"squared error: $\hat y\,\sigma'(z)$")
axes[1].plot(y_axis, y_axis, label=r"cross-entropy: $\hat y$")
axes[1].set(xlabel=r"output $\hat y$ (target 0)", ylabel=r"$\delta$", title="error term against output")
for ax in axes:
    ax.legend(fontsize=8)
fig.tight_layout()
plt.show()
plt.close(fig)

# %% [markdown]
# ### Written question · the learning slowdown
#
# Answer in a few sentences in the cell below (double-click it to edit); your instructor grades it by hand.
#
# **Question (2 points).** A sigmoid output neuron gives $\hat y = 0.98$ for an example whose target is
# $t = 0$. Using the output error term, explain why it learns slowly with the squared error and fast with the
# cross-entropy, and why, with the squared error, this is worst exactly when the neuron is most wrong.

# %% [written] id=written_slowdown points=2
# Every gradient of the output layer is proportional to the error term $\delta^L$. With the squared error,
# $\delta^L = (\hat y - t)\,\sigma'(z^L) = (\hat y - t)\,\hat y (1 - \hat y) = 0.98 \cdot 0.98 \cdot 0.02 \approx 0.019$: the
# error is large but $\sigma'$ is tiny, because the neuron is saturated. The more confidently wrong the neuron
# is ($\hat y \to 1$ for $t = 0$), the smaller $\sigma'$ gets, so the learning is slowest exactly when the
# error is largest. The cross-entropy's derivative $\partial C/\partial \hat y = (\hat y - t)/(\hat y(1 - \hat y))$
# cancels the factor $\sigma'$, leaving $\delta^L = \hat y - t = 0.98$, about fifty times larger here: the
# step is proportional to the error itself, so a badly wrong neuron corrects itself quickly (the figure of
# section 8).

# %% [markdown]
# ### Softmax: outputs that are probabilities
#
# A digit is exactly one of ten classes, yet ten sigmoid outputs are ten independent numbers. A **softmax**
# output layer turns the scores $z^L$ (also called *logits*) into a probability distribution over the classes:
#
# $$\hat y_k = \mathrm{softmax}(z)_k = \frac{e^{z_k}}{\sum_j e^{z_j}} .$$
#
# Every $\hat y_k$ is positive, they sum to 1, and the largest score gets the largest probability (so the
# predicted class is the same argmax as before). Adding the same number $c$ to every score changes nothing,
# since numerator and denominator gain the same factor $e^c$. That shift is what makes it computable:
# $e^{1000}$ overflows to `inf` (float64 stops near $e^{709}$, float32 near $e^{88}$), and
# $\infty/\infty$ is NaN. Subtracting each row's largest score first makes every exponent $\le 0$, every
# exponential $\le 1$, and at least one of them exactly 1, so the denominator cannot be 0 either.
#
# ### Exercise 8 · `softmax`
#
# Write `softmax(z)` for scores of shape $(N, K)$, one row per example, that stays finite for any finite
# scores. Subtract each row's own largest score (`z.amax(dim=1, keepdim=True)`; `keepdim` keeps the shape
# $(N, 1)$, so that it broadcasts along the row), exponentiate, and divide by each row's sum. Do not call
# `torch.softmax`: the point is to see how it is done.

# %% [solution] id=softmax
def softmax(z):
    r"""The softmax of each row, :math:`\mathrm{softmax}(z)_k = e^{z_k} / \sum_j e^{z_j}`, computed without overflow.

    Subtracting each row's largest score first changes nothing (numerator and denominator gain the same factor
    :math:`e^{-\max_j z_j}`) but keeps every exponent at most 0, so ``exp`` cannot overflow.

    Args:
        z: scores (logits), shape (N, K).

    Returns:
        Probabilities, shape (N, K): positive, each row summing to 1.
    """
    ### BEGIN SOLUTION
    e = torch.exp(z - z.amax(dim=1, keepdim=True))  # (N, K), every entry in (0, 1]
    return e / e.sum(dim=1, keepdim=True)
    ### END SOLUTION

# %% [check] id=check_softmax points=2
z_square = torch.tensor([[0.0, 1.0, 2.0], [3.0, 1.0, 0.0], [-1.0, 5.0, 1.0]], dtype=torch.float64)  # N = K = 3
result = softmax(z_square)
checks.check_type(result, torch.Tensor, name="softmax(z)")
checks.check_shape(result, (3, 3), name="softmax(z)")
m_flat, m_keep = z_square.amax(dim=1), z_square.amax(dim=1, keepdim=True)  # (3,) and (3, 1)
keepdim_hint = "a max or sum of shape (N,) broadcasts along the columns, not the rows: keep the shape (N, 1) with keepdim=True"
checks.check_close(result, mlp.softmax(z_square), name="softmax of a 3 × 3 z (as many examples as scores)",
                   mistakes={"each column sums to 1 instead of each row: normalise over the K scores of an example "
                             "(dim=1), not over the batch (dim=0)": mlp.softmax(z_square.T).T,
                             keepdim_hint: torch.exp(z_square - m_flat) / torch.exp(z_square - m_flat).sum(dim=1),
                             keepdim_hint + " (the max)": torch.exp(z_square - m_flat) / torch.exp(z_square - m_flat).sum(dim=1, keepdim=True),
                             keepdim_hint + " (the sum)": torch.exp(z_square - m_keep) / torch.exp(z_square - m_keep).sum(dim=1)})
z_check = torch.tensor([[1.0, 2.0, 3.0], [0.5, 0.5, -1.0]], dtype=torch.float64)
checks.check_close(softmax(z_check), mlp.softmax(z_check), name="softmax of a 2 × 3 z")
checks.check_dtype(softmax(z_check.float()), torch.float32, name="softmax of float32 scores")
z_big = torch.tensor([[1000.0, 999.0, 998.0], [-1000.0, -999.0, -1000.0]], dtype=torch.float64)
big = softmax(z_big)
checks.check_type(big, torch.Tensor, name="softmax(z_big)")
checks.check_true(bool(torch.isfinite(big[0]).all()),
                  "softmax of the scores [1000, 999, 998] gave inf or NaN: e^1000 overflows (float64 stops near "
                  "e^709). Subtract each row's largest score before exp; the softmax does not change.")
checks.check_true(bool(torch.isfinite(big[1]).all()),
                  "softmax of the scores [-1000, -999, -1000] gave NaN because another row held 1000: subtract each "
                  "row's own largest score (z.amax(dim=1, keepdim=True)), not the largest of the whole batch, or all "
                  "the row's exponentials round to 0")
checks.check_close(big, mlp.softmax(z_big), name="softmax(z_big)")
checks.passed("softmax")
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(34)
for shape in [(1, 1), (4, 10), (7, 2)]:
    zh = torch.randn(*shape, generator=g, dtype=torch.float64) * 50
    checks.check_close(softmax(zh), torch.softmax(zh, dim=1), name=f"softmax of a {shape} z against torch.softmax")
    checks.check_close(softmax(zh + 123.0), torch.softmax(zh, dim=1), name=f"softmax of a shifted {shape} z")
z32 = torch.tensor([[100.0, 90.0], [-100.0, -95.0]])
checks.check_dtype(softmax(z32), torch.float32, name="softmax of float32 scores")
checks.check_close(softmax(z32), torch.softmax(z32, dim=1), name="softmax of float32 scores beyond e^88", rtol=1e-5)
### END HIDDEN TESTS

# %% [markdown]
# ### The cross-entropy of a softmax output
#
# With one-hot targets $t$ the cross-entropy of a batch is
#
# $$C = -\sum_n \sum_k t_{nk} \ln \hat y_{nk},$$
#
# for each example minus the log of the probability given to its true class: 0 when the network is sure and
# right, large when it is sure and wrong. With the softmax, $\ln \hat y_k = z_k - \ln \sum_j e^{z_j}$, so
# $\partial \ln \hat y_k / \partial z_i = [i = k] - \hat y_i$ and (the $t_k$ of one example sum to 1)
#
# $$\delta^L_i = \frac{\partial C}{\partial z_i} = -\sum_k t_k \big([i = k] - \hat y_i\big) = \hat y_i - t_i .$$
#
# The same $\hat y - t$ as for a sigmoid with its cross-entropy: no $\sigma'$, no slowdown. Computing it is
# where care is needed: when one score is far below the others its probability rounds to exactly 0, and
# $\ln 0 = -\infty$. So compute the log of the softmax directly, with $m$ each row's largest score:
#
# $$\ln \hat y_k = z_k - m - \ln \sum_j e^{z_j - m} .$$
#
# Like $E$, our $C$ is a **sum** over the batch; PyTorch's `F.cross_entropy` (which notebook 04 uses) takes
# the scores as ours does but averages over the batch by default, for the reason of section 6.
#
# ### Exercise 9 · `cross_entropy`
#
# Write `cross_entropy(z, T)` for scores `z` and targets `T` of shape $(N, K)$; return a 0-d tensor. Use torch
# operations only, so that autograd can differentiate it.

# %% [solution] id=cross_entropy
def cross_entropy(z, T):
    r"""The cross-entropy of softmax outputs, :math:`C = -\sum_n \sum_k t_{nk} \ln \mathrm{softmax}(z_n)_k`.

    Summed over the batch, like :func:`loss`. The logarithm of the softmax is computed directly,
    :math:`\ln \mathrm{softmax}(z)_k = z_k - m - \ln \sum_j e^{z_j - m}` with :math:`m = \max_j z_j`, so that a
    probability that rounds to 0 does not become :math:`\ln 0 = -\infty`. Its gradient is
    :math:`\partial C/\partial z = \mathrm{softmax}(z) - t`.

    Args:
        z: scores (logits) of the output layer, shape (N, K).
        T: targets, shape (N, K): one-hot rows (or any rows of probabilities).

    Returns:
        A 0-d tensor.
    """
    ### BEGIN SOLUTION
    m = z.amax(dim=1, keepdim=True)  # (N, 1)
    log_softmax = z - m - torch.log(torch.exp(z - m).sum(dim=1, keepdim=True))  # (N, K)
    return -(T * log_softmax).sum()
    ### END SOLUTION

# %% [check] id=check_cross_entropy points=3
z_ce = torch.tensor([[2.0, 1.0, 0.1], [0.5, 2.5, 0.0]], dtype=torch.float64, requires_grad=True)
T_ce = mlp.one_hot(torch.tensor([0, 2]), 3)
result = cross_entropy(z_ce, T_ce)
checks.check_type(result, torch.Tensor, name="cross_entropy(z, T)")
checks.check_shape(result, (), name="cross_entropy(z, T)")
checks.check_close(result, mlp.cross_entropy(z_ce, T_ce), name="cross_entropy(z, T)",
                   factors={"a mean over the 2 examples, where C, like E, is their sum": 1 / 2,
                            "a mean over all N·K = 6 entries (.mean()), where C is a sum": 1 / 6})
checks.check_grad(result, mlp.cross_entropy(z_ce, T_ce), [z_ce], name="cross_entropy(z, T)")
checks.check_dtype(cross_entropy(z_ce.detach().float(), T_ce.float()), torch.float32, name="cross_entropy of float32 scores")
far = cross_entropy(torch.tensor([[0.0, -800.0]], dtype=torch.float64), torch.tensor([[0.0, 1.0]], dtype=torch.float64))
checks.check_type(far, torch.Tensor, name="cross_entropy([[0, -800]], [[0, 1]])")
checks.check_true(bool(torch.isfinite(far).all()),
                  "cross_entropy([[0, -800]], [[0, 1]]) is inf or NaN where it should be 800: the softmax of -800 "
                  "rounds to 0, and ln 0 = -inf. Do not take the log of softmax(z); compute ln softmax directly as "
                  "z - m - ln Σ exp(z - m), with m each row's largest score.")
checks.check_close(far, 800.0, name="cross_entropy([[0, -800]], [[0, 1]])")
checks.passed("cross_entropy")
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(35)
for n, k in [(1, 2), (5, 10), (8, 3)]:
    zh = (torch.randn(n, k, generator=g, dtype=torch.float64) * 30).requires_grad_(True)
    labels = torch.randint(0, k, (n,), generator=g)
    Ch = cross_entropy(zh, mlp.one_hot(labels, k))
    checks.check_close(Ch, torch.nn.functional.cross_entropy(zh, labels, reduction="sum"),
                       name=f"cross_entropy of {n} examples and {k} classes against torch")
    (dz,) = torch.autograd.grad(Ch, zh)
    checks.check_close(dz, torch.softmax(zh.detach(), dim=1) - mlp.one_hot(labels, k), name="dC/dz = softmax(z) - t")
soft_T = torch.tensor([[0.25, 0.75]], dtype=torch.float64)
checks.check_close(cross_entropy(torch.tensor([[1.0, -1.0]], dtype=torch.float64), soft_T),
                   mlp.cross_entropy(torch.tensor([[1.0, -1.0]], dtype=torch.float64), soft_T),
                   name="cross_entropy with targets that are not one-hot")
### END HIDDEN TESTS

# %% [markdown]
# Autograd confirms the error term: for a softmax output trained on the cross-entropy, $\delta^L = \hat y - t$.
# It is what notebook 04's networks use, through PyTorch's `F.cross_entropy`.

# %%
z_demo = torch.randn(4, 10, generator=torch.Generator().manual_seed(profile.seed), dtype=torch.float64)
z_demo.requires_grad_(True)
T_demo = mlp.one_hot(torch.tensor([3, 1, 4, 1]), 10)
(dC_dz,) = torch.autograd.grad(mlp.cross_entropy(z_demo, T_demo), z_demo)
print(f"largest |dC/dz - (softmax(z) - t)|: {float((dC_dz - (mlp.softmax(z_demo.detach()) - T_demo)).abs().max()):.1e}")

# %% [markdown]
# ## 9 · The same network in PyTorch
#
# PyTorch's **autograd** records the operations of the forward pass and runs backpropagation for us. Our
# `(W, b)` pairs become `nn.Linear` layers (which store the weight as $(D_{out}, D_{in})$, the same layout), and
# `loss.backward()` fills every parameter's `.grad`. If your `backward` is right, the two gradients agree
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
hand_grads = backward(digit_params, batch_X, batch_T)
print(f"your backward vs autograd: largest relative error {gradcheck.max_relative_error(hand_grads, torch_grads):.1e}")

# %% [markdown]
# In practice we let autograd do this work, from notebook 04 on. Knowing what it computes, error terms
# flowing backwards through the weights, is what lets us reason about vanishing gradients, choose
# activations and costs, and (in notebook 06) differentiate a loss with respect to the *image* instead of the
# weights.
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
#   $\partial E/\partial W^l = \delta^l a^{l-1\top}$, summed over the batch.
# * Check hand-written gradients with central differences in float64; autograd gives the same numbers.
# * Mini-batch SGD steps with the batch's mean gradient, $\eta/m$ times the sum, so that $\eta$ does not
#   depend on the batch size.
# * One hidden layer learns XOR; $64 \to 30 \to 10$ recognises digits. Weights start at
#   $\mathcal N(0, 1/D_{l-1})$ so that sigmoids do not start saturated; with few examples the training
#   accuracy runs away from the test accuracy (overfitting).
# * Softmax turns scores into probabilities; with the cross-entropy the output error term is $\hat y - t$, without
#   the $\sigma'$ that slows saturated outputs. Compute both from the scores, shifted by their maximum.
