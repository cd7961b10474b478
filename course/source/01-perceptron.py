# %% [markdown]
# # 01 · The perceptron
#
# The perceptron is the oldest learning machine in this course and the ancestor of every network in it: a
# weighted sum of the inputs, a threshold, and a rule that nudges the weights after each mistake. In this
# notebook we build one from scratch, teach it the logic gates AND and OR, watch its decision boundary move
# epoch by epoch, and then see it fail, for a reason we can prove, on XOR.
#
# **In this notebook you will learn**
#
# 1. what a perceptron computes from its inputs, weights and bias, and what the step activation does;
# 2. how to read a perceptron as a straight line (a *decision boundary*) that splits the plane in two;
# 3. the perceptron learning rule, and why it moves the line in the right direction;
# 4. how to train a perceptron on AND and OR, epoch by epoch;
# 5. why no perceptron can compute XOR (*linear separability*), shown by a run that never converges.
#
# **Runtime** (fast profile): about 12 s on a 2-core CPU; GPU: not measured yet.

# %%
import matplotlib.pyplot as plt
import torch

from nstlab import checks, data, perceptron, plotting, profiles
from nstlab.perceptron import Run

profile = profiles.get_profile()
print(profiles.describe(profile))

# %% [markdown]
# ## 1 · Inputs, weights and the step activation
#
# A perceptron receives $D$ numbers, the **inputs** $x = (x_1, \dots, x_D)$. It holds one **weight** $w_i$
# per input and one **bias** $b$. First it forms the weighted sum
#
# $$z = w \cdot x + b = \sum_{i=1}^{D} w_i x_i + b .$$
#
# A large positive weight says "this input speaks *for* firing", a negative one "against"; the bias shifts
# how much evidence is needed. Then the **activation function** $f$ turns $z$ into the output. For the
# perceptron it is the **step function**
#
# $$f(z) = \begin{cases} 1 & \text{if } z > 0, \\ 0 & \text{otherwise,} \end{cases}$$
#
# so the **output formula** of the perceptron is
#
# $$\hat y = f(w \cdot x + b) .$$
#
# The output is a yes/no decision. Note the convention at $z = 0$: exactly zero counts as "no".

# %%
z = torch.linspace(-3, 3, 601)
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(z, perceptron.step(z))
ax.set(xlabel="z", ylabel="f(z)", title="the step activation")
plt.show()
plt.close(fig)

# %% [markdown]
# ### Exercise 1 · `step`
#
# Write `step(z)`: 1 where $z > 0$, 0 elsewhere, for a tensor of any shape, and **in the dtype of `z`** (a
# comparison such as `z > 0` gives booleans; `.to(z.dtype)` converts them).

# %% [solution] id=step
def step(z):
    r"""The step activation :math:`f(z) = 1` if :math:`z > 0`, else :math:`0`.

    Args:
        z: any shape.

    Returns:
        A tensor of the same shape and dtype as ``z`` holding 0s and 1s.
    """
    ### BEGIN SOLUTION
    return (z > 0).to(z.dtype)
    ### END SOLUTION

# %% [check] id=check_step points=2
z = torch.tensor([-2.0, -1e-6, 0.0, 1e-6, 3.0])
result = step(z)
checks.check_type(result, torch.Tensor, name="step(z)")
checks.check_shape(result, z.shape, name="step(z)")
checks.check_dtype(result, z.dtype, name="step(z)")
checks.check_close(result, perceptron.step(z), name="step(z) (remember: f(0) = 0)")
checks.passed("step")
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(1)
for shape in [(1,), (3, 4), (2, 3, 5)]:
    zz = torch.randn(shape, generator=g, dtype=torch.float64)
    out = step(zz)
    checks.check_dtype(out, torch.float64, name=f"step of a float64 tensor of shape {shape}")
    checks.check_close(out, perceptron.step(zz), name=f"step on shape {shape}")
checks.check_close(step(torch.zeros(4)), torch.zeros(4), name="step(0)")
### END HIDDEN TESTS

