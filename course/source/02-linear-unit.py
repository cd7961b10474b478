# %% [markdown]
# # 02 · The linear unit and gradient descent
#
# The perceptron's rule only knows "right" or "wrong", and on data that no line separates it never settles.
# In this notebook we swap its step for the simplest activation there is, $f(z) = z$, which turns the error
# into a smooth surface over the weights. Then we walk downhill on that surface: *gradient descent*, the
# learning algorithm behind every network in the rest of the course.
#
# **In this notebook you will learn**
#
# 1. what a linear unit is and why it replaces the step function when data are not separable;
# 2. the difference between supervised and unsupervised learning, on a worked regression example;
# 3. the objective $E = \tfrac12 \sum (y - \hat y)^2$ and how to derive its gradient by hand;
# 4. batch gradient descent versus stochastic gradient descent (SGD);
# 5. what the learning rate does: too small, about right, and divergent.
#
# **Runtime** (fast profile): about 17 s on a 2-core CPU; GPU: not measured yet.

# %%
import matplotlib.pyplot as plt
import torch

from nstlab import checks, gradcheck, linear, plotting, profiles

profile = profiles.get_profile()
print(profiles.describe(profile))
EPOCHS = 10 * profile.train_epochs  # gradient-descent epochs for the demonstrations below
N = 50  # people in the data set: few enough to see every point in a plot

# %% [markdown]
# ## 1 · From the step to the identity
#
# A **linear unit** has the same inputs, weights and bias as a perceptron, but its activation is the
# identity, $f(z) = z$:
#
# $$\hat y = f(w \cdot x + b) = w \cdot x + b .$$
#
# Why give up the crisp yes/no? Two reasons.
#
# * **The output is a number**, so the unit can predict quantities (an income, a temperature), not only
#   classes.
# * **The error becomes smooth.** With a step, a tiny change of $w$ either changes nothing or flips an answer;
#   the error is a staircase with flat steps, which gives no direction to move in, and on data that are not
#   separable the perceptron rule jumps about for ever. With $f(z) = z$ the error changes *continuously* with
#   $w$, so we can ask "which small change of $w$ lowers the error fastest?" and always get an answer, even
#   when no $w$ makes the error zero. The unit then settles at the best compromise.

# %%
z = torch.linspace(-2, 2, 401)
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(z, (z > 0).float(), label="step (perceptron)")
ax.plot(z, z, label="identity (linear unit)")
ax.set(xlabel="z", ylabel="f(z)", title="two activations")
ax.legend()
plt.show()
plt.close(fig)

# %% [markdown]
# ## 2 · Supervised and unsupervised learning, and our example
#
# In **supervised** learning every training example comes with the answer we want, its *label* $y$; the
# model learns the mapping $x \mapsto y$ and is judged by how close its $\hat y$ gets. Classifying digits and
# predicting an income are supervised. In **unsupervised** learning there are only inputs $x$, and the model
# looks for structure in them on its own: groups of similar examples (clustering), a few directions that
# explain most of the variation, or a model of what typical inputs look like. Style transfer, at the end of
# the course, borrows from both.
#
# Our worked example is supervised *regression*: predict a person's yearly income (in thousands) from their
# years of experience, years of education beyond school, and working hours per week. The data are made up by
# `linear.income_data`, from a hidden linear rule plus noise, so we know the truth to compare with. On the
# left is what a supervised learner sees (inputs *and* incomes); on the right what an unsupervised one
# would see (inputs only: it could still notice, say, how experience and hours spread, but not predict pay).

# %%
X_all, y = linear.income_data(N, seed=profile.seed)
print("features:", linear.INCOME_FEATURES)
for row, income in zip(X_all[:4].tolist(), y[:4].tolist()):
    print(f"  x = ({row[0]:4.1f} years, {row[1]:3.1f} years, {row[2]:4.1f} h/week)  ->  y = {income:5.1f} k")

fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
axes[0].scatter(X_all[:, 0], y, s=15)
axes[0].set(xlabel="experience (years)", ylabel="income (thousands)", title="supervised: (x, y) pairs")
axes[1].scatter(X_all[:, 0], X_all[:, 2], s=15, c="gray")
axes[1].set(xlabel="experience (years)", ylabel="hours per week", title="unsupervised: x only")
fig.tight_layout()
plt.show()
plt.close(fig)

