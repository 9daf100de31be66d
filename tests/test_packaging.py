"""A wheel install has every built-in card; provenance works without a git checkout; an
installed plugin whose code changes (same version) reruns."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from benchmark.registry import BUILTIN_CARDS, REPO_ROOT


def test_wheel_ships_every_builtin_card(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path), str(REPO_ROOT)],
        check=True, timeout=600, capture_output=True,
    )  # fmt: skip
    wheel = next(tmp_path.glob("audio_token_benchmark-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    cards = sorted(BUILTIN_CARDS.rglob("*.yaml"))
    assert len(cards) >= 18
    for card in cards:
        assert f"benchmark/builtin_cards/{card.relative_to(BUILTIN_CARDS).as_posix()}" in names


def test_installed_copy_without_git_lists_cards_and_has_a_code_version(tmp_path):
    site = tmp_path / "site"
    shutil.copytree(REPO_ROOT / "benchmark", site / "benchmark",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    code = (
        "import json; from benchmark.provenance import code_version\n"
        "from benchmark.registry import build_registries\n"
        "r = build_registries(); print(json.dumps([len(r.tokenizer.names()), code_version()]))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(site)},
                         check=True)  # fmt: skip
    count, version = json.loads(out.stdout.strip().splitlines()[-1])
    assert count >= 15
    assert version["commit"] is None and len(version["source_sha256"]) == 64


def _wheel(folder: Path, body: str) -> Path:
    name, version = "bench_ep_keyed", "1.0.0"
    info = f"{name}-{version}.dist-info"
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    files = {
        f"{name}/__init__.py": "from benchmark.tokenizers.dummy import MelBandTokenizer\n"
        f"class KeyedMel(MelBandTokenizer):\n    '''{body}'''\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
        f"{info}/entry_points.txt": f"[benchmark.tokenizers]\nkeyed-mel = {name}:KeyedMel\n",
    }
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
        archive.writestr(
            f"{info}/RECORD", "".join(f"{p},,\n" for p in files) + f"{info}/RECORD,,\n"
        )
    return wheel


def test_entry_point_code_change_with_the_same_version_reruns(tmp_path):
    site = tmp_path / "site"

    def install(body: str) -> None:
        shutil.rmtree(site, ignore_errors=True)
        wheel = _wheel(tmp_path, body)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                        "--target", str(site), str(wheel)], check=True, timeout=300)  # fmt: skip

    code = (
        "import json, sys\nfrom benchmark.pipeline.config import RunConfig\n"
        "from benchmark.pipeline.env import StepEnv\nfrom benchmark.pipeline.plan import Planner\n"
        f"c = RunConfig(('keyed-mel',), (), workdir={str(tmp_path / 'w')!r}, device='cpu')\n"
        "p = Planner(StepEnv(c)); t = p._tokenizer(p.env.entry('tokenizer', 'keyed-mel'))\n"
        "print(t.key)"
    )

    def key() -> str:
        out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=120, check=True,
                             env={**os.environ, "PYTHONPATH": str(site)})  # fmt: skip
        return out.stdout.strip().splitlines()[-1]

    install("first build")
    first = key()
    assert key() == first
    install("second build, same version")
    assert key() != first