# %% [markdown]
# ## 2 · A perceptron is a straight line
#
# Take two inputs, $x_1, x_2 \in \{0, 1\}$, and the **AND** gate: the output should be 1 only when both
# inputs are 1. Can we pick weights by hand? Try $w = (1, 1)$ and $b = -1.5$:
#
# | $x_1$ | $x_2$ | $z = x_1 + x_2 - 1.5$ | $\hat y$ |
# |---|---|---|---|
# | 0 | 0 | −1.5 | 0 |
# | 0 | 1 | −0.5 | 0 |
# | 1 | 0 | −0.5 | 0 |
# | 1 | 1 | 0.5 | 1 |
#
# It works. To run all four inputs at once, stack them as the rows of a matrix $X$ of shape $(N, D)$; then
# $z = X w + b$ is a vector of $N$ sums and $\hat y = f(Xw + b)$ the $N$ outputs.
#
# Geometrically, the points where $w_1 x_1 + w_2 x_2 + b = 0$ form a **straight line**, the *decision
# boundary*. On one side $z > 0$ and the perceptron says 1 (shaded), on the other it says 0. Choosing the
# weights means choosing a line; $w$ is perpendicular to it and points to the "1" side, and $b$ slides it.

# %%
X_and, y_and = data.logic_gate("and")
w_hand, b_hand = torch.tensor([1.0, 1.0]), torch.tensor(-1.5)
print("predictions:", perceptron.predict(X_and, w_hand, b_hand).tolist(), " targets:", y_and.tolist())
fig, ax = plt.subplots(figsize=(4, 4))
plotting.decision_boundary(ax, X_and, y_and, w_hand, b_hand, title="AND with w = (1, 1), b = −1.5")
plt.show()
plt.close(fig)

# %% [markdown]
# ### Exercise 2 · `predict`
#
# Write `predict(X, w, b)` that returns $\hat y = f(Xw + b)$ for a whole batch: `X` has shape $(N, D)$, `w`
# shape $(D,)$, and the result shape $(N,)$. Use your `step` or `perceptron.step`; no loop is needed (`@` is
# the matrix product).

# %% [solution] id=predict
def predict(X, w, b):
    r"""The perceptron's outputs :math:`\hat y = f(X w + b)` for a batch of inputs.

    Args:
        X: inputs, shape (N, D).
        w: weights, shape (D,).
        b: bias, a number or a 0-d tensor.

    Returns:
        Predictions of shape (N,), 0s and 1s in the dtype of ``X``.
    """
    ### BEGIN SOLUTION
    return perceptron.step(X @ w + b)
    ### END SOLUTION

# %% [check] id=check_predict points=2
result = predict(X_and, w_hand, b_hand)
checks.check_shape(result, (4,), name="predict(X_and, w_hand, b_hand)")
checks.check_close(result, y_and, name="predict(X_and, w_hand, b_hand): the hand-made AND gate")
checks.passed("predict")
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(5)
for n, d in [(1, 1), (7, 3), (20, 5)]:
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    w, b = torch.randn(d, generator=g, dtype=torch.float64), float(torch.randn(1, generator=g))
    checks.check_close(predict(X, w, b), perceptron.predict(X, w, b), name=f"predict on N={n}, D={d}")
checks.check_close(predict(torch.zeros(3, 2), torch.ones(2), 0.0), torch.zeros(3), name="predict where z = 0")
### END HIDDEN TESTS

# %% [markdown]
# ## 3 · The perceptron learning rule
#
# Choosing weights by hand does not scale. Rosenblatt's idea: start from $w = 0$, $b = 0$, show the
# perceptron one example $(x, y)$ at a time, and correct it only when it is wrong:
#
# $$w \leftarrow w + \eta\,(y - \hat y)\,x, \qquad b \leftarrow b + \eta\,(y - \hat y).$$
#
# The **learning rate** $\eta > 0$ sets the size of the correction. Why does this help? There are three cases:
#
# * $y = \hat y$: the factor $y - \hat y$ is 0 and nothing changes.
# * $y = 1$, $\hat y = 0$ (the sum was too small): we add $\eta x$ to $w$ and $\eta$ to $b$. The new sum for the
#   same input is $z' = (w + \eta x)\cdot x + b + \eta = z + \eta\,(\lVert x \rVert^2 + 1) > z$: it moved up.
# * $y = 0$, $\hat y = 1$ (too large): we subtract, and $z$ moves down by the same amount.
#
# The bias is updated like a weight whose input is always 1, which is why it gets $\eta\,(y - \hat y)\cdot 1$.
# One worked step on AND from zero weights with $\eta = 0.1$: the input $(1, 1)$ has target 1 but
# $z = 0 \Rightarrow \hat y = 0$, so $w$ becomes $(0.1, 0.1)$ and $b$ becomes $0.1$.