# %% [markdown]
# To draw pictures we start with **one feature**, experience, measured in *decades* ($x = $ years / 10) so that
# the numbers stay small. The model is then a line, $\hat y = w x + b$, with two parameters.

# %%
X = X_all[:, :1] / 10  # (N, 1): experience in decades

# %% [markdown]
# ## 3 · The objective
#
# We need one number that says how bad a choice of $(w, b)$ is. For each example the error is $y_n - \hat y_n$;
# squaring makes every error count positively and punishes large ones more, and we add them up:
#
# $$E(w, b) = \frac12 \sum_{n=1}^{N} \big(y_n - \hat y_n\big)^2, \qquad \hat y_n = w \cdot x_n + b .$$
#
# The $\tfrac12$ is there only to cancel the 2 that appears when we differentiate a square. Note that $E$ is
# a **sum** over examples (not a mean), as in Mitchell's *Machine Learning* (1997, ch. 4); section 6 shows what that means for the
# learning rate.
#
# ### Exercise 1 · `loss`
#
# Write `loss(X, y, w, b)` returning $E$ as a 0-d tensor. `X` has shape $(N, D)$, `y` $(N,)$, `w` $(D,)$;
# compute $\hat y = Xw + b$ for all examples at once.

# %% [solution] id=loss
def loss(X, y, w, b):
    r"""The objective :math:`E = \tfrac12 \sum_n (y_n - \hat y_n)^2` (a sum, not a mean).

    Args:
        X: inputs, shape (N, D).
        y: targets, shape (N,).
        w: weights, shape (D,).
        b: bias.

    Returns:
        A 0-d tensor.
    """
    ### BEGIN SOLUTION
    return 0.5 * ((y - (X @ w + b)) ** 2).sum()
    ### END SOLUTION

# %% [check] id=check_loss points=2
w_try, b_try = torch.tensor([10.0]), torch.tensor(40.0)
result = loss(X, y, w_try, b_try)
checks.check_type(result, torch.Tensor, name="loss(X, y, w, b)")
checks.check_shape(result, (), name="loss(X, y, w, b) (a single number: sum over examples)")
N_ = X.shape[0]
checks.check_close(result, linear.loss(X, y, w_try, b_try), name="loss(X, y, w, b)", rtol=1e-5,
                   factors={"a mean over the examples where E is ½ times their sum": 2 / N_,
                            "½ times a mean where E is ½ times the sum": 1 / N_,
                            "the ½ left out": 2.0})
checks.passed("loss")
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(11)
for n, d in [(1, 1), (9, 4), (30, 2)]:
    Xh, yh = torch.randn(n, d, generator=g, dtype=torch.float64), torch.randn(n, generator=g, dtype=torch.float64)
    wh, bh = torch.randn(d, generator=g, dtype=torch.float64), torch.tensor(0.7, dtype=torch.float64)
    checks.check_close(loss(Xh, yh, wh, bh), linear.loss(Xh, yh, wh, bh), name=f"loss on N={n}, D={d}", rtol=1e-10)
ws, bs = linear.least_squares(Xh, Xh @ wh + 1.0)
checks.check_close(loss(Xh, Xh @ wh + 1.0, ws, bs), 0.0, name="loss of an exact fit", atol=1e-12)
### END HIDDEN TESTS

# %% [markdown]
# With one feature, $E$ is a function of two numbers and we can draw it as a contour map, like the height
# lines of a mountain map. The minimum is at the bottom of a long, tilted valley.

# %%
w_star, b_star = linear.least_squares(X.double(), y.double())
W_RANGE, B_RANGE = (-10.0, 40.0), (-10.0, 90.0)
fig, ax = plt.subplots(figsize=(5, 4))
plotting.loss_surface(ax, X, y, w_range=W_RANGE, b_range=B_RANGE)
ax.plot(float(w_star), float(b_star), "r*", ms=12, label="minimum")
ax.set_title("contours of E(w, b)")
ax.legend()
plt.show()
plt.close(fig)

