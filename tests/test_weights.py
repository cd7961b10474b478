"""Tests of nstlab.weights and `nstlab weights`: the real download path against a loopback server, checksums,
the offline error, importing, the untrained fallback. Nothing here touches the internet."""

from __future__ import annotations

import functools
import hashlib
import http.server
import socket
import threading
import time
from pathlib import Path

import pytest
import torch

from nstlab import weights
from nstlab.cli import main
from nstlab.weights import (
    WeightsSpec,
    WeightsUnavailable,
    download,
    import_weights,
    load_backbone,
    load_state_dict,
    status,
    untrained_backbone,
    weights_dir,
    weights_path,
    weights_spec,
)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    """An empty private cache folder; the network allowed only where a test serves it on loopback."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("NSTLAB_WEIGHTS_DIR", str(folder))
    monkeypatch.delenv("NSTLAB_OFFLINE", raising=False)
    return folder


def make_weights_file(folder: Path, state: dict[str, torch.Tensor], stem: str = "tiny") -> tuple[Path, WeightsSpec]:
    """Save ``state`` as torch.hub names files (``stem-<sha256 prefix>.pth``) and describe it with a spec."""
    folder.mkdir(parents=True, exist_ok=True)
    raw = folder / "raw.pth"
    torch.save(state, raw)
    prefix = hashlib.sha256(raw.read_bytes()).hexdigest()[:8]
    path = raw.rename(folder / f"{stem}-{prefix}.pth")
    return path, WeightsSpec("vgg19", path.as_uri(), path.name, prefix, path.stat().st_size)


@pytest.fixture
def tiny(tmp_path) -> tuple[Path, WeightsSpec]:
    return make_weights_file(tmp_path / "served", {"w": torch.arange(6.0).reshape(2, 3), "b": torch.ones(2)})


@pytest.fixture
def server(tmp_path):
    """A loopback HTTP server over tmp_path/served; yields its base address."""
    handler = functools.partial(type("Quiet", (http.server.SimpleHTTPRequestHandler,),
                                     {"log_message": lambda *a: None}), directory=str(tmp_path / "served"))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_weights_are_described_by_torchvisions_weights_api():
    from torchvision.models import VGG16_Weights, VGG19_Weights

    spec = weights_spec("vgg19")
    assert spec.url == VGG19_Weights.IMAGENET1K_V1.url and spec.filename == "vgg19-dcbb9e9d.pth"
    assert spec.sha256_prefix == "dcbb9e9d" and spec.size_bytes == 574_673_361
    assert weights_spec("vgg16").url == VGG16_Weights.IMAGENET1K_V1.url
    for s in (weights_spec("vgg16"), spec):  # the exact sizes agree with torchvision's rounded megabytes
        meta = {"vgg16": VGG16_Weights, "vgg19": VGG19_Weights}[s.arch].IMAGENET1K_V1.meta["_file_size"]
        assert s.size_bytes / 2**20 == pytest.approx(meta, abs=1e-3)
    with pytest.raises(ValueError, match="unknown architecture 'resnet50'"):
        weights_spec("resnet50")


def test_the_cache_is_torchs_unless_nstlab_weights_dir_says_otherwise(cache, tmp_path, monkeypatch):
    assert weights_dir() == cache and weights_path("vgg19") == cache / "vgg19-dcbb9e9d.pth"
    monkeypatch.delenv("NSTLAB_WEIGHTS_DIR")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert weights_dir() == Path(torch.hub.get_dir()) / "checkpoints" == tmp_path / "torch" / "hub" / "checkpoints"


def test_status_lists_every_architecture_and_whether_its_file_is_present(cache):
    before = status()
    assert [s.arch for s in before] == ["vgg16", "vgg19"] and not any(s.present for s in before)
    assert before[1].path == cache / "vgg19-dcbb9e9d.pth" and before[1].sha256_prefix == "dcbb9e9d"
    cache.mkdir()
    (cache / "vgg19-dcbb9e9d.pth").write_bytes(b"x")
    assert [s.present for s in status()] == [False, True]


def test_download_from_a_loopback_server_verifies_caches_and_announces_the_file(tiny, server, cache, capsys):
    path, spec = tiny
    spec = WeightsSpec(spec.arch, f"{server}/{spec.filename}", spec.filename, spec.sha256_prefix, spec.size_bytes)
    target = download(spec, progress=False)
    assert target == cache / spec.filename and target.read_bytes() == path.read_bytes()
    assert f"nstlab: downloading vgg19 weights {spec.filename}" in capsys.readouterr().out
    assert list(cache.iterdir()) == [target]  # no partial file left behind
    state = load_state_dict(spec=spec)
    torch.testing.assert_close(state["w"], torch.arange(6.0).reshape(2, 3))


def test_load_state_dict_downloads_a_missing_file_through_a_file_url(tiny, cache):
    _, spec = tiny
    state = load_state_dict(spec=spec, progress=False)
    assert (cache / spec.filename).is_file() and set(state) == {"w", "b"}


def test_a_download_with_the_wrong_checksum_is_refused_and_leaves_nothing(tiny, server, cache):
    _, spec = tiny
    wrong = WeightsSpec(spec.arch, f"{server}/{spec.filename}", spec.filename, "00000000", spec.size_bytes)
    with pytest.raises(WeightsUnavailable, match="invalid hash value.*Remedies"):
        download(wrong, progress=False)
    assert not cache.exists() or not any(cache.iterdir())


def test_a_missing_file_on_the_server_gives_the_remedies(tiny, server):
    _, spec = tiny
    gone = WeightsSpec(spec.arch, f"{server}/nothing-00000000.pth", "nothing-00000000.pth", "00000000", 10)
    with pytest.raises(WeightsUnavailable, match="404.*nstlab weights import FILE"):
        download(gone, progress=False)


def assert_names_file_size_checksum_and_remedies(message: str, spec: WeightsSpec, folder: Path) -> None:
    for part in (spec.filename, f"{spec.size_bytes:,} bytes", spec.sha256_prefix, "nstlab weights import FILE",
                 str(folder), "NSTLAB_WEIGHTS_DIR", "TORCH_HOME", "fallback='untrained'"):
        assert part in message, part


def test_offline_the_error_comes_within_seconds_and_names_file_size_checksum_and_remedies(cache):
    spec = weights_spec("vgg19")
    unreachable = WeightsSpec("vgg19", f"http://127.0.0.1:{closed_port()}/{spec.filename}", spec.filename,
                              spec.sha256_prefix, spec.size_bytes)
    start = time.monotonic()
    with pytest.raises(WeightsUnavailable, match="offline") as err:
        load_state_dict(spec=unreachable)
    assert time.monotonic() - start < 5
    assert_names_file_size_checksum_and_remedies(str(err.value), spec, cache)


def test_a_server_that_never_answers_is_given_up_on_after_the_timeout(monkeypatch):
    """Name lookups and connects that hang (a captive network) must not hang the student's notebook."""
    def hangs(*args, **kwargs):  # then times out, as a real connect would (not a None to close in a later test)
        time.sleep(30)
        raise TimeoutError("timed out")

    monkeypatch.setattr(socket, "create_connection", hangs)
    spec = weights_spec("vgg16")  # before the clock: the first call imports torchvision (2-4 s here)
    start = time.monotonic()
    with pytest.raises(WeightsUnavailable, match="no answer from .* within 0.5 s"):
        download(spec, timeout=0.5)
    assert time.monotonic() - start < 3