# %%
w1, b1 = perceptron.update(torch.tensor([1.0, 1.0]), 1.0, torch.zeros(2), 0.0, eta=0.1)
print("after one update: w =", [round(v, 4) for v in w1.tolist()], " b =", round(float(b1), 4))

# %% [markdown]
# ### Exercise 3 · `update`
#
# Write `update(x, y, w, b, *, eta)` that applies the rule to **one** example and returns the new
# `(w, b)`. Compute $\hat y$ with the step function, and return new tensors: do not change `w` or `b` in place
# (no `w += ...`), because the caller may still need the old values. Return `b` as a 0-d tensor
# (`torch.as_tensor(b, dtype=w.dtype)` turns a number into one).

# %% [solution] id=update
def update(x, y, w, b, *, eta=perceptron.DEFAULT_ETA):
    r"""One application of the perceptron rule to one example.

    .. math::  \hat y = f(w \cdot x + b),\quad w' = w + \eta (y - \hat y) x,\quad b' = b + \eta (y - \hat y)

    Args:
        x: one input, shape (D,).
        y: its target, 0 or 1.
        w: weights, shape (D,); not modified.
        b: bias, a number or 0-d tensor; not modified.
        eta: learning rate.

    Returns:
        ``(w', b')``: new weights of shape (D,) and a new 0-d bias.
    """
    ### BEGIN SOLUTION
    b = torch.as_tensor(b, dtype=w.dtype)
    error = y - perceptron.step(w @ x + b)
    return w + eta * error * x, b + eta * error
    ### END SOLUTION

# %% [check] id=check_update points=3
w0, b0 = torch.tensor([0.5, -0.2]), torch.tensor(0.1)
for x, y in [([1.0, 1.0], 1.0), ([1.0, 0.0], 0.0), ([0.0, 1.0], 1.0)]:
    x = torch.tensor(x)
    result = update(x, y, w0, b0, eta=0.25)
    checks.check_type(result, tuple, name=f"update({x.tolist()}, {y}, ...)")
    checks.check_close(result[0], perceptron.update(x, y, w0, b0, eta=0.25)[0], name=f"new w for x={x.tolist()}, y={y}")
    checks.check_close(result[1], perceptron.update(x, y, w0, b0, eta=0.25)[1], name=f"new b for x={x.tolist()}, y={y}")
checks.check_true(torch.equal(w0, torch.tensor([0.5, -0.2])), "update changed w in place; return a new tensor instead")
checks.passed("update")
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(9)
for d, eta in [(1, 1.0), (4, 0.3), (6, 0.01)]:
    x, w = torch.randn(d, generator=g, dtype=torch.float64), torch.randn(d, generator=g, dtype=torch.float64)
    b = torch.tensor(float(torch.randn(1, generator=g)), dtype=torch.float64)
    for y in (0.0, 1.0):
        w_keep, b_keep = w.clone(), b.clone()
        nw, nb = update(x, y, w, b, eta=eta)
        rw, rb = perceptron.update(x, y, w, b, eta=eta)
        checks.check_close(nw, rw, name=f"new w, D={d}, y={y}")
        checks.check_close(nb, rb, name=f"new b, D={d}, y={y}")
        checks.check_true(torch.equal(w, w_keep) and torch.equal(b, b_keep), "update must not modify w or b")
### END HIDDEN TESTS

# %% [markdown]
# ### Written question · the bias
#
# Answer in a few sentences in the cell below (double-click it to edit); your instructor grades it by hand.
#
# **Question (2 points).** The rule updates the bias like a weight whose input is always 1. Suppose the
# perceptron had no bias at all ($b = 0$ for ever). Which decision boundaries could it still draw in the plane
# of $(x_1, x_2)$, and could it compute AND? Justify with the four inequalities, as section 5 does for XOR.