# %% [markdown]
# ## 4 · Deriving the gradient
#
# The **gradient** $\nabla E = (\partial E/\partial w, \partial E/\partial b)$ points in the direction in which
# $E$ grows fastest; walking against it lowers $E$. Differentiate one term with the chain rule, using
# $\hat y_n = \sum_i w_i x_{ni} + b$, so $\partial \hat y_n / \partial w_i = x_{ni}$ and
# $\partial \hat y_n / \partial b = 1$:
#
# $$\frac{\partial}{\partial w_i} \frac12 (y_n - \hat y_n)^2 = (y_n - \hat y_n) \cdot
#   \frac{\partial (y_n - \hat y_n)}{\partial w_i} = -(y_n - \hat y_n)\, x_{ni} .$$
#
# Summing over the examples (the derivative of a sum is the sum of the derivatives):
#
# $$\frac{\partial E}{\partial w} = -\sum_{n=1}^N (y_n - \hat y_n)\, x_n = -X^\top (y - \hat y), \qquad
#   \frac{\partial E}{\partial b} = -\sum_{n=1}^N (y_n - \hat y_n).$$
#
# Read it: each example pulls $w$ in the direction of its own input $x_n$, as strongly as it is wrong. This
# is the perceptron rule again, with the real-valued error $y - \hat y$ in place of $\pm 1$ (and summed over
# all examples).
#
# ### Exercise 2 · `gradient`
#
# Write `gradient(X, y, w, b)` returning the pair `(dw, db)` $= (\partial E/\partial w, \partial E/\partial b)$: `dw` of shape $(D,)$, `db` a 0-d tensor.
# The check also compares your gradient with *finite differences*,
# $\partial E / \partial w_i \approx [E(w + \epsilon e_i) - E(w - \epsilon e_i)] / 2\epsilon$, the definition of
# the derivative (notebook 03 makes this a tool).

# %% [solution] id=gradient
def gradient(X, y, w, b):
    r"""The gradient of :func:`loss`: :math:`\partial E/\partial w = -\sum_n (y_n - \hat y_n) x_n` and
    :math:`\partial E/\partial b = -\sum_n (y_n - \hat y_n)`.

    Returns:
        ``(dw, db)``: dw of shape (D,), db 0-d.
    """
    ### BEGIN SOLUTION
    residual = y - (X @ w + b)
    return -(residual @ X), -residual.sum()
    ### END SOLUTION

# %% [check] id=check_gradient points=3
Xd, yd = X.double(), y.double()
w_try, b_try = torch.tensor([10.0], dtype=torch.float64), torch.tensor(40.0, dtype=torch.float64)
result = gradient(Xd, yd, w_try, b_try)
checks.check_type(result, tuple, name="gradient(X, y, w, b)")
dw, db = result
checks.check_shape(dw, (1,), name="dE/dw")
checks.check_shape(db, (), name="dE/db")
reference = linear.gradient(Xd, yd, w_try, b_try)
checks.check_close(dw, reference[0], name="dE/dw")
checks.check_close(db, reference[1], name="dE/db")
finite = gradcheck.numerical_gradient(lambda w_: linear.loss(Xd, yd, w_, b_try), w_try)
checks.check_close(dw, finite, name="dE/dw against finite differences", rtol=1e-6)
checks.passed("gradient")
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(12)
for n, d in [(1, 1), (6, 3), (25, 5)]:
    Xh, yh = torch.randn(n, d, generator=g, dtype=torch.float64), torch.randn(n, generator=g, dtype=torch.float64)
    wh, bh = torch.randn(d, generator=g, dtype=torch.float64), torch.tensor(-0.4, dtype=torch.float64)
    mine, ref = gradient(Xh, yh, wh, bh), linear.gradient(Xh, yh, wh, bh)
    checks.check_close(mine[0], ref[0], name=f"dE/dw on N={n}, D={d}")
    checks.check_close(mine[1], ref[1], name=f"dE/db on N={n}, D={d}")
    fd = gradcheck.numerical_gradient(lambda b_: linear.loss(Xh, yh, wh, b_), bh)
    checks.check_close(mine[1], fd, name=f"dE/db against finite differences, N={n}", rtol=1e-6)
### END HIDDEN TESTS

