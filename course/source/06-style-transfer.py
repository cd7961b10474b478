# %% [markdown]
# # 06 · Neural style transfer
#
# Notebook 05 showed that the layers of a trained VGG describe a photo at growing scales, from edges to
# objects. Gatys, Ecker & Bethge (2016) turned that observation into a way of *painting*: start from some
# image $\vec x$ and change its pixels until its deep features match those of a photo $\vec p$ (its
# **content**) while the *correlations* between its features match those of a painting $\vec a$ (its
# **style**). Nothing is trained: the network is fixed and the pixels are the parameters.
#
# **In this notebook you will learn**
#
# 1. the content loss, and which layer carries a photo's content;
# 2. the Gram matrix, and why correlations between channels capture style but not layout;
# 3. the style loss of one layer and of several, and the objective $\alpha \mathcal{L}_{content} + \beta \mathcal{L}_{style}$
#    as a function of the image;
# 4. why published values of $\alpha/\beta$ differ by orders of magnitude between implementations;
# 5. the gradients of the losses derived by hand, and checked against autograd;
# 6. one optimisation step of the pixels, written once for Adam and L-BFGS;
# 7. the two limits of the method: style alone ($\alpha = 0$, texture synthesis) and content alone
#    ($\beta = 0$, feature inversion);
# 8. the paper's normalised VGG19 and its average pooling, and what they change;
# 9. how the result depends on the initial image, the optimiser, the style layers, total variation and
#    colour preservation.
#
# **Runtime** (fast profile): about 1½ minutes on a 2-core CPU, up to 2½ minutes when it is busy; GPU: not measured yet.
#
# **Pretrained weights.** The method needs VGG19's ImageNet weights (548 MB, see `nstlab weights status`).
# If they cannot be found or downloaded, this notebook says why and continues on an *untrained* VGG19 with
# random weights, and every figure says so in red. The losses, gradients and the optimisation work the same,
# so every exercise can be done. The stand-in is scaled layer by layer to a mean activation of 1 (section
# 9), and random filters scaled like that still match colours and blotchy textures (He, Wang & Hopcroft,
# 2016; Ustyuzhaninov et al., 2017): offline, the style-only run gives the painting's colours in blobs and the
# $\beta/\alpha$ sweep moves from the photo towards them, while the content-only image keeps only a faint
# outline of the cat. With the pretrained network, the style term reproduces the painting's strokes and
# shapes, the cat is redrawn in them, and the content-only image keeps the cat's outlines and features.

# %%
import matplotlib.pyplot as plt
import torch
from IPython.display import display

from nstlab import checks, data, device, losses, optimise, profiles, style_config, stylize, vgg, weights
from nstlab.widgets.style_panel import style_panel

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
STYLE_LAYERS, CONTENT_LAYERS = losses.GATYS_STYLE_LAYERS, losses.GATYS_CONTENT_LAYERS
# The paper's network (section 9): every filter rescaled to a mean activation of 1, and average pooling.
paper_backbone = vgg.normalise_backbone(backbone)
extractor = vgg.VGGFeatures(CONTENT_LAYERS + STYLE_LAYERS, backbone=paper_backbone, pool="avg").to(dev)
print(extractor.note)
# The paper's balance alpha/beta = 1e-3 for the pretrained network; the untrained stand-in needs more style to
# show it (its balance was measured: style_config.STAND_IN_BETA).
BETA = 1e3 if extractor.pretrained else style_config.STAND_IN_BETA