# %% [written] id=written_bias points=2
# Without a bias the boundary $w_1 x_1 + w_2 x_2 = 0$ always passes through the origin: the weights can only
# turn the line, not slide it. It cannot compute AND. AND needs $\hat y = 1$ for $(1, 1)$, so
# $w_1 + w_2 > 0$, and $\hat y = 0$ for $(1, 0)$ and $(0, 1)$, so $w_1 \le 0$ and $w_2 \le 0$; adding the
# last two gives $w_1 + w_2 \le 0$, a contradiction. (The point $(0, 0)$ gives $z = 0$ and so the answer 0
# whatever the weights.) The bias is what moves the line away from the origin, and it is learnt like a weight
# on an input that is always 1.

# %% [markdown]
# ## 4 · Training on AND and OR
#
# One pass of the rule over every training example is an **epoch**. We repeat epochs until an epoch ends
# with no mistakes (or until we give up). The library's `perceptron.train` does exactly that and records
# the weights after each epoch, so we can draw the decision boundary as it moves. Watch how each correction
# tilts or slides the line until the single 1 of AND (or the single 0 of OR) sits alone on its side.

# %%
EPOCHS = 10  # the convergence theorem promises few epochs for these 4-point problems; 10 is plenty
for gate in ("and", "or"):
    X, y = data.logic_gate(gate)
    run = perceptron.train(X, y, epochs=EPOCHS, eta=0.1)
    print(f"{gate.upper()}: mistakes after each epoch {run.errors}; converged: {run.converged}; "
          f"w = {[round(v, 2) for v in run.w.tolist()]}, b = {float(run.b):.2f}")
    n = len(run.errors)
    fig, axes = plt.subplots(1, n, figsize=(2.2 * n, 2.4), squeeze=False)
    for epoch, ax in enumerate(axes[0], start=1):
        plotting.decision_boundary(ax, X, y, run.ws[epoch], run.bs[epoch],
                                   title=f"epoch {epoch}: {run.errors[epoch - 1]} wrong")
        ax.set(xlabel="", ylabel="")
    fig.suptitle(f"{gate.upper()}: the decision boundary after every epoch")
    fig.tight_layout()
    plt.show()
    plt.close(fig)

# %% [markdown]
# From zero weights, the learning rate only rescales $w$ and $b$ (every update adds a multiple of $\eta$), so
# the *sequence of decisions* is the same for every $\eta > 0$. That is special to the perceptron; from the
# next notebook on, $\eta$ matters a lot.
#
# ### Exercise 4 · `train`
#
# Write the training loop `train(X, y, *, epochs, eta)`:
#
# 1. start from `w = torch.zeros(D, dtype=X.dtype)` and `b = torch.zeros((), dtype=X.dtype)`;
# 2. each epoch, apply the rule to every row of `X` **in order**;
# 3. after each epoch record the weights, the bias and the number of training examples that the weights
#    *at the end of the epoch* misclassify (not the mistakes made while the epoch was running);
# 4. stop after the first epoch with no mistakes.
#
# Return a `Run(w, b, ws, bs, errors)` (imported above): `ws` stacks the initial weights and the weights after
# each epoch (`torch.stack` of a list), shape $(E + 1, D)$; `bs` the same for the bias; `errors` is a list of
# ints. You may call `perceptron.update` and `perceptron.predict`.

# %% [solution] id=train
def train(X, y, *, epochs=10, eta=perceptron.DEFAULT_ETA):
    r"""Train a perceptron with the perceptron rule, visiting the examples in order, from zero weights.

    Each epoch applies :func:`update` to every row of ``X`` in turn, then counts the misclassified examples.
    Training stops early after the first epoch with no mistakes.

    Args:
        X: inputs, shape (N, D).
        y: targets 0 or 1, shape (N,).
        epochs: the most passes over the data.
        eta: learning rate.

    Returns:
        A :class:`Run` with the final weights, the weights after every epoch, and the error counts.
    """
    ### BEGIN SOLUTION
    w = torch.zeros(X.shape[1], dtype=X.dtype)
    b = torch.zeros((), dtype=X.dtype)
    ws, bs, errors = [w], [b], []
    for _ in range(epochs):
        for x_n, y_n in zip(X, y):
            w, b = perceptron.update(x_n, y_n, w, b, eta=eta)
        ws.append(w)
        bs.append(b)
        errors.append(int((perceptron.predict(X, w, b) != y).sum()))
        if errors[-1] == 0:
            break
    return Run(w, b, torch.stack(ws), torch.stack(bs), errors)
    ### END SOLUTION