# %% [markdown]
# ## 5 · Batch gradient descent
#
# Start anywhere, say $w = 0$, $b = 0$, and repeat: compute the gradient on **all** $N$ examples and take a
# small step against it,
#
# $$w \leftarrow w - \eta\,\frac{\partial E}{\partial w}, \qquad b \leftarrow b - \eta\,\frac{\partial E}{\partial b} .$$
#
# The learning rate $\eta$ sets the step size. Because $E$ is quadratic in $(w, b)$, there is also a
# closed-form answer, the *least-squares* solution of the normal equations, and gradient descent should walk
# to exactly that point. (We use gradient descent anyway because for networks no closed form exists.)
#
# ### Exercise 3 · `gd_step`
#
# Write `gd_step(X, y, w, b, *, eta)` that returns the new `(w, b)` after one batch step. Use your `gradient`
# or `linear.gradient`, and return new tensors (`w - eta * dw`, not `w -= ...`).

# %% [solution] id=gd_step
def gd_step(X, y, w, b, *, eta):
    r"""One step of batch gradient descent on the whole data set: :math:`w \leftarrow w - \eta\,\partial E/\partial w`.

    Returns:
        ``(w', b')``, new tensors; ``w`` and ``b`` are not modified.
    """
    ### BEGIN SOLUTION
    dw, db = linear.gradient(X, y, w, b)
    return w - eta * dw, b - eta * db
    ### END SOLUTION

# %% [check] id=check_gd_step points=2
w0, b0 = torch.zeros(1, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64)
result = gd_step(Xd, yd, w0, b0, eta=1e-3)
checks.check_type(result, tuple, name="gd_step(...)")
reference = linear.gd_step(Xd, yd, w0, b0, eta=1e-3)
checks.check_close(result[0], reference[0], name="w after one step")
checks.check_close(result[1], reference[1], name="b after one step")
checks.check_true(torch.equal(w0, torch.zeros(1, dtype=torch.float64)), "gd_step changed w in place")
checks.check_true(float(linear.loss(Xd, yd, *result)) < float(linear.loss(Xd, yd, w0, b0)),
                  "a small step against the gradient should lower E: is the sign of the step right?")
checks.passed("gd_step")
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(13)
Xh, yh = torch.randn(12, 3, generator=g, dtype=torch.float64), torch.randn(12, generator=g, dtype=torch.float64)
wh, bh = torch.randn(3, generator=g, dtype=torch.float64), torch.tensor(0.2, dtype=torch.float64)
for eta in (0.0, 0.01, 0.05):
    mine, ref = gd_step(Xh, yh, wh, bh, eta=eta), linear.gd_step(Xh, yh, wh, bh, eta=eta)
    checks.check_close(mine[0], ref[0], name=f"w after a step with eta={eta}")
    checks.check_close(mine[1], ref[1], name=f"b after a step with eta={eta}")
w, b = torch.zeros(3, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64)
for _ in range(400):
    w, b = gd_step(Xh, yh, w, b, eta=0.02)
ls_w, ls_b = linear.least_squares(Xh, yh)
checks.check_close(w, ls_w, name="w after 400 steps (should reach least squares)", atol=1e-6)
### END HIDDEN TESTS

# %% [markdown]
# Now a full run with the library's `linear.fit`, from $(0, 0)$, drawn on the contour map. The path first
# rushes down the steep wall of the valley, then creeps along its nearly flat floor: the valley is long
# because $x$ (between 0 and 4 decades) is never negative, so $w$ and $b$ can trade off against each other.

# %%
ETA_GOOD = 0.1 / N  # sections 6 and 7 explain the 1/N and why larger values fail
fit = linear.fit(X.double(), y.double(), eta=ETA_GOOD, epochs=EPOCHS)
print(f"after {EPOCHS} epochs: w = {float(fit.w[0]):.3f}, b = {float(fit.b):.3f}")
print(f"least squares:       w = {float(w_star):.3f}, b = {float(b_star):.3f}")

fig, axes = plt.subplots(1, 2, figsize=(10, 4))
plotting.loss_surface(axes[0], X, y, w_range=W_RANGE, b_range=B_RANGE)
axes[0].plot(fit.ws[:, 0], fit.bs, ".-", color="C3", label="batch GD")
axes[0].plot(float(w_star), float(b_star), "k*", ms=12, label="least squares")
axes[0].legend()
plotting.loss_curve(axes[1], fit.losses, log=True)
axes[1].set_title("E after each epoch")
fig.tight_layout()
plt.show()
plt.close(fig)