def test_behind_a_proxy_the_quick_check_asks_the_proxy(monkeypatch):
    port = closed_port()
    for name in ("http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{port}")
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    spec = WeightsSpec("vgg19", "http://weights.example/vgg19-00000000.pth", "vgg19-00000000.pth", "00000000", 1)
    with pytest.raises(WeightsUnavailable, match=f"cannot reach 127.0.0.1:{port}"):
        download(spec)


def test_an_unwritable_cache_folder_is_reported_with_the_variable_to_set(tiny, tmp_path, monkeypatch):
    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("NSTLAB_WEIGHTS_DIR", str(blocker / "cache"))
    with pytest.raises(WeightsUnavailable, match="cannot create the cache folder .* set NSTLAB_WEIGHTS_DIR"):
        download(tiny[1])


def test_nstlab_offline_skips_the_network_and_explains(cache, monkeypatch):
    monkeypatch.setenv("NSTLAB_OFFLINE", "1")
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: pytest.fail("touched the network"))
    with pytest.raises(WeightsUnavailable, match="NSTLAB_OFFLINE is set") as err:
        load_state_dict("vgg16")
    assert_names_file_size_checksum_and_remedies(str(err.value), weights_spec("vgg16"), cache)
    with pytest.raises(WeightsUnavailable, match="is not in"):
        load_state_dict("vgg16", download_missing=False)