# Sizes come from the profile: the main run at half its image size, comparisons at a quarter.
size, small = max(64, profile.image_size // 2), max(48, profile.image_size // 4)  # the short side must stay >= 32
steps, small_steps = max(2, profile.style_steps // 3), max(2, profile.style_steps // 10)
photo = data.builtin_image("chelsea", size=size).to(dev)
painting = data.builtin_image("mosaic", size=size).to(dev)


def label(fig, title):
    """Title a figure, and say on it, in red, when the network is the untrained stand-in."""
    if extractor.pretrained:
        fig.suptitle(title)
    else:
        fig.suptitle(f"{title}\n{extractor.note}", color="#b00", fontsize=8, wrap=True)


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


show_row([photo, painting], ["content: chelsea", "style: mosaic"], "the two images we combine")

# %% [markdown]
# ## 1 · Content: matching features
#
# Layer $l$ of VGG has $N_l$ filters and $M_l = H_l W_l$ positions; its response to an image is a matrix
# $F^l \in \mathbb{R}^{N_l \times M_l}$, one row per filter. In tensors it is the activation of shape
# $(N, C, H, W)$ with $C = N_l$. Let $P^l$ be the response to the photo. Gatys et al. define the **content
# loss** as the squared distance between the two,
#
# $$\mathcal{L}_{content}(\vec p, \vec x, l) = \tfrac12 \sum_{i,j} \left(F^l_{ij} - P^l_{ij}\right)^2 .$$
#
# The paper takes the content from `conv4_2` (our `relu4_2`: Caffe's ReLU overwrites its convolution in
# place, so the paper's "conv4_2" is rectified). A deep layer keeps *what* is where (notebook 05
# reconstructed photos from it), but not the exact pixel values, which leaves room for the style.
#
# The factor in front is a **convention**. The deeplearning.ai course uses $\frac{1}{4 n_H n_W n_C}$ instead
# of $\tfrac12$; `losses.get_convention(convention).content_factor(C, H, W)` returns the right factor for
# either, so one function serves both. For a batch, the loss is the **sum** over its images, and a target
# $P$ with a batch size of 1 applies to every image (broadcasting does that for you).
#
# ### Exercise 1 · `content_loss`
#
# **Task.** Write `content_loss(F, P, *, convention="gatys")`: given the activations `F` of the generated
# images, shape (N, C, H, W), and those of the photo, `P`, shape (N or 1, C, H, W), return the content loss as
# a 0-dim tensor: the factor of the chosen convention times $\sum (F - P)^2$, summed over the batch.

# %% [solution] id=content_loss
def content_loss(F, P, *, convention="gatys"):
    r"""The content loss :math:`\tfrac12 \sum (F - P)^2` (Gatys) or :math:`\frac{1}{4 n_H n_W n_C} \sum (F - P)^2`.

    Args:
        F: activations of the generated images, (N, C, H, W).
        P: activations of the content images, (N, C, H, W) or (1, C, H, W).
        convention: ``"gatys"`` or ``"deeplearning_ai"``.

    Returns:
        A 0-dim tensor, summed over the batch.
    """
    ### BEGIN SOLUTION
    _, C, H, W = F.shape
    return losses.get_convention(convention).content_factor(C, H, W) * ((F - P) ** 2).sum()
    ### END SOLUTION

# %% [check] id=check_content_loss points=2
with checks.no_tf32():
    g = torch.Generator().manual_seed(0)
    F_, P_ = torch.randn(2, 4, 3, 5, generator=g), torch.randn(1, 4, 3, 5, generator=g)
    result = content_loss(F_, P_)
    checks.check_type(result, torch.Tensor, name="content_loss(F, P)")
    checks.check_shape(result, (), name="content_loss(F, P)")
    _, C_, H_, W_ = F_.shape
    checks.check_close(result, losses.content_loss(F_, P_), name="content_loss(F, P)", rtol=1e-5,
                       factors={"the other convention's 1/(4 n_H n_W n_C) instead of Gatys' ½": 1 / (2 * C_ * H_ * W_),
                                "a mean instead of ½ times the sum": 2 / F_.numel(), "the ½ left out": 2.0})
    F_grad = F_.clone().requires_grad_(True)
    checks.check_grad(content_loss(F_grad, P_), losses.content_loss(F_grad, P_), [F_grad], name="content_loss(F, P)",
                      rtol=1e-4, atol=1e-6)
    checks.check_close(content_loss(F_, P_, convention="deeplearning_ai"),
                       losses.content_loss(F_, P_, convention="deeplearning_ai"),
                       name="content_loss(F, P, convention='deeplearning_ai')", rtol=1e-5)
checks.passed("content_loss")
### BEGIN HIDDEN TESTS
with checks.no_tf32():
    g = torch.Generator().manual_seed(41)
    for shape in [(1, 3, 2, 2), (3, 8, 5, 4)]:
        F_ = torch.randn(shape, generator=g, dtype=torch.float64)
        checks.check_close(content_loss(F_, F_), 0.0, name=f"content_loss(F, F) for shape {shape}", atol=1e-12)
        P_ = torch.randn(shape, generator=g, dtype=torch.float64)
        for conv in ("gatys", "deeplearning_ai"):
            checks.check_close(content_loss(F_, P_, convention=conv), losses.content_loss(F_, P_, convention=conv),
                               name=f"content_loss on shape {shape}, {conv}", rtol=1e-10)
    # a batch is the sum of its images
    F_, P_ = torch.randn(3, 2, 4, 4, generator=g, dtype=torch.float64), torch.randn(1, 2, 4, 4, generator=g, dtype=torch.float64)
    checks.check_close(content_loss(F_, P_), sum(content_loss(F_[k:k + 1], P_) for k in range(3)),
                       name="content_loss of a batch versus the sum over its images", rtol=1e-10)
### END HIDDEN TESTS

# %% [markdown]
# ## 2 · Style: correlations between features
#
# A painting's style is in its brush strokes, colours and textures, wherever they are, not in where its
# objects stand. Gatys et al. capture it with the **Gram matrix** of a layer, the inner products between
# every pair of its feature maps:
#
# $$G^l_{ij} = \sum_k F^l_{ik} F^l_{jk}, \qquad G^l = F^l \left(F^l\right)^\top \in \mathbb{R}^{N_l \times N_l}.$$
#
# $G^l_{ij}$ is large when filters $i$ and $j$ tend to fire *at the same places*: "yellow" together with
# "thick stroke", say. The sum over positions $k$ throws away where things are: shuffle the columns of
# $F^l$ (the positions) and $G^l$ does not change, while the content loss does. The cell below checks exactly
# that on the photo's `relu3_1` features.

# %%
with torch.no_grad():
    F_photo = extractor(photo)["relu3_1"]  # (1, C, H, W)
N_, C_, H_, W_ = F_photo.shape
shuffle = torch.randperm(H_ * W_, generator=torch.Generator().manual_seed(profile.seed)).to(dev)
F_shuffled = F_photo.reshape(1, C_, H_ * W_)[:, :, shuffle].reshape(1, C_, H_, W_)  # same features, scrambled positions
print(f"relu3_1: F is {C_} x {H_ * W_} (N_l x M_l), so G is {C_} x {C_}")
print(f"content loss, photo vs shuffled photo: {losses.content_loss(F_shuffled, F_photo).item():.4g}")
print("largest change of the Gram matrix:      "
      f"{(losses.gram_matrix(F_shuffled) - losses.gram_matrix(F_photo)).abs().max().item():.2g} "
      f"(of entries up to {losses.gram_matrix(F_photo).abs().max().item():.3g})")

# %% [markdown]
# ### Exercise 2 · `gram_matrix` for a batch
#
# **Task.** Write `gram_matrix(F, *, normalize=False)`: given activations `F` of shape $(N, C, H, W)$, return
# the $(N, C, C)$ tensor of their Gram matrices, **one per image**; with `normalize=True`, each divided by
# $C H W$.
#
# A common bug flattens the batch into the positions (`F.reshape(C, -1)`),
# which mixes the images: it only works for $N = 1$. Reshape to $(N, C, H W)$ instead and use a batched
# matrix product (`@` or `torch.bmm`) with the transpose of the last two axes. (Dividing by $C H W$ is
# Johnson et al.'s normalisation; Gatys's convention does not normalise.)

# %% [solution] id=gram_matrix
def gram_matrix(F, *, normalize=False):
    r"""The Gram matrix of each image's features, :math:`G_{ij} = \sum_k F_{ik} F_{jk}`.

    Args:
        F: activations of shape (N, C, H, W).
        normalize: divide by C H W (Johnson et al.'s normalisation); the Gatys convention does not.

    Returns:
        A tensor of shape (N, C, C): one Gram matrix per image, never mixing images of the batch.
    """
    ### BEGIN SOLUTION
    N, C, H, W = F.shape
    F_flat = F.reshape(N, C, H * W)  # (N, C, M)
    G = F_flat @ F_flat.transpose(1, 2)  # (N, C, C)
    return G / (C * H * W) if normalize else G
    ### END SOLUTION

# %% [check] id=check_gram_matrix points=3
with checks.no_tf32():
    g = torch.Generator().manual_seed(1)
    F_ = torch.randn(2, 3, 4, 5, generator=g)
    result = gram_matrix(F_)
    checks.check_type(result, torch.Tensor, name="gram_matrix(F)")
    checks.check_true(tuple(result.shape) != (3, 3),
                      "gram_matrix(F) returned one 3 x 3 matrix for a batch of 2 images: the images of the batch "
                      "are mixed into one Gram matrix (F.reshape(C, -1) puts both images' positions in one row). "
                      "Reshape to (N, C, H * W) and use a batched product.")
    checks.check_close(result, losses.gram_matrix(F_), name="gram_matrix(F) for F of shape (2, 3, 4, 5)",
                       rtol=1e-5, atol=1e-6,
                       mistakes={"the images of the batch are mixed into one Gram matrix, repeated for each image":
                                     losses.gram_matrix(F_).sum(0).expand(2, 3, 3)})
    F_grad = F_.clone().requires_grad_(True)
    checks.check_grad(gram_matrix(F_grad), losses.gram_matrix(F_grad), [F_grad], name="gram_matrix(F)", rtol=1e-4, atol=1e-5)
    checks.check_close(gram_matrix(F_, normalize=True), losses.gram_matrix(F_, normalize=True),
                       name="gram_matrix(F, normalize=True)", rtol=1e-5, atol=1e-7)
    checks.check_close(result[1], losses.gram_matrix(F_[1:2])[0], rtol=1e-5, atol=1e-6,
                       name="gram_matrix(F)[1] (the second image alone): are the images of the batch mixed?")
checks.passed("gram_matrix")
### BEGIN HIDDEN TESTS
with checks.no_tf32():
    g = torch.Generator().manual_seed(42)
    for shape in [(1, 1, 1, 1), (4, 6, 3, 2), (3, 16, 7, 9)]:
        F_ = torch.randn(shape, generator=g, dtype=torch.float64)
        G_ = gram_matrix(F_)
        checks.check_close(G_, losses.gram_matrix(F_), name=f"gram_matrix for shape {shape}", rtol=1e-10)
        # the Gram matrix of a batch is the batch of Gram matrices
        stacked = torch.cat([gram_matrix(F_[k:k + 1]) for k in range(shape[0])])
        checks.check_close(G_, stacked, name=f"batch of {shape[0]} versus one image at a time", rtol=1e-10)
        checks.check_close(G_, G_.transpose(1, 2), name=f"gram_matrix symmetry for shape {shape}", rtol=1e-10)
        checks.check_close(gram_matrix(F_, normalize=True), losses.gram_matrix(F_, normalize=True),
                           name=f"gram_matrix(normalize=True) for shape {shape}", rtol=1e-10)
    F_ = torch.randn(2, 5, 4, 4, generator=g)
    before = F_.clone()
    gram_matrix(F_)
    checks.check_true(torch.equal(F_, before), "gram_matrix changed its input in place.")
### END HIDDEN TESTS

# %% [markdown]
# ## 3 · The style loss
#
# Let $A^l$ be the Gram matrix of the painting at layer $l$ and $G^l$ that of the generated image. The
# contribution of layer $l$ is the squared distance between them, normalised by the layer's size:
#
# $$E_l = \frac{1}{4 N_l^2 M_l^2} \sum_{i,j} \left(G^l_{ij} - A^l_{ij}\right)^2 .$$
#
# $G^l$ is a sum over $M_l$ positions of products of activations, so it grows like $M_l$ and its square like
# $M_l^2$; dividing by $N_l^2 M_l^2$ keeps layers of different sizes comparable. Both conventions of this
# course use this factor (`losses.get_convention(convention).style_factor(C, M)`). The style loss sums the
# layers with weights $w_l$ (the paper: $w_l = 1/5$ for `conv1_1`, `conv2_1`, `conv3_1`, `conv4_1`,
# `conv5_1`, our `relu1_1` … `relu5_1`):
#
# $$\mathcal{L}_{style}(\vec a, \vec x) = \sum_l w_l E_l .$$
#
# ### Exercise 3 · `style_layer_loss`
#
# **Task.** Write `style_layer_loss(F, A_gram, *, convention="gatys")`: given the activations `F` of the
# generated images (N, C, H, W) and the painting's Gram matrices `A_gram` (N or 1, C, C), return $E_l$ as a
# 0-dim tensor, summed over the batch. Use the library's `losses.gram_matrix`, so that this exercise does not
# depend on your answer to the previous one, and `losses.get_convention(convention).style_factor(C, M)` for
# the factor.

# %% [solution] id=style_layer_loss
def style_layer_loss(F, A_gram, *, convention="gatys"):
    r"""One layer's style loss :math:`E_l = \frac{1}{4 N_l^2 M_l^2} \sum (G^l - A^l)^2`.

    Args:
        F: activations of the generated images, (N, C, H, W).
        A_gram: the style images' Gram matrices ``gram_matrix(style_F)`` (unnormalised), (N, C, C) or (1, C, C).
        convention: ``"gatys"`` or ``"deeplearning_ai"`` (the same normalisation for this part).

    Returns:
        A 0-dim tensor, summed over the batch.
    """
    ### BEGIN SOLUTION
    N, C, H, W = F.shape
    G = losses.gram_matrix(F)  # (N, C, C)
    return losses.get_convention(convention).style_factor(C, H * W) * ((G - A_gram) ** 2).sum()
    ### END SOLUTION

# %% [check] id=check_style_layer_loss points=2
with checks.no_tf32():
    g = torch.Generator().manual_seed(2)
    F_, S_ = torch.rand(2, 4, 3, 3, generator=g), torch.rand(1, 4, 5, 5, generator=g)
    A_ = losses.gram_matrix(S_)
    result = style_layer_loss(F_, A_)
    checks.check_shape(result, (), name="style_layer_loss(F, A_gram)")
    checks.check_close(result, losses.style_layer_loss(F_, A_), name="style_layer_loss(F, A_gram)", rtol=1e-5)
    F_grad = F_.clone().requires_grad_(True)
    checks.check_grad(style_layer_loss(F_grad, A_), losses.style_layer_loss(F_grad, A_), [F_grad],
                      name="style_layer_loss(F, A_gram)", rtol=1e-4, atol=1e-8)
    checks.check_close(style_layer_loss(F_, losses.gram_matrix(F_)), 0.0, atol=1e-8,
                       name="style_layer_loss(F, gram_matrix(F)), which should be 0")
checks.passed("style_layer_loss")
### BEGIN HIDDEN TESTS
with checks.no_tf32():
    g = torch.Generator().manual_seed(43)
    for shape in [(1, 2, 1, 7), (3, 8, 4, 6)]:
        F_ = torch.rand(shape, generator=g, dtype=torch.float64)
        A_ = losses.gram_matrix(torch.rand(shape, generator=g, dtype=torch.float64))
        for conv in ("gatys", "deeplearning_ai"):
            checks.check_close(style_layer_loss(F_, A_, convention=conv),
                               losses.style_layer_loss(F_, A_, convention=conv),
                               name=f"style_layer_loss on shape {shape}, {conv}", rtol=1e-10)
        checks.check_close(style_layer_loss(F_, losses.gram_matrix(F_)), 0.0, atol=1e-12,
                           name=f"style_layer_loss(F, gram(F)) on shape {shape}")
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 4 · `style_loss` with layer weights
#
# **Task.** Write `style_loss(features, target_grams, *, weights=None, convention="gatys")`: given the
# generated images' activations by layer and the painting's Gram matrices by layer, return
# $\mathcal{L}_{style} = \sum_l w_l E_l$ as a 0-dim tensor.
#
# `features` maps layer names to activations (it may hold more
# layers, such as the content layer); `target_grams` maps each **style layer** to its $A^l$. `weights`
# maps layer names to $w_l$; when it is `None`, every target layer gets $w_l = 1/L$ ($L$ layers). When
# weights are given, only the layers named in them count. Use `losses.style_layer_loss` for each term.

# %% [solution] id=style_loss
def style_loss(features, target_grams, *, weights=None, convention="gatys"):
    r"""The style loss :math:`\mathcal{L}_{style} = \sum_l w_l E_l` over the style layers.

    Args:
        features: layer name -> activations of the generated images (N, C, H, W); may hold more layers.
        target_grams: layer name -> the style images' Gram matrix (N or 1, C, C); these are the style layers.
        weights: layer name -> :math:`w_l \ge 0`; default :math:`1/L` for each of the L target layers.
            Layers left out of ``weights`` do not count.
        convention: ``"gatys"`` or ``"deeplearning_ai"``.

    Returns:
        A 0-dim tensor.
    """
    ### BEGIN SOLUTION
    if weights is None:
        weights = {layer: 1.0 / len(target_grams) for layer in target_grams}
    terms = [w_l * losses.style_layer_loss(features[layer], target_grams[layer], convention=convention)
             for layer, w_l in weights.items()]
    return torch.stack(terms).sum()
    ### END SOLUTION

# %% [check] id=check_style_loss points=2
with checks.no_tf32():
    g = torch.Generator().manual_seed(3)
    feats = {"relu1_1": torch.rand(1, 3, 4, 4, generator=g), "relu2_1": torch.rand(1, 5, 2, 2, generator=g),
             "relu4_2": torch.rand(1, 6, 2, 2, generator=g)}
    grams = {name: losses.gram_matrix(torch.rand(1, C, 3, 3, generator=g)) for name, C in [("relu1_1", 3), ("relu2_1", 5)]}
    checks.check_close(style_loss(feats, grams), losses.style_loss(feats, grams), rtol=1e-5,
                       name="style_loss(features, target_grams) with equal weights 1/L")
    w = {"relu1_1": 0.25, "relu2_1": 2.0}
    checks.check_close(style_loss(feats, grams, weights=w), losses.style_loss(feats, grams, weights=w), rtol=1e-5,
                       name="style_loss(features, target_grams, weights={'relu1_1': 0.25, 'relu2_1': 2.0})")
checks.passed("style_loss")
### BEGIN HIDDEN TESTS
with checks.no_tf32():
    g = torch.Generator().manual_seed(44)
    feats = {f"relu{b}_1": torch.rand(2, 2 * b, 6 - b, 6 - b, generator=g, dtype=torch.float64) for b in range(1, 5)}
    grams = {name: losses.gram_matrix(torch.rand(1, f.shape[1], 3, 3, generator=g, dtype=torch.float64))
             for name, f in feats.items()}
    checks.check_close(style_loss(feats, grams), losses.style_loss(feats, grams), rtol=1e-10,
                       name="style_loss over four layers")
    only = {"relu3_1": 1.5}
    checks.check_close(style_loss(feats, grams, weights=only), 1.5 * losses.style_layer_loss(feats["relu3_1"], grams["relu3_1"]),
                       rtol=1e-10, name="style_loss with a weight for one layer only")
    own = {name: losses.gram_matrix(f) for name, f in feats.items()}
    checks.check_close(style_loss(feats, own, convention="deeplearning_ai"), 0.0, atol=1e-12,
                       name="style_loss of features against their own Gram matrices")
### END HIDDEN TESTS

# %% [markdown]
# ## 4 · The objective, and the balance $\alpha / \beta$
#
# The image is optimised for a weighted sum of both goals (section 6 adds an optional smoothness term):
#
# $$\mathcal{L}_{total}(\vec p, \vec a, \vec x) = \alpha\, \mathcal{L}_{content}(\vec p, \vec x) + \beta\, \mathcal{L}_{style}(\vec a, \vec x).$$
#
# Only the ratio $\alpha/\beta$ matters for the result (multiplying the loss by a constant does not move its
# minimum); the first version of the paper (Gatys, Ecker & Bethge, 2015, Fig. 2) used $10^{-3}$ and $10^{-4}$.
#
# The targets $P^l$ (the photo's activations at the content layers) and $A^l$ (the painting's Gram matrices at
# the style layers) are computed once, before the optimisation. What the optimiser needs is then a function of
# the image alone, $\vec x \mapsto \mathcal{L}_{total}$: the **objective**. A Python function can make and
# return another function that remembers the variables around it (a *closure*):
#
# ```python
# def make_scaler(factor):
#     def scale(x):
#         return factor * x  # `factor` is remembered from make_scaler's call
#     return scale
#
# triple = make_scaler(3)
# triple(2)  # 6
# ```
#
# ### Exercise 5 · `make_objective`
#
# **Task.** Write `make_objective(extractor, content_targets, style_grams, *, alpha=1.0, beta=1e3)`: given the
# feature extractor and the two targets (dicts from layer names to $P^l$ and to $A^l$), return a function
# `objective(x)` that maps images `x` (N, 3, H, W) to their `losses.LossParts(content, style, tv, total)`.
#
# Inside `objective`: run `extractor(x)` once; `content` is `losses.content_loss` summed over the layers of
# `content_targets`, `style` is `losses.style_loss(features, style_grams)` (equal layer weights), `tv` is a
# zero 0-dim tensor (`torch.zeros_like(content)`; this objective has no smoothness term) and `total` is
# $\alpha \cdot$ `content` $+ \beta \cdot$ `style`. Everything must stay on autograd's graph: the optimiser
# back-propagates `total` to the pixels.

# %% [solution] id=make_objective
def make_objective(extractor, content_targets, style_grams, *, alpha=1.0, beta=1e3):
    r"""The style-transfer objective as a function of the image: :math:`\alpha L_{content} + \beta L_{style}`.

    Args:
        extractor: a module that maps images (N, 3, H, W) to a dict of activations that holds every layer of
            both targets, e.g. :class:`nstlab.vgg.VGGFeatures`.
        content_targets: content layer name -> the photo's activations :math:`P^l`, (1, C, H, W).
        style_grams: style layer name -> the painting's Gram matrix :math:`A^l`, (1, C, C).
        alpha: :math:`\alpha \ge 0`, the weight of the content loss.
        beta: :math:`\beta \ge 0`, the weight of the style loss.

    Returns:
        A function ``objective(x)`` from images (N, 3, H, W) to their ``LossParts``.
    """
    ### BEGIN SOLUTION
    def objective(x):
        features = extractor(x)
        content = torch.stack([losses.content_loss(features[layer], P) for layer, P in content_targets.items()]).sum()
        style = losses.style_loss(features, style_grams)
        return losses.LossParts(content, style, torch.zeros_like(content), alpha * content + beta * style)

    return objective
    ### END SOLUTION

# %% [check] id=check_make_objective points=3
def toy_extractor(x):
    """A stand-in for VGG: two layers made from the image by fixed operations, as a dict."""
    a = torch.relu(x[:, :2] - x[:, 2:])  # (N, 2, H, W)
    return {"a": a, "b": torch.nn.functional.avg_pool2d(torch.cat([a, x], dim=1), 2)}  # (N, 5, H/2, W/2)


with checks.no_tf32():
    g = torch.Generator().manual_seed(4)
    photo_, painting_ = torch.rand(1, 3, 4, 6, generator=g, dtype=torch.float64), torch.rand(1, 3, 4, 6, generator=g, dtype=torch.float64)
    P_ = {name: f for name, f in toy_extractor(photo_).items()}  # content at both layers
    A_ = {"b": losses.gram_matrix(toy_extractor(painting_)["b"])}
    objective_ = make_objective(toy_extractor, P_, A_, alpha=2.0, beta=30.0)
    checks.check_true(callable(objective_) and not isinstance(objective_, losses.LossParts),
                      f"make_objective(...) should return a function of the image, got {type(objective_).__name__}: "
                      "define `def objective(x): ...` inside make_objective and return objective itself, not its result.")
    x_ = torch.rand(2, 3, 4, 6, generator=g, dtype=torch.float64, requires_grad=True)
    parts = objective_(x_)
    checks.check_type(parts, losses.LossParts, name="objective(x)")
    want = optimise.make_objective(toy_extractor, P_, A_, alpha=2.0, beta=30.0)(x_)
    checks.check_close(parts.content, want.content, rtol=1e-10, name="objective(x).content (summed over both content layers)",
                       mistakes={"only the first content layer counts": losses.content_loss(toy_extractor(x_)["a"], P_["a"]),
                                 "only the last content layer counts": losses.content_loss(toy_extractor(x_)["b"], P_["b"])})
    checks.check_close(parts.style, want.style, rtol=1e-10, name="objective(x).style")
    checks.check_type(parts.tv, torch.Tensor, name="objective(x).tv")
    checks.check_close(parts.tv, 0.0, atol=0, name="objective(x).tv (a zero 0-dim tensor: torch.zeros_like(content))")
    checks.check_close(parts.total, want.total, rtol=1e-10, name="objective(x).total with alpha=2, beta=30",
                       mistakes={"alpha and beta swapped": 30.0 * want.content + 2.0 * want.style,
                                 "the weights alpha and beta left out": want.content + want.style})
    checks.check_grad(parts.total, want.total, [x_], name="objective(x).total", rtol=1e-8, atol=1e-12)
checks.passed("make_objective")
### BEGIN HIDDEN TESTS
with checks.no_tf32():
    g = torch.Generator().manual_seed(45)
    x_ = torch.rand(3, 3, 6, 4, generator=g, dtype=torch.float64, requires_grad=True)
    P_ = {"b": toy_extractor(torch.rand(1, 3, 6, 4, generator=g, dtype=torch.float64))["b"]}
    A_ = {name: losses.gram_matrix(f) for name, f in toy_extractor(torch.rand(1, 3, 6, 4, generator=g, dtype=torch.float64)).items()}
    for alpha_, beta_ in [(0.0, 1.0), (1.0, 0.0), (1.0, 1e3)]:
        got = make_objective(toy_extractor, P_, A_, alpha=alpha_, beta=beta_)(x_)
        ref = optimise.make_objective(toy_extractor, P_, A_, alpha=alpha_, beta=beta_)(x_)
        for part in ("content", "style", "tv", "total"):
            checks.check_close(getattr(got, part), getattr(ref, part), rtol=1e-10, atol=1e-14,
                               name=f"objective(x).{part} with alpha={alpha_}, beta={beta_}")
    default = make_objective(toy_extractor, P_, A_)(x_)
    checks.check_close(default.total, default.content + 1e3 * default.style, rtol=1e-10,
                       name="the total with the default weights alpha=1, beta=1e3")
### END HIDDEN TESTS

# %% [markdown]
# ### Why published $\alpha/\beta$ differ by orders of magnitude
#
# The paper uses $\alpha/\beta = 10^{-3}$ or $10^{-4}$, the deeplearning.ai course
# $10/40 = 0.25$, and the PyTorch tutorial a style weight of $10^6$. Much of that spread is **units**, not
# taste: each implementation normalises its losses differently, and $\alpha/\beta$ has to absorb the
# difference. The deeplearning.ai content loss is $\frac{1}{4 n_H n_W n_C}\sum(F-P)^2$, which is
# $2 n_H n_W n_C$ times smaller than Gatys's $\tfrac12 \sum (F - P)^2$ (its style loss is the same), so
# the same balance needs an $\alpha/\beta$ that is $2 n_H n_W n_C$ times larger. At `relu4_2` of a
# 256-pixel image that factor is $2 \cdot 32 \cdot 32 \cdot 512 \approx 10^6$, and it changes with the
# image size. (The PyTorch tutorial divides its Gram matrices by $C H W$ and averages instead of summing,
# which moves the style term by yet other factors; section 9 shows one more cause, the scale of the network's
# own activations.) The cell measures both conventions on the same images:
# the content losses differ by exactly $2 n_H n_W n_C$, the style losses not at all.

# %%
with torch.no_grad():
    x0 = stylize.initial_image(photo, painting, init="noise", seed=profile.seed)
    feats, P_feats, S_feats = extractor(x0), extractor(photo), extractor(painting)
P = {name: P_feats[name] for name in CONTENT_LAYERS}
A = {name: losses.gram_matrix(S_feats[name]) for name in STYLE_LAYERS}
_, C4, H4, W4 = P["relu4_2"].shape
print(f"relu4_2 for a {size}-pixel image: n_C={C4}, n_H={H4}, n_W={W4}, so 2 n_H n_W n_C = {2 * C4 * H4 * W4:,}")
for name, conv in losses.CONVENTIONS.items():
    L_c = losses.content_loss(feats["relu4_2"], P["relu4_2"], convention=name).item()
    L_s = losses.style_loss(feats, A, convention=name).item()
    print(f"{name:16s} alpha/beta = {conv.alpha / conv.beta:<8.3g} L_content = {L_c:<10.4g} L_style = {L_s:<10.4g} "
          f"alpha L_c : beta L_s = {conv.alpha * L_c / (conv.beta * L_s):.3g}")
L_c = {name: losses.content_loss(feats["relu4_2"], P["relu4_2"], convention=name).item() for name in losses.CONVENTIONS}
print(f"Gatys's content loss / deeplearning.ai's = {L_c['gatys'] / L_c['deeplearning_ai']:,.0f}")
dlai = losses.CONVENTIONS["deeplearning_ai"]
print(f"deeplearning.ai's alpha/beta = {dlai.alpha / dlai.beta:g} is Gatys's alpha/beta = "
      f"{dlai.alpha / dlai.beta / (2 * C4 * H4 * W4):.2g} at this size: the same balance in other units.")

# %% [markdown]
# ## 5 · The gradients, by hand
#
# The optimiser needs $\partial \mathcal{L} / \partial \vec x$. Autograd computes it, but the paper gives the
# derivatives of the losses with respect to a layer's activations in closed form, and they explain what the
# optimisation does. For the content loss,
#
# $$\frac{\partial \mathcal{L}_{content}}{\partial F^l_{ij}} = \begin{cases} \left(F^l - P^l\right)_{ij} & F^l_{ij} > 0 \\ 0 & F^l_{ij} < 0. \end{cases}$$
#
# For the style loss, write $E_l = c \sum_{ij} (G_{ij} - A_{ij})^2$ with $c = 1/(4N_l^2M_l^2)$. Then
# $\partial E_l / \partial G = 2c\,(G - A)$, and since $G = F F^\top$, a change $dF$ changes $G$ by
# $dF\,F^\top + F\,dF^\top$; with $G - A$ symmetric both terms contribute the same, so
#
# $$\frac{\partial E_l}{\partial F^l} = 4c\,(G^l - A^l)\,F^l = \frac{1}{N_l^2 M_l^2} \left(G^l - A^l\right) F^l
# \quad \text{where } F^l_{ij} > 0, \text{ and 0 elsewhere.}$$
#
# The "where $F > 0$" is the ReLU's derivative: the paper's activations are rectified, and these are the
# gradients with respect to the *pre-activation*, which is what the Caffe code back-propagated from each
# layer. The matrix $(G - A)$ tells every filter how much more or less it should co-occur with each other
# filter, and multiplying by $F$ turns that into a change at every position where the filters are active.
#
# ### Exercise 6 · `style_layer_gradient`, checked against autograd
#
# **Task.** Write `style_layer_gradient(F, A_gram, *, convention="gatys", mask=True)`: given rectified
# activations `F` (N, C, H, W) and the painting's Gram matrices `A_gram` (N or 1, C, C), return the gradient
# of $E_l$ above, a tensor of the shape of `F`.
#
# Reshape `F` to (N, C, M), compute $G$ with a batched product (not with `losses.gram_matrix`, whose
# backward pass is what we check), then $4c\,(G - A)\,F$ with
# `c = losses.get_convention(convention).style_factor(C, M)`, and reshape back. With `mask=True`, set the
# gradient to 0 where $F \le 0$ (`torch.where`); with `mask=False`, return the gradient with respect to $F$
# itself. The check compares it with autograd through a real ReLU.

# %% [solution] id=style_layer_gradient
def style_layer_gradient(F, A_gram, *, convention="gatys", mask=True):
    r"""The analytic gradient of :func:`style_layer_loss`, eq. (6): :math:`\frac{1}{N_l^2 M_l^2} (G - A) F` where :math:`F > 0`.

    As in the Caffe-era code: ``c * (G - A) @ F * (F > 0)`` with :math:`c = 1/(N_l^2 M_l^2)`.

    Args:
        F: rectified activations of the generated images, (N, C, H, W).
        A_gram: the style images' Gram matrices, (N or 1, C, C), symmetric.
        convention: ``"gatys"`` or ``"deeplearning_ai"`` (the same for this part).
        mask: ``True``: the gradient with respect to the pre-activation (zero where :math:`F \le 0`), as in
            the paper; ``False``: the gradient with respect to :math:`F` itself.

    Returns:
        A tensor of shape (N, C, H, W).
    """
    ### BEGIN SOLUTION
    N, C, H, W = F.shape
    F_flat = F.reshape(N, C, H * W)  # (N, C, M)
    G = F_flat @ F_flat.transpose(1, 2)  # (N, C, C)
    c = losses.get_convention(convention).style_factor(C, H * W)
    grad = (4 * c * (G - A_gram) @ F_flat).reshape(N, C, H, W)
    return torch.where(F > 0, grad, 0.0) if mask else grad
    ### END SOLUTION

# %% [check] id=check_style_layer_gradient points=3
with checks.no_tf32():
    g = torch.Generator().manual_seed(5)
    Z = torch.randn(2, 4, 3, 5, generator=g, dtype=torch.float64, requires_grad=True)  # pre-activation
    A_ = losses.gram_matrix(torch.rand(1, 4, 3, 5, generator=g, dtype=torch.float64))
    losses.style_layer_loss(torch.relu(Z), A_).backward()  # autograd: dE/dZ through the ReLU
    F_ = torch.relu(Z).detach()
    result = style_layer_gradient(F_, A_)
    checks.check_shape(result, F_.shape, name="style_layer_gradient(F, A_gram)")
    checks.check_close(result, Z.grad, name="style_layer_gradient(F, A_gram) versus autograd through a ReLU",
                       rtol=1e-8, atol=1e-12)
    checks.check_close(style_layer_gradient(F_, A_, mask=False), losses.style_layer_gradient(F_, A_, mask=False),
                       name="style_layer_gradient(F, A_gram, mask=False)", rtol=1e-8, atol=1e-12)
checks.passed("style_layer_gradient")
### BEGIN HIDDEN TESTS
with checks.no_tf32():
    g = torch.Generator().manual_seed(46)
    for shape in [(1, 3, 4, 4), (3, 6, 2, 7)]:
        F_ = torch.rand(shape, generator=g, dtype=torch.float64, requires_grad=True)  # positive: mask is all ones
        A_ = losses.gram_matrix(torch.rand(1, shape[1], 5, 5, generator=g, dtype=torch.float64))
        for conv in ("gatys", "deeplearning_ai"):
            grad, = torch.autograd.grad(losses.style_layer_loss(F_, A_, convention=conv), F_)
            checks.check_close(style_layer_gradient(F_.detach(), A_, convention=conv, mask=False), grad, rtol=1e-8,
                               atol=1e-14, name=f"style_layer_gradient on shape {shape}, {conv}")
    # central finite differences of the loss along a random direction
    F_ = torch.rand(1, 3, 3, 3, generator=g, dtype=torch.float64)
    A_ = losses.gram_matrix(torch.rand(1, 3, 3, 3, generator=g, dtype=torch.float64))
    v = torch.randn(F_.shape, generator=g, dtype=torch.float64)
    eps = 1e-6
    fd = (losses.style_layer_loss(F_ + eps * v, A_) - losses.style_layer_loss(F_ - eps * v, A_)) / (2 * eps)
    checks.check_close((style_layer_gradient(F_, A_, mask=False) * v).sum(), fd, rtol=1e-5,
                       name="style_layer_gradient versus finite differences")
    checks.check_close(style_layer_gradient(F_, losses.gram_matrix(F_)), torch.zeros_like(F_), atol=1e-14,
                       name="style_layer_gradient at the target (should be zero)")
### END HIDDEN TESTS

# %% [markdown]
# The library's `losses.content_gradient` is the content counterpart. Here both are checked on the real
# network's `relu3_1` features, against autograd through VGG's own ReLU: the closed forms are exactly what
# back-propagation computes.

# %%
with torch.no_grad():
    pre = vgg.VGGFeatures(["conv3_1"], backbone=paper_backbone, pool="avg").to(dev)(x0)["conv3_1"]  # before relu3_1
pre.requires_grad_(True)
F_x = torch.relu(pre)
A3 = losses.gram_matrix(S_feats["relu3_1"])
P3 = P_feats["relu3_1"]
(losses.style_layer_loss(F_x, A3) + losses.content_loss(F_x, P3)).backward()
by_hand = losses.style_layer_gradient(F_x.detach(), A3) + losses.content_gradient(F_x.detach(), P3)
print(f"largest |autograd - closed form| / largest |gradient|: "
      f"{((pre.grad - by_hand).abs().max() / pre.grad.abs().max()).item():.2g}")

# %% [markdown]
# ## 6 · Total variation
#
# Optimised pixels pick up high-frequency noise that the network barely sees. A common remedy (Mahendran &
# Vedaldi, 2015; Johnson et al., 2016) adds the **total variation** of the image, the summed squared
# (`"l2"`) or absolute (`"l1"`) differences between neighbouring pixels:
#
# $$\mathrm{TV}_2(x) = \sum_{c,i,j} \left(x_{c,i+1,j} - x_{c,i,j}\right)^2 + \left(x_{c,i,j+1} - x_{c,i,j}\right)^2 .$$
#
# ### Exercise 7 · `total_variation`
#
# **Task.** Write `total_variation(x, *, kind="l2")`: given images `x` (N, C, H, W), return their total
# variation as a 0-dim tensor, summed over everything, with squared (`kind="l2"`) or absolute (`kind="l1"`)
# differences; any other `kind` raises a `ValueError`. Slicing gives
# the differences without loops: `x[:, :, 1:, :] - x[:, :, :-1, :]` is (N, C, H-1, W).

# %% [solution] id=total_variation
def total_variation(x, *, kind="l2"):
    r"""The total variation of images: squared (``"l2"``) or absolute (``"l1"``) neighbour differences.

    :math:`\mathrm{TV}_2(x) = \sum (x_{i+1,j} - x_{i,j})^2 + (x_{i,j+1} - x_{i,j})^2` and
    :math:`\mathrm{TV}_1(x) = \sum |x_{i+1,j} - x_{i,j}| + |x_{i,j+1} - x_{i,j}|`, over all channels and images.

    Args:
        x: images of shape (N, C, H, W).
        kind: ``"l2"`` (smooth; Johnson et al.) or ``"l1"`` (keeps edges).

    Returns:
        A 0-dim tensor.
    """
    ### BEGIN SOLUTION
    dh = x[:, :, 1:, :] - x[:, :, :-1, :]  # (N, C, H-1, W)
    dw = x[:, :, :, 1:] - x[:, :, :, :-1]  # (N, C, H, W-1)
    if kind == "l2":
        return (dh**2).sum() + (dw**2).sum()
    if kind == "l1":
        return dh.abs().sum() + dw.abs().sum()
    raise ValueError(f"kind must be 'l2' or 'l1', got {kind!r}")
    ### END SOLUTION

# %% [check] id=check_total_variation points=2
x_ = torch.tensor([[[[0.0, 1.0], [0.0, 3.0]]]])
checks.check_close(total_variation(x_), 14.0, name="total_variation([[0, 1], [0, 3]])")
checks.check_close(total_variation(x_, kind="l1"), 6.0, name="total_variation([[0, 1], [0, 3]], kind='l1')")
x_ = torch.rand(2, 3, 5, 4, generator=torch.Generator().manual_seed(6))
for kind in ("l2", "l1"):
    checks.check_close(total_variation(x_, kind=kind), losses.total_variation(x_, kind=kind), rtol=1e-5,
                       name=f"total_variation(x, kind={kind!r}) for x of shape (2, 3, 5, 4)")
    x_grad = x_.clone().requires_grad_(True)
    checks.check_grad(total_variation(x_grad, kind=kind), losses.total_variation(x_grad, kind=kind), [x_grad],
                      name=f"total_variation(x, kind={kind!r})", rtol=1e-4, atol=1e-6)
checks.passed("total_variation")
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(47)
for shape in [(1, 1, 1, 5), (3, 2, 6, 1), (2, 3, 7, 9)]:
    x_ = torch.randn(shape, generator=g, dtype=torch.float64)
    for kind in ("l2", "l1"):
        checks.check_close(total_variation(x_, kind=kind), losses.total_variation(x_, kind=kind), rtol=1e-10,
                           name=f"total_variation on shape {shape}, {kind}")
        checks.check_close(total_variation(x_ + 3.0, kind=kind), total_variation(x_, kind=kind), rtol=1e-10,
                           name=f"total_variation is unchanged by adding a constant ({kind})")
    checks.check_close(total_variation(torch.full(shape, 0.7, dtype=torch.float64)), 0.0, atol=1e-12,
                       name=f"total_variation of a constant image of shape {shape}")
### END HIDDEN TESTS

# %% [markdown]
# ## 7 · Optimising the image
#
# Everything is in place. The targets $P^l$ and $A^l$ are computed once; then each step evaluates the total
# loss of the current image, back-propagates to the **pixels** and moves them. The pixels are the
# optimiser's only parameter: `x = x0.clone().requires_grad_(True)`, `torch.optim.Adam([x], lr=...)`.
#
# One step has four parts:
#
# 1. clear the gradient left by the previous step (`optimizer.zero_grad()`): torch *adds* new gradients to
#    `x.grad`, so without this every step would also push along all the old gradients;
# 2. evaluate the objective, here a function `objective(x)` that returns the `losses.LossParts` of the image;
# 3. back-propagate its `total` to the pixels (`.backward()`);
# 4. let the optimiser move `x` (`optimizer.step(...)`), then, if asked, clip the pixels back into $[0, 1]$
#    (`x.clamp_(0, 1)` inside `torch.no_grad()`): a **projected** gradient step that keeps a valid image.
#
# The paper's optimiser, L-BFGS, complicates step 4: it may need to evaluate the loss several times within one
# step (to try a step length), so torch's optimisers take parts 1–3 as a **closure**, a small function
# without arguments that does them and returns the loss, and call it as often as they need:
# `optimizer.step(closure)`. Adam calls it once. Write the step so that it works for both, and return the
# `LossParts` of the last evaluation with every tensor detached (`t.detach()`), so that the caller can log
# them without keeping the graph alive. For L-BFGS the caller passes `clip=False`: moving the pixels behind its
# back would spoil the curvature it has estimated from past steps.
#
# ### Exercise 8 · `optimisation_step`
#
# **Task.** Write `optimisation_step(x, optimizer, objective, *, clip=True)`: given the image `x` (a leaf
# tensor that requires gradients, the optimiser's only parameter), a torch optimiser over `[x]` and an
# objective (a function from the image to its `LossParts`), take one optimiser step, which moves `x` in
# place, and return the `LossParts` of the last evaluation, every tensor detached.

# %% [solution] id=optimisation_step
def optimisation_step(x, optimizer, objective, *, clip=True):
    r"""Take one optimiser step on the pixels: evaluate the loss, back-propagate to :math:`\vec x`, move it.

    Args:
        x: the image, (N, 3, H, W), a leaf tensor with ``requires_grad``, the optimiser's only parameter;
            updated in place, as torch optimisers update their parameters.
        optimizer: a torch optimiser over ``[x]`` (SGD, Adam, L-BFGS).
        objective: a function from the image to its ``losses.LossParts``.
        clip: clamp the pixels to [0, 1] after the step.

    Returns:
        The ``losses.LossParts`` of the last evaluation in this step, every tensor detached.
    """
    ### BEGIN SOLUTION
    last = []

    def closure():
        optimizer.zero_grad()
        parts = objective(x)
        parts.total.backward()
        last.append(parts)
        return parts.total

    optimizer.step(closure)
    if clip:
        with torch.no_grad():
            x.clamp_(0, 1)
    parts = last[-1]
    return losses.LossParts(parts.content.detach(), parts.style.detach(), parts.tv.detach(), parts.total.detach())
    ### END SOLUTION

# %% [check] id=check_optimisation_step points=3
def pull_towards(target):
    """An objective with a known gradient: L = sum((x - target)^2), so dL/dx = 2 (x - target)."""
    def objective(x):
        total = ((x - target) ** 2).sum()
        return losses.LossParts(content=total, style=0 * total, tv=0 * total, total=total)
    return objective


with checks.no_tf32():
    g = torch.Generator().manual_seed(6)
    start_, target_ = torch.rand(1, 3, 4, 5, generator=g, dtype=torch.float64), 3 * torch.rand(1, 3, 4, 5, generator=g, dtype=torch.float64) - 1
    x_ = start_.clone().requires_grad_(True)
    sgd = torch.optim.SGD([x_], lr=0.2)
    parts = optimisation_step(x_, sgd, pull_towards(target_))
    checks.check_type(parts, losses.LossParts, name="optimisation_step(...)")
    checks.check_close(parts.total, ((start_ - target_) ** 2).sum(), rtol=1e-10,
                       name="the returned total (the loss of the image before the step)")
    checks.check_true(not parts.total.requires_grad, "the returned total still requires grad: return parts.total.detach()")
    x1_ = (start_ - 0.2 * 2 * (start_ - target_)).clamp(0, 1)
    checks.check_close(x_.detach(), x1_, rtol=1e-10, atol=1e-12,
                       name="x after one SGD step, x - lr * dL/dx clipped to [0, 1]")
    optimisation_step(x_, sgd, pull_towards(target_))
    checks.check_close(x_.detach(), (x1_ - 0.2 * 2 * (x1_ - target_)).clamp(0, 1), rtol=1e-10, atol=1e-12,
                       name="x after a second SGD step (is the old gradient cleared?)")
    # L-BFGS evaluates the loss through the closure; torch's own loop is the reference.
    x_, y_ = start_.clone().requires_grad_(True), start_.clone().requires_grad_(True)
    mine, ref = torch.optim.LBFGS([x_], max_iter=1), torch.optim.LBFGS([y_], max_iter=1)

    def reference_closure():
        ref.zero_grad()
        loss = ((y_ - target_) ** 2).sum()
        loss.backward()
        return loss

    for _ in range(2):
        optimisation_step(x_, mine, pull_towards(target_), clip=False)
        ref.step(reference_closure)
    checks.check_close(x_.detach(), y_.detach(), rtol=1e-10, atol=1e-12,
                       name="x after two L-BFGS steps (optimizer.step(closure)), clip=False")
checks.passed("optimisation_step")
### BEGIN HIDDEN TESTS
with checks.no_tf32():
    g = torch.Generator().manual_seed(47)
    for shape in [(2, 3, 3, 3), (1, 3, 6, 2)]:
        start_ = 0.25 + 0.5 * torch.rand(shape, generator=g, dtype=torch.float64)
        target_ = 2 * torch.rand(shape, generator=g, dtype=torch.float64) - 0.5
        # Adam's first step moves every pixel by lr against the sign of its gradient
        x_ = start_.clone().requires_grad_(True)
        optimisation_step(x_, torch.optim.Adam([x_], lr=0.01, eps=1e-12), pull_towards(target_))
        checks.check_close(x_.detach(), start_ - 0.01 * torch.sign(start_ - target_), rtol=0, atol=1e-9,
                           name=f"x after one Adam step on shape {shape}")
        # without clipping the pixels may leave [0, 1]
        x_ = start_.clone().requires_grad_(True)
        optimisation_step(x_, torch.optim.SGD([x_], lr=0.6), pull_towards(target_ + 5), clip=False)
        checks.check_close(x_.detach(), start_ - 0.6 * 2 * (start_ - target_ - 5), rtol=1e-10, atol=1e-12,
                           name=f"x after an SGD step with clip=False on shape {shape}")
        # the parts come back detached, each one
        x_ = start_.clone().requires_grad_(True)
        parts = optimisation_step(x_, torch.optim.SGD([x_], lr=0.1), pull_towards(target_))
        checks.check_true(not any(t.requires_grad for t in (parts.content, parts.style, parts.tv, parts.total)),
                          "every tensor of the returned LossParts should be detached")
        # three L-BFGS steps equal the library's
        x_, y_ = start_.clone().requires_grad_(True), start_.clone().requires_grad_(True)
        mine, ref = torch.optim.LBFGS([x_], max_iter=1, history_size=5), torch.optim.LBFGS([y_], max_iter=1, history_size=5)
        for _ in range(3):
            optimisation_step(x_, mine, pull_towards(target_), clip=False)
            optimise.optimisation_step(y_, ref, pull_towards(target_), clip=False)
        checks.check_close(x_.detach(), y_.detach(), rtol=1e-10, atol=1e-12,
                           name=f"x after three L-BFGS steps on shape {shape}")
### END HIDDEN TESTS

# %% [markdown]
# Here are two Adam steps on the real losses, starting from noise: the loss goes down, and the pixels stay in
# $[0, 1]$.

# %%
x = x0.clone().requires_grad_(True)  # the noise image of section 4; the pixels are the parameters
optimizer = torch.optim.Adam([x], lr=0.02)


objective = make_objective(extractor, P, A, alpha=1.0, beta=1e3)  # yours, with the targets of section 4

for step in range(1, 3):
    before = x.detach().clone()
    parts = optimisation_step(x, optimizer, objective)
    print(f"step {step}: total loss before it {parts.total.item():.5g} (content {parts.content.item():.4g}, "
          f"style {parts.style.item():.4g}); largest pixel change {(x.detach() - before).abs().max().item():.3f}; "
          f"pixels in [{x.min().item():.2f}, {x.max().item():.2f}]")
with torch.no_grad():
    print(f"after the steps: total loss {objective(x).total.item():.5g}")

# %% [markdown]
# `stylize.stylize` runs that loop with the paper's settings (`stylize.StyleConfig`), a progress bar, and
# checks for a diverging loss. The paper's optimiser is **L-BFGS**, a quasi-Newton method that estimates the
# curvature from the last few gradients and takes much better steps than plain gradient descent on this
# smooth, badly scaled problem. We start from the photo, which converges fastest.

# %%
config = stylize.StyleConfig(size=size, steps=steps, beta=BETA, init="content", optimizer="lbfgs", seed=profile.seed)
result = stylize.stylize(photo, painting, config, extractor=extractor)
fig = stylize.plot_result(result, content=photo, styles=[painting])
plt.show()
plt.close(fig)
print(f"{result.steps} steps in {result.loop_seconds:.1f} s ({result.steps_per_second:.2f} steps/s) on {dev}; "
      f"pretrained={result.pretrained}")

# %% [markdown]
# ## 8 · The two limits: style alone, content alone
#
# Setting one weight to zero takes the method apart into the two experiments it was built from (the paper's
# figure 1 shows both; CS231n's style-transfer assignment runs both):
#
# * $\alpha = 0$, **style only: texture synthesis** (Gatys, Ecker & Bethge, 2015). From white noise, the
#   optimiser makes an image whose Gram matrices match the painting's at every style layer, and nothing else.
#   The painting's colours, strokes and motifs appear everywhere, with no trace of the photo's layout: nothing
#   asks for it.
# * $\beta = 0$, **content only: feature inversion** (Mahendran & Vedaldi, 2015; notebook 05). From white
#   noise, the optimiser makes an image whose `relu4_2` activations match the photo's. The arrangement of the
#   scene comes back, but not its exact colours and fine texture, which that layer does not record.
#
# Style transfer lives between the two: the content term fixes *where* things are, the style term decides
# *how* they look. Both runs start from the same noise, use L-BFGS, and are built from the library's versions
# of your `make_objective` and `optimisation_step`.

# %%
def from_noise(alpha, beta):
    """Optimise alpha L_content + beta L_style from white noise with L-BFGS; return the image in [0, 1]."""
    x = stylize.initial_image(photo, painting, init="noise", seed=profile.seed).requires_grad_(True)
    optimizer = optimise.make_optimizer("lbfgs", x, lr=1.0)
    objective = optimise.make_objective(extractor, P, A, alpha=alpha, beta=beta)
    for _ in range(steps):
        parts = optimise.optimisation_step(x, optimizer, objective, clip=False)  # L-BFGS: no clipping
    print(f"alpha = {alpha:g}, beta = {beta:g}, {steps} steps: content loss {parts.content.item():.4g}, "
          f"style loss {parts.style.item():.4g}")
    return x.detach().clamp(0, 1)


texture, inversion = from_noise(alpha=0.0, beta=1.0), from_noise(alpha=1.0, beta=0.0)
show_row([painting, texture, inversion, photo],
         ["style: mosaic", "α = 0: texture synthesis", "β = 0: inverted relu4_2", "content: chelsea"],
         "the two limits of style transfer, both from the same noise")

# %% [markdown]
# ## 9 · The paper's network: normalised VGG19 and average pooling
#
# Gatys et al. did not use VGG19 exactly as it was trained. They "used the feature space provided by a
# normalized version of the 16 convolutional and 5 pooling layers of the 19-layer VGG network", normalised "by
# scaling the weights such that the mean activation of each convolutional filter over images and positions is
# equal to one", and for image synthesis they replaced max pooling by average pooling, which "yields slightly
# more appealing results" (Gatys et al., 2016, §2). This notebook has used that network from the start:
# `vgg.normalise_backbone(backbone)` and `vgg.VGGFeatures(..., pool="avg")`.
#
# **Rescaling changes nothing for the network and everything for the losses.** ReLU is *positively
# homogeneous*: $\max(0, c z) = c \max(0, z)$ for $c > 0$. Divide filter $k$ of layer $l$ (its weights and
# its bias) by $m^l_k > 0$, its mean activation, and its rectified output is divided by $m^l_k$; multiply the
# weights with which layer $l+1$ reads channel $k$ by $m^l_k$, and layer $l+1$ computes exactly what it
# computed before. Pooling acts channel by channel, so it commutes with the factor. The network, as a
# function from images to classes, is unchanged; but the *activations* at every layer are now of size about 1.
# The losses see those activations: the content loss grows as their square, and a style layer's $E_l$ as their
# fourth power ($G$ multiplies two activations, and $E_l$ squares $G$). In the network as trained, the style
# layers' activations differ by orders of magnitude, so the "equal" weights $w_l = 1/5$ are far from equal,
# and the $\alpha/\beta$ that works depends on these scales. With every filter's mean at 1, each layer counts
# as the weights say, and $\alpha/\beta = 10^{-3}$ means what the paper meant.
#
# **Average pooling.** A 2 × 2 max pooling passes the gradient to one pixel of each window and nothing to the
# other three; an average pooling passes a quarter to each. Corrections to the image are then spread over
# whole windows, which gives smoother results. (Unlike the rescaling, this does change the network, but the
# trained filters still respond sensibly.)
#
# The cell measures, on the photo, each style layer's mean activation and its share of the style loss of the
# noise image of section 4, in the network as trained and in the paper's.

# %%
as_trained = vgg.VGGFeatures(CONTENT_LAYERS + STYLE_LAYERS, backbone=backbone).to(dev)  # max pooling, raw scale
with torch.no_grad():
    means, shares = {}, {}  # network -> one number per style layer
    for name, net in (("as trained", as_trained), ("paper", extractor)):
        f_photo, f_noise, f_paint = net(photo), net(x0), net(painting)
        E = torch.stack([losses.style_layer_loss(f_noise[n], losses.gram_matrix(f_paint[n])) for n in STYLE_LAYERS])
        means[name], shares[name] = [f_photo[n].mean().item() for n in STYLE_LAYERS], (E / E.sum()).tolist()
print(f"{'':8s} {'mean activation on the photo':>29s}   {'share of the style loss':>25s}")
print(f"{'layer':8s} {'as trained':>14s} {'paper':>14s}   {'as trained':>12s} {'paper':>12s}")
for k, layer in enumerate(STYLE_LAYERS):
    print(f"{layer:8s} {means['as trained'][k]:14.3g} {means['paper'][k]:14.3g}   "
          f"{shares['as trained'][k]:12.1%} {shares['paper'][k]:12.1%}")

# %% [markdown]
# The same short run with the same $\alpha/\beta$ on both networks. On the network as trained, the balance
# is a different one, and the layers with the largest activations dominate the style.

# %%
small_photo, small_painting = data.builtin_image("chelsea", size=small).to(dev), data.builtin_image("mosaic", size=small).to(dev)
compare = {name: stylize.stylize(small_photo, small_painting, stylize.StyleConfig(size=small, steps=small_steps, seed=profile.seed),
                                 extractor=net, show_progress=False).image
           for name, net in (("unnormalised, max pooling", as_trained), ("normalised, average pooling", extractor))}
show_row([small_photo, *compare.values()], ["photo", *compare], "one alpha/beta on two versions of VGG19")

# %% [markdown]
# ## 10 · What the choices change
#
# Each row below changes one setting of a short run at a smaller size, everything else fixed.
#
# **The balance $\beta/\alpha$.** A small $\beta/\alpha$ keeps the photo; a large one gives texture
# everywhere and lets the photo's layout dissolve.

# %%
def run(**changes):
    """A short run at the small size with one setting changed; returns the result image."""
    options = dict(size=small, steps=small_steps, beta=BETA, seed=profile.seed) | changes
    return stylize.stylize(small_photo, small_painting, stylize.StyleConfig(**options), extractor=extractor,
                           show_progress=False).image


ratios = [1e1, 1e3, 1e5]
show_row([run(beta=r) for r in ratios], [f"β/α = {r:.0e}" for r in ratios], "the style weight")

# %% [markdown]
# **The initial image.** The loss has many minima; where the optimisation starts decides which one it finds.
# From the photo (`content`) the layout is kept longest; from white noise (`noise`, the paper's choice) each
# seed gives a different picture; `mix` blends photo and noise (by default 40 % photo and 60 % noise).

# %%
inits = ["content", "noise", "mix"]
show_row([run(init=i) for i in inits], inits, "the initial image")

# %% [markdown]
# **The optimiser.** `lbfgs` is torch's L-BFGS; `lbfgsb` is scipy's L-BFGS-B, which also keeps every pixel
# inside $[0, 1]$ (the bound constraints of the Caffe-era code); `adam` is first order, needs a learning rate
# and many more steps, but its memory use is small and predictable.

# %%
optimisers = {"lbfgs": {}, "lbfgsb": {}, "adam": {"lr": 0.02}}
show_row([run(optimizer=name, **extra) for name, extra in optimisers.items()], list(optimisers), "the optimiser")

# %% [markdown]
# **The style layers.** Matching only `relu1_1` reproduces colours and the finest grain; adding deeper layers
# matches correlations over larger windows (a `relu5_1` neuron sees most of the image), so larger structures of
# the painting appear. The paper's figure 1 shows the same progression in its style reconstructions from growing
# subsets of layers.

# %%
layer_sets = {"relu1_1": STYLE_LAYERS[:1], "relu1_1 … relu3_1": STYLE_LAYERS[:3], "relu1_1 … relu5_1": STYLE_LAYERS}
show_row([run(style_layers=layers) for layers in layer_sets.values()], list(layer_sets), "the style layers")

# %% [markdown]
# **Total variation and colour.** A TV weight smooths away the high-frequency noise. Style transfer also
# copies the painting's colours; Gatys et al. (2016b) keep the photo's instead in one of two ways:
# `"luminance"` transfers style on brightness only and puts the photo's colours back (YIQ), `"match"`
# first recolours the painting to the photo's colour statistics (`nstlab.colour`).

# %%
with torch.no_grad():  # a TV weight that makes the TV term as large as the style term on the photo
    small_A = {k: losses.gram_matrix(v) for k, v in extractor(small_painting).items() if k in STYLE_LAYERS}
    tv_weight = 1e3 * losses.style_loss(extractor(small_photo), small_A).item() / losses.total_variation(small_photo).item()
variants = {"no TV": {}, "with TV": {"tv_weight": tv_weight}, "luminance only": {"preserve_colour": "luminance"},
            "colour match": {"preserve_colour": "match"}}
show_row([run(**extra) for extra in variants.values()], list(variants), "smoothness and colour preservation")

# %% [markdown]
# ## 11 · Lecture demo
#
# The panel below changes the style weight, the style layers and the initial image. On a CUDA GPU it runs a
# short optimisation each time a control changes; on a CPU that would take too long, so it shows images from
# a grid computed once in advance (`nstlab.widgets.style_panel.compute_grid()`, a few minutes, cached in your
# user cache folder, never in the repository). Until the grid exists, it says how to make it.

# %%
panel = style_panel()
display(panel)

# %% [markdown]
# ## Questions (graded by hand)
#
# Answer each in a few sentences, in the cell below it.
#
# **Question 1.** In section 2, shuffling the positions of a feature map left its Gram matrix unchanged.
# Explain why, from the formula for $G^l$, and why that is what we want from a description of *style*. What
# would go wrong if the style term matched the painting's activations $F$ themselves instead of their Gram
# matrices?

# %% [written] id=gram_ignores_position points=2
# $G^l_{ij} = \sum_k F^l_{ik} F^l_{jk}$ is a sum over the positions $k$. Shuffling the positions permutes the
# columns of $F^l$ and so only reorders the terms of that sum, which leaves every $G^l_{ij}$ the same. The
# Gram matrix records which features occur together and how strongly, over the whole image, but not where.
#
# That is what style is: the painting's colours, strokes and textures recur all over the canvas, wherever its
# objects are; the generated image should have them too, arranged according to the photo. Matching $F$ itself
# would be a content loss for the painting: it would ask for the painting's own layout (its objects at their
# positions), in direct conflict with the photo's content, and the result would be a blend of the two
# pictures rather than the photo painted in the painting's manner.

# %% [markdown]
# **Question 2.** Only the ratio $\alpha/\beta$ changes the result. Why? Give two reasons why an $\alpha/\beta$
# copied from another implementation can give a very different picture.

# %% [written] id=alpha_beta_units points=2
# Multiplying the whole loss by a constant $c > 0$ multiplies its gradient by $c$ and moves none of its minima;
# $\alpha L_c + \beta L_s = \beta (\frac{\alpha}{\beta} L_c + L_s)$, so only $\alpha/\beta$ decides which image is
# best (the optimisers used here are also nearly insensitive to the overall scale).
#
# Reasons (any two): (1) the losses are normalised differently: the deeplearning.ai content loss is
# $2 n_H n_W n_C$ times smaller than Gatys's $\tfrac12\sum$, about $10^6$ at `relu4_2` (section 4), so the same
# balance needs another $\alpha/\beta$; (2) the image size: the content loss grows with the number of
# positions, the style loss is normalised by $M_l^2$, so the balance shifts with the size; (3) the network:
# with unnormalised weights the activations, and so the content loss (square) and the style loss (fourth
# power), have other scales per layer (section 9); average or max pooling also changes them; (4) other
# layer weights $w_l$, another content layer, or Gram matrices divided by $C H W$.

# %% [markdown]
# **Question 3.** Describe what the two limits of section 8 produce and why: the style-only run from noise
# and the content-only run from `relu4_2`. Why does style transfer take its content from a deep layer rather
# than from `relu1_1`?

# %% [written] id=two_limits points=2
# With $\alpha = 0$ only the Gram matrices count: the result is a texture with the painting's colours, strokes
# and motifs spread over the whole image, without the photo's layout (or the painting's), because nothing in
# the loss refers to positions. With $\beta = 0$ the result is the image that `relu4_2` cannot tell from the
# photo: the layout, the outlines and the large shapes of the scene come back, but colours and fine texture
# are only approximate, because the deep layer records what is where, not the exact pixels.
#
# Content from a deep layer fixes the arrangement and leaves the rendering free, so the style term can change
# colours and textures without fighting the content term. Content from `relu1_1`, which records nearly every
# pixel, would pin the image to the photo: any change the style term asks for would raise the content loss
# strongly, and the result would look like the photo with a little noise.

# %% [markdown]
# ## Summary
#
# * Content is matched feature by feature at a deep layer: $\tfrac12 \sum (F - P)^2$.
# * Style is matched through Gram matrices $G = F F^\top$, which keep which features occur together and drop
#   where; each layer's term is normalised by $4 N_l^2 M_l^2$.
# * The objective is a function of the image alone, with the targets fixed. With $\alpha = 0$ it synthesises
#   the painting's texture, with $\beta = 0$ it inverts the photo's features; style transfer lies between.
# * Only $\alpha/\beta$ matters, and its value depends on the loss normalisation, the image size and the
#   network, which is why published values differ by factors of a million.
# * The paper's VGG19 is normalised (every filter's mean activation is 1) and average-pooled: the network
#   computes the same function, but the losses' scales, and so the meaning of $\alpha/\beta$ and $w_l$, change.
# * The gradients are $(F - P)$ and $\frac{1}{N_l^2 M_l^2}(G - A)F$ where the features are active, exactly what
#   autograd computes.
# * The pixels are the parameters: each step clears the old gradient, evaluates the loss in a closure,
#   back-propagates to the image and lets the optimiser move it, clipping to $[0, 1]$ for Adam.
# * Initial image, optimiser, style layers, total variation and colour preservation each change the picture.
#
# Notebook 07 trains a network to do this in one forward pass (Johnson et al., 2016).