# %% [markdown]
# A classic remedy for the long valley is to **standardise** the features (subtract the mean, divide by the
# standard deviation): the valley becomes round and gradient descent goes straight to the bottom. Here, on
# all three features, standardised, gradient descent matches the closed-form answer to many digits:

# %%
Z, mu, s = linear.standardize(X_all.double())
fit3 = linear.fit(Z, y.double(), eta=0.5 / N, epochs=EPOCHS)
w3, b3 = linear.least_squares(Z, y.double())
print("gradient descent:", [round(v, 4) for v in fit3.w.tolist()], round(float(fit3.b), 4))
print("least squares:   ", [round(v, 4) for v in w3.tolist()], round(float(b3), 4))
print("income rise per year of experience, in thousands:", round(float(fit3.w[0] / s[0]), 3),
      "(the hidden rule used 1.5)")

# %% [markdown]
# ### Written question · the long valley
#
# Answer in a few sentences in the cell below (double-click it to edit); your instructor grades it by hand.
#
# **Question (2 points).** On experience alone the loss surface is a long, nearly flat valley, and batch
# gradient descent creeps along its floor. Why can $w$ and $b$ "trade off against each other" here, and why
# does standardising the feature make the valley round?

# %% [written] id=written_valley points=2
# Every $x$ lies between 0 and 4 decades, spread around its mean $\bar x$, far from 0. Raising $w$ by $\delta$
# and lowering $b$ by $\delta \bar x$ changes each prediction by $\delta\,(x_n - \bar x)$ instead of
# $\delta\,x_n$: less, up for some people and down for others, so $E$ rises only slowly along that direction,
# the valley's floor, while across it $E$ rises steeply. The step size must be small enough for the steep
# direction (section 7 makes this precise), so along the flat one each step removes only a tiny fraction of
# the distance. Standardising makes the mean 0: then changing $w$ no longer shifts the average prediction,
# $w$ and $b$ stop sharing the work (the Hessian $\sum_n [x_n; 1][x_n; 1]^\top$ becomes diagonal, $N$ times
# the identity when the spread is 1 too), both directions curve alike, the valley is round, and the gradient
# points straight at the minimum.

# %% [markdown]
# ## 6 · Stochastic gradient descent
#
# Batch descent looks at all $N$ examples before taking one step. With a million examples that is slow.
# **Stochastic gradient descent** (SGD) takes a step after *each* example, using only that example's term of
# the gradient:
#
# $$\text{for } n \text{ in a shuffled order:}\quad w \leftarrow w + \eta\,(y_n - \hat y_n)\,x_n, \qquad
#   b \leftarrow b + \eta\,(y_n - \hat y_n).$$
#
# One pass over the shuffled data is an epoch of SGD: $N$ cheap, noisy steps instead of one exact one. Each
# step follows one example's opinion, so the path zig-zags, and with a fixed $\eta$ it never quite stops at
# the minimum but keeps jittering around it; in exchange it starts making progress immediately and copes with
# data sets too big to sum over. (Mini-batches, used in notebook 03, sit in between.)
#
# Because $E$ is a sum over $N$ examples, one batch step is about $N$ times larger than one SGD step with the
# same $\eta$. That is why a good batch learning rate here scales like $1/N$.
#
# ### Exercise 4 · `sgd_epoch`
#
# Write `sgd_epoch(X, y, w, b, *, eta, seed)`: visit the examples in the order
# `torch.randperm(N, generator=torch.Generator().manual_seed(seed))` and take one step per example with
# that example alone. Hint: `X[n : n + 1]` keeps the shape $(1, D)$, so `gd_step` works on it unchanged.