# %% [check] id=check_train points=3
X, y = data.logic_gate("or")
mine, reference = train(X, y, epochs=10, eta=0.1), perceptron.train(X, y, epochs=10, eta=0.1)
checks.check_type(mine, Run, name="train(X, y)")
checks.check_equal(mine.errors, reference.errors, name="mistakes per epoch on OR",
                   hint="Do you visit the rows in order, count the mistakes of the end-of-epoch weights (not "
                        "those made during the epoch), and stop after the first epoch with 0?")
checks.check_close(mine.w, reference.w, name="final w on OR")
checks.check_close(mine.b, reference.b, name="final b on OR")
checks.check_close(mine.ws, reference.ws, name="ws (initial weights, then one row per epoch)")
checks.check_close(mine.bs, reference.bs, name="bs (initial bias, then one per epoch)")
checks.passed("train")
### BEGIN HIDDEN TESTS
for gate_name in ("and", "nand", "xor"):
    Xg, yg = data.logic_gate(gate_name)
    mine, reference = train(Xg, yg, epochs=12, eta=0.5), perceptron.train(Xg, yg, epochs=12, eta=0.5)
    checks.check_equal(mine.errors, reference.errors, name=f"mistakes per epoch on {gate_name}")
    checks.check_close(mine.ws, reference.ws, name=f"ws on {gate_name}")
g = torch.Generator().manual_seed(3)
X = torch.randn(30, 3, generator=g, dtype=torch.float64)
y = (X @ torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64) + 0.3 > 0).double()
mine, reference = train(X, y, epochs=50, eta=0.2), perceptron.train(X, y, epochs=50, eta=0.2)
checks.check_equal(mine.errors, reference.errors, name="mistakes per epoch on random separable 3-D data")
checks.check_close(mine.w, reference.w, name="w on random separable 3-D data")
### END HIDDEN TESTS

# %% [markdown]
# ### Written question · the learning rate
#
# **Question (2 points).** Section 4 says that, from zero weights, the learning rate $\eta$ only rescales
# $w$ and $b$, so every $\eta > 0$ makes the same sequence of decisions. Explain why. (Hint: what happens to
# $\hat y = f(w \cdot x + b)$ when $w$ and $b$ are both multiplied by the same positive number?)

# %% [written] id=written_eta_scale points=2
# Compare a run with learning rate $\eta$ and a run with $\eta = 1$, on the same examples in the same order.
# At the start both have $w = 0$, $b = 0$, so $(w, b)_\eta = \eta\,(w, b)_1$. If that holds before a step,
# then $z_\eta = \eta\,z_1$ has the same sign as $z_1$ (because $\eta > 0$), the step function gives the same
# $\hat y$, both runs see the same error $y - \hat y$, and the updates $\eta\,(y - \hat y)\,x$ and
# $1 \cdot (y - \hat y)\,x$ again differ by the factor $\eta$. By induction the relation holds after every
# step: the same mistakes, the same number of epochs, and the same boundary line, since
# $\eta\,(w \cdot x + b) = 0$ is the same line as $w \cdot x + b = 0$.