def test_a_corrupt_cached_file_is_refused_with_its_checksum_and_remedy(cache):
    cache.mkdir()
    (cache / "vgg19-dcbb9e9d.pth").write_bytes(b"truncated")
    with pytest.raises(WeightsUnavailable, match=r"9 bytes, SHA-256 [0-9a-f]{64}\) is not vgg19.*delete it"):
        load_state_dict("vgg19")


def test_an_unreadable_file_with_the_right_checksum_is_reported(tmp_path, cache):
    path = tmp_path / "served" / "junk.bin"
    path.parent.mkdir()
    path.write_bytes(b"not a torch file")
    prefix = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
    spec = WeightsSpec("vgg19", path.as_uri(), f"junk-{prefix}.pth", prefix, 16)
    import_weights(path, spec=spec)
    with pytest.raises(WeightsUnavailable, match="could not be read as a state dict"):
        load_state_dict(spec=spec)


def test_import_verifies_the_checksum_and_copies_into_the_cache(tiny, tmp_path, cache):
    path, spec = tiny
    renamed = tmp_path / "downloaded from a browser.pth"
    renamed.write_bytes(path.read_bytes())
    target = import_weights(renamed, spec=spec)
    assert target == cache / spec.filename and target.read_bytes() == path.read_bytes()
    assert import_weights(target, spec=spec) == target  # importing the cached file itself is a no-op
    renamed.write_bytes(b"something else")
    with pytest.raises(WeightsUnavailable, match=r"downloaded from a browser.pth \(14 bytes, SHA-256 [0-9a-f]{64}\)"):
        import_weights(renamed, spec=spec)
    with pytest.raises(WeightsUnavailable, match="matches none of vgg16-397923af.pth .* vgg19-dcbb9e9d.pth"):
        import_weights(renamed)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        import_weights(tmp_path / "nowhere.pth")


def test_load_backbone_returns_pretrained_features_from_a_verified_file(tmp_path, cache):
    """A locally made VGG16 state dict (features only) plays torchvision's file; the classifier is not needed."""
    made = untrained_backbone("vgg16", seed=7)
    state = {f"features.{k}": v for k, v in made.features.state_dict().items()}
    _, spec = make_weights_file(tmp_path / "served", state, stem="vgg16")
    spec = WeightsSpec("vgg16", spec.url, spec.filename, spec.sha256_prefix, spec.size_bytes)
    backbone = load_backbone("vgg16", spec=spec)
    assert backbone.pretrained is True and spec.filename in backbone.note and backbone.arch == "vgg16"
    torch.testing.assert_close(backbone.features.state_dict(), made.features.state_dict())
    assert not backbone.features.training and not any(p.requires_grad for p in backbone.features.parameters())