# %% [solution] id=sgd_epoch
def sgd_epoch(X, y, w, b, *, eta, seed=0):
    r"""One epoch of stochastic gradient descent: one :func:`gd_step` per example, in a shuffled order.

    The order is ``torch.randperm(N, generator=torch.Generator().manual_seed(seed))``, so the same seed
    gives the same epoch.

    Returns:
        ``(w', b')`` after N single-example steps.
    """
    ### BEGIN SOLUTION
    b = torch.as_tensor(b, dtype=w.dtype)
    order = torch.randperm(X.shape[0], generator=torch.Generator().manual_seed(seed))
    for n in order.tolist():
        w, b = linear.gd_step(X[n : n + 1], y[n : n + 1], w, b, eta=eta)
    return w, b
    ### END SOLUTION

# %% [check] id=check_sgd_epoch points=3
w0, b0 = torch.zeros(1, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64)
result = sgd_epoch(Xd, yd, w0, b0, eta=0.01, seed=3)
checks.check_type(result, tuple, name="sgd_epoch(...)")
reference = linear.sgd_epoch(Xd, yd, w0, b0, eta=0.01, seed=3)
checks.check_close(result[0], reference[0], name="w after one SGD epoch (same seed, same order?)")
checks.check_close(result[1], reference[1], name="b after one SGD epoch")
checks.passed("sgd_epoch")
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(14)
Xh, yh = torch.randn(15, 4, generator=g, dtype=torch.float64), torch.randn(15, generator=g, dtype=torch.float64)
wh, bh = torch.randn(4, generator=g, dtype=torch.float64), torch.tensor(0.1, dtype=torch.float64)
for seed in (0, 7):
    mine, ref = sgd_epoch(Xh, yh, wh, bh, eta=0.05, seed=seed), linear.sgd_epoch(Xh, yh, wh, bh, eta=0.05, seed=seed)
    checks.check_close(mine[0], ref[0], name=f"w after an SGD epoch, seed {seed}")
    checks.check_close(mine[1], ref[1], name=f"b after an SGD epoch, seed {seed}")
checks.check_close(sgd_epoch(Xh[:1], yh[:1], wh, bh, eta=0.05)[0], linear.gd_step(Xh[:1], yh[:1], wh, bh, eta=0.05)[0],
                   name="SGD on one example equals one GD step")
### END HIDDEN TESTS

# %% [markdown]
# Batch GD and SGD side by side, each for the same number of epochs. SGD uses a per-example learning rate
# ($\eta = 0.02$), batch GD the $1/N$-scaled one from before:

# %%
sgd_fit = linear.fit(X.double(), y.double(), eta=0.02, epochs=EPOCHS, method="sgd", seed=profile.seed)
fig, axes = plt.subplots(1, 2, figsize=(10, 4))
plotting.loss_surface(axes[0], X, y, w_range=W_RANGE, b_range=B_RANGE)
axes[0].plot(fit.ws[:, 0], fit.bs, ".-", color="C3", label="batch GD")
axes[0].plot(sgd_fit.ws[:, 0], sgd_fit.bs, ".-", color="C1", label="SGD (end of each epoch)")
axes[0].plot(float(w_star), float(b_star), "k*", ms=12)
axes[0].legend()
plotting.loss_curve(axes[1], fit.losses, label="batch GD", log=True)
plotting.loss_curve(axes[1], sgd_fit.losses, label="SGD", log=True)
axes[1].axhline(float(linear.loss(X.double(), y.double(), w_star, b_star)), color="k", ls=":", label="minimum")
axes[1].legend()
fig.tight_layout()
plt.show()
plt.close(fig)

# %% [markdown]
# ### Written question · SGD and the perceptron rule
#
# **Question (2 points).** The SGD step $w \leftarrow w + \eta\,(y_n - \hat y_n)\,x_n$ looks exactly like the
# perceptron rule of notebook 01. What is the difference, and why does it let the linear unit settle near a
# best compromise on data that no line fits, where the perceptron kept jumping for ever?

# %% [written] id=written_sgd_vs_perceptron points=2
# The formula is the same, but $\hat y$ is not: the perceptron uses $\hat y = \mathrm{step}(w \cdot x + b)$, so
# $y - \hat y$ is only $0$ or $\pm 1$, and every mistake, however small, costs a correction of full size while
# a right answer, however narrow, costs none. The linear unit uses $\hat y = w \cdot x + b$, so the
# correction is proportional to *how* wrong the prediction is, and the step is the (negative) gradient of
# one example's term of the smooth objective $E$. Near the minimum of $E$ the errors of the examples balance
# (the summed gradient is zero), so batch descent stops there and SGD only jitters around it, by an amount
# that shrinks with $\eta$. The perceptron has no such objective: on data that are not separable some
# example is always misclassified and always pushes the line by a full step.