# %% [markdown]
# ## 5 · XOR: a problem no perceptron can solve
#
# XOR ("exclusive or") outputs 1 when exactly one input is 1. Look at its four points: the two 1s sit on one
# diagonal, the two 0s on the other. No straight line puts both 1s on one side and both 0s on the other.
# We can prove it from the output formula. A perceptron computing XOR would need
#
# $$\underbrace{b \le 0}_{(0,0)\to 0},\qquad \underbrace{w_2 + b > 0}_{(0,1)\to 1},\qquad
#   \underbrace{w_1 + b > 0}_{(1,0)\to 1},\qquad \underbrace{w_1 + w_2 + b \le 0}_{(1,1)\to 0}.$$
#
# Adding the middle two gives $w_1 + w_2 + 2b > 0$; adding the outer two gives $w_1 + w_2 + 2b \le 0$. A
# contradiction: **no** weights exist. Data whose classes a hyperplane can split are called **linearly
# separable**; AND and OR are, XOR is not. The *perceptron convergence theorem* (Novikoff, 1962) says the rule
# finds a separating line after finitely many mistakes whenever one exists; when none exists, as here, it
# keeps making mistakes for ever. Here is a run of many epochs:

# %%
X_xor, y_xor = data.logic_gate("xor")
xor_run = perceptron.train(X_xor, y_xor, epochs=10 * profile.train_epochs, eta=0.1)
print(f"XOR after {len(xor_run.errors)} epochs: converged = {xor_run.converged}; "
      f"fewest mistakes in any epoch: {min(xor_run.errors)}")

SHOWN = 20  # epochs drawn on the left; the run goes on, unchanged, for all of them
fig, axes = plt.subplots(1, 2, figsize=(9, 4))
for gate in ("and", "or"):
    X, y = data.logic_gate(gate)
    errors = perceptron.train(X, y, epochs=SHOWN).errors
    axes[0].plot(range(1, len(errors) + 1), errors, marker="o", label=gate.upper())
axes[0].plot(range(1, len(xor_run.errors[:SHOWN]) + 1), xor_run.errors[:SHOWN], marker="s", label="XOR")
axes[0].set(xlabel="epoch", ylabel="misclassified examples", title="mistakes after each epoch")
axes[0].legend()
plotting.decision_boundary(axes[1], X_xor, y_xor, xor_run.w, xor_run.b, title="XOR: the last boundary")
fig.tight_layout()
plt.show()
plt.close(fig)

# %% [markdown]
# The weights cycle through the same few values for ever: every correction that fixes one corner breaks
# another. Minsky and Papert's 1969 book made this limitation famous. The cure, which we meet in notebook 03,
# is to stack perceptron-like units in layers with a smooth activation, so that a *hidden layer* can bend the
# boundary. Notebook 02 first replaces the step by something we can differentiate.
#
# ### Written question · a third input
#
# **Question (2 points).** Give each example a third input, the product $x_3 = x_1 x_2$. Can a single
# perceptron with the inputs $(x_1, x_2, x_3)$ compute XOR? If so, give weights and a bias and check all four
# inputs; then say what this suggests about what a hidden layer could do.

# %% [written] id=written_xor_feature points=2
# Yes. XOR $= x_1 + x_2 - 2 x_1 x_2$ on the four corners, so take $w = (1, 1, -2)$ and $b = -0.5$:
# $(0, 0, 0)$ gives $z = -0.5$, so 0; $(0, 1, 0)$ and $(1, 0, 0)$ give $z = 0.5$, so 1; $(1, 1, 1)$ gives
# $z = 1 + 1 - 2 - 0.5 = -0.5$, so 0. In the three-dimensional input space the four points are linearly
# separable (a plane splits them), although their projections on $(x_1, x_2)$ are not. A hidden layer can
# compute such new features from the inputs by itself, learnt instead of chosen by hand, so that the next
# layer's units only need to draw straight lines (planes) in the space of those features.

# %% [markdown]
# ## Lecture demo · the perceptron stepper
#
# The widget below applies the rule one example at a time. Choose a gate and a learning rate, press *step*,
# and watch the boundary move; the highlighted point is the one just used.

# %%
from nstlab.widgets.perceptron_stepper import perceptron_stepper

perceptron_stepper()

# %% [markdown]
# ## Summary
#
# * A perceptron computes $\hat y = f(w \cdot x + b)$ with the step $f$: a straight line that splits the inputs
#   into two classes.
# * The rule $w \leftarrow w + \eta (y - \hat y) x$, $b \leftarrow b + \eta (y - \hat y)$ changes nothing on
#   a right answer and moves $z$ towards the target on a wrong one.
# * On linearly separable data (AND, OR) it converges in a few epochs; on XOR it never does, because no line
#   separates the classes.