def test_load_backbone_normalised_rescales_pretrained_weights_per_filter_and_caches_the_means(tmp_path, cache):
    """normalised=True on a pretrained file gives the paper's per-filter normalisation, its means cached beside
    the weights; on the untrained fallback, one factor per layer."""
    from nstlab.vgg import VGGFeatures, normalisation_means

    made = untrained_backbone("vgg16", seed=7)
    _, spec = make_weights_file(tmp_path / "served", {f"features.{k}": v for k, v in made.features.state_dict().items()},
                                stem="vgg16")
    spec = WeightsSpec("vgg16", spec.url, spec.filename, spec.sha256_prefix, spec.size_bytes)
    backbone = load_backbone("vgg16", spec=spec, normalised=True)
    assert backbone.pretrained and backbone.normalised and "per filter" in backbone.note
    assert len(list(cache.glob("vgg16-activation-means-*.pt"))) == 1
    means = normalisation_means(made)
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    got = VGGFeatures(["relu1_2"], backbone=backbone)(x)["relu1_2"]
    raw = VGGFeatures(["relu1_2"], backbone=made)(x)["relu1_2"]
    torch.testing.assert_close(got * means[1].view(1, -1, 1, 1), raw, rtol=1e-4, atol=1e-6)
    fallback = load_backbone("vgg16", fallback="untrained", seed=7, spec=WeightsSpec("vgg16", "file:///nonexistent/x.pth",
                                                                                     "x.pth", "0000", 0), normalised=True)
    assert not fallback.pretrained and fallback.normalised and "per layer" in fallback.note


def test_load_backbone_falls_back_to_an_untrained_network_only_when_asked(monkeypatch):
    monkeypatch.setenv("NSTLAB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailable):
        load_backbone("vgg19")
    backbone = load_backbone("vgg19", fallback="untrained", seed=3)
    assert backbone.pretrained is False and backbone.note.startswith("UNTRAINED VGG19 (random weights, seed 3)")
    with pytest.raises(ValueError, match="fallback must be None or 'untrained'"):
        load_backbone("vgg19", fallback="random")


def test_untrained_backbones_are_seeded_frozen_and_leave_the_global_rng_alone():
    state = torch.random.get_rng_state()
    a, b, c = untrained_backbone("vgg16", seed=1), untrained_backbone("vgg16", seed=1), untrained_backbone("vgg16", seed=2)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a.features[0].weight, b.features[0].weight)
    assert not torch.equal(a.features[0].weight, c.features[0].weight)
    assert not any(p.requires_grad for p in a.features.parameters()) and not a.features.training
    # torchvision's state dict keys, so that a pretrained file loads into it.
    from torchvision.models.vgg import VGG

    assert set(a.features.state_dict()) == {k.removeprefix("features.") for k in
                                            VGG(a.features, init_weights=False).state_dict() if k.startswith("features.")}


# ---------------------------------------------------------------- the command line

def test_cli_status_lists_the_files_and_fails_while_some_are_missing(cache, capsys):
    assert main(["weights", "status"]) == 1
    out = capsys.readouterr().out
    assert str(cache) in out and "vgg19-dcbb9e9d.pth" in out and "MISSING" in out and "574,673,361" in out
    assert "nstlab weights import FILE" in out


def test_cli_path_prints_the_cache_folder_or_a_file(cache, capsys):
    assert main(["weights", "path"]) == 0 and capsys.readouterr().out.strip() == str(cache)
    assert main(["weights", "path", "vgg16"]) == 0
    assert capsys.readouterr().out.strip() == str(cache / "vgg16-397923af.pth")


def test_cli_import_copies_a_verified_file_and_status_then_shows_it(tiny, cache, capsys, monkeypatch):
    path, spec = tiny
    real = weights.weights_spec
    monkeypatch.setattr(weights, "weights_spec", lambda arch: spec if arch == "vgg19" else real(arch))
    assert main(["weights", "import", str(path)]) == 0
    assert (cache / spec.filename).read_bytes() == path.read_bytes()
    assert "verified and cached" in capsys.readouterr().out
    main(["weights", "status"])
    assert "vgg19: present" in capsys.readouterr().out


def test_cli_import_of_a_wrong_file_fails_with_one_line_naming_it(tmp_path, capsys):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"nope")
    assert main(["weights", "import", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.pth (4 bytes, SHA-256" in err
    assert main(["weights", "import", str(tmp_path / "missing.pth")]) == 2


def test_cli_download_offline_fails_fast_with_the_remedies(monkeypatch, capsys):
    monkeypatch.setenv("NSTLAB_OFFLINE", "1")
    assert main(["weights", "download", "vgg16"]) == 2
    assert "vgg16-397923af.pth" in capsys.readouterr().err