# %% [markdown]
# ## 7 · The learning rate: too small, about right, divergent
#
# For a quadratic $E$ the behaviour of gradient descent is set by the *curvature* along the steepest
# direction of the valley, the largest eigenvalue $\lambda_{\max}$ of the Hessian
# $\nabla^2 E = \sum_n [x_n; 1][x_n; 1]^\top$. Each step multiplies the distance to the minimum along that
# direction by $(1 - \eta \lambda_{\max})$:
#
# * $\eta \ll 1/\lambda_{\max}$: tiny steps, slow but steady;
# * $\eta$ a little below $2/\lambda_{\max}$: fast, perhaps zig-zagging across the valley;
# * $\eta > 2/\lambda_{\max}$: $|1 - \eta\lambda_{\max}| > 1$, every step overshoots further, and $E$ **explodes**.
#
# Since $\lambda_{\max}$ grows with $N$ (it is a sum over examples), so does the need to shrink $\eta$.

# %%
A = torch.cat([X.double(), torch.ones(N, 1, dtype=torch.float64)], dim=1)  # (N, 2): the input and a 1
lam_max = float(torch.linalg.eigvalsh(A.T @ A).max())
print(f"largest curvature λ_max = {lam_max:.1f}, so divergence starts at η = 2/λ_max = {2 / lam_max:.5f}")
rates = {"too small": 0.05 / lam_max, "about right": 1.0 / lam_max, "divergent": 2.1 / lam_max}
fig, axes = plt.subplots(1, 2, figsize=(10, 4))
plotting.loss_surface(axes[0], X, y, w_range=W_RANGE, b_range=B_RANGE)
for name, eta in rates.items():
    run = linear.fit(X.double(), y.double(), eta=eta, epochs=min(EPOCHS, 15))
    axes[0].plot(run.ws[:, 0], run.bs, ".-", label=f"{name} (η = {eta:.2g})")
    plotting.loss_curve(axes[1], run.losses, label=name, log=True)
axes[0].legend(fontsize=8)
axes[1].set_title("E after each step")
fig.tight_layout()
plt.show()
plt.close(fig)

# %% [markdown]
# ### Written question · more data
#
# **Question (1 point).** The same kind of data, but twice as many people: $N = 100$ instead of 50. A batch
# learning rate $\eta = 1.5/\lambda_{\max}$ worked for $N = 50$. What happens with the same $\eta$ on the
# new data, and what would you change?

# %% [written] id=written_more_data points=1
# $E$ is a sum over the examples, and so is its Hessian $\sum_n [x_n; 1][x_n; 1]^\top$: with twice as many
# examples drawn the same way, $\lambda_{\max}$ roughly doubles. The old $\eta = 1.5/\lambda_{\max}^{(50)}$ is
# then about $3/\lambda_{\max}^{(100)}$, above the limit $2/\lambda_{\max}$: every step overshoots further and
# $E$ explodes. Halve $\eta$ (scale it like $1/N$), or use the mean instead of the sum in $E$, which does the
# same.

# %% [markdown]
# ## Lecture demo · the gradient-descent explorer
#
# Move the learning rate, switch between batch and SGD, and change the number of epochs; the path on the
# loss surface and the loss curve update at once.

# %%
from nstlab.widgets.gd_explorer import gd_explorer

gd_explorer()

# %% [markdown]
# ## Summary
#
# * A linear unit outputs $\hat y = w\cdot x + b$; its squared error $E = \tfrac12\sum (y - \hat y)^2$ is
#   smooth, so we can minimise it even when no perfect answer exists.
# * Its gradient, by the chain rule, is $\partial E/\partial w = -\sum (y_n - \hat y_n) x_n$: each example
#   pulls the weights towards its input, as hard as it is wrong.
# * Batch gradient descent steps against the full gradient and reaches the least-squares solution; SGD steps
#   after every example, noisier but cheaper per step.
# * The learning rate must stay below $2/\lambda_{\max}$; too small is slow, too large diverges.
