"""Registries, cards and the three plugin routes (entry point, file, card path)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from benchmark.cards import load_card
from benchmark.errors import CardError, DuplicateNameError, PluginError, UnknownNameError
from benchmark.registry import REPO_ROOT, build_registries

PLUGIN = Path(__file__).parent / "plugins" / "tiny_plugin.py"


def _cli(*args: str, env_extra: dict[str, str] | None = None, cwd: Path = REPO_ROOT):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "benchmark", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


def test_builtin_cards_are_registered_with_their_source():
    registries = build_registries()
    entry = registries.tokenizer.get("dummy")
    assert entry.source.route == "builtin"
    assert entry.source.location == "tokenizers/dummy.yaml"
    assert len(entry.source.digest) == 64
    assert {"emotion", "speaker-id"} <= set(registries.task.names())
    assert {"accuracy", "wer", "cer"} <= set(registries.metric.names())


def test_unknown_name_suggests_close_matches():
    registries = build_registries()
    with pytest.raises(UnknownNameError, match="did you mean 'dummy'"):
        registries.tokenizer.get("dumy")
    with pytest.raises(UnknownNameError, match="did you mean 'speaker-id'"):
        registries.task.get("speaker_id")


def test_file_plugin_registers_with_path_and_hash():
    registries = build_registries([PLUGIN])
    entry = registries.tokenizer.get("coarse-mel")
    assert entry.source.route == "file"
    assert entry.source.location == str(PLUGIN.resolve())
    cls = entry.load()
    assert cls.__name__ == "CoarseMelTokenizer"
    assert entry.card.params["n_bands"] == 4


def test_file_plugin_twice_is_a_duplicate_naming_both_sources(tmp_path):
    copy = tmp_path / "copy.py"
    copy.write_text(PLUGIN.read_text())
    with pytest.raises(DuplicateNameError, match="coarse-mel.*tiny_plugin.py.*copy.py"):
        build_registries([PLUGIN, copy])


def test_plugin_that_raises_on_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(PluginError, match=r"bad.py raised RuntimeError: boom"):
        build_registries([bad])


def test_plugin_registering_a_non_tokenizer(tmp_path):
    bad = tmp_path / "notatokenizer.py"
    bad.write_text(
        "from benchmark.plugins import register_tokenizer\n"
        "class Thing:\n    pass\n"
        "register_tokenizer('thing', Thing)\n"
    )
    with pytest.raises(PluginError, match="not a subclass of benchmark.api.Tokenizer"):
        build_registries([bad])


def test_plugin_registering_an_abstract_tokenizer(tmp_path):
    bad = tmp_path / "abstract.py"
    bad.write_text(
        "from benchmark.api import Tokenizer\n"
        "from benchmark.plugins import register_tokenizer\n"
        "class Half(Tokenizer):\n    pass\n"
        "register_tokenizer('half', Half)\n"
    )
    with pytest.raises(PluginError, match="does not implement encode"):
        build_registries([bad])


def test_card_path_registers_and_resolves(tmp_path):
    card = tmp_path / "my-mel.yaml"
    card.write_text(
        "name: my-mel\ndescription: a card given by path\n"
        "class: benchmark.tokenizers.dummy:MelBandTokenizer\nparams: {n_bands: 2, levels: 4}\n"
    )
    registries = build_registries()
    entry = registries.resolve_name("tokenizer", str(card))
    assert entry.name == "my-mel" and entry.source.route == "card"
    assert registries.resolve_name("tokenizer", str(card)) is entry
    assert entry.card.resolve("mini").params == {"n_bands": 2, "levels": 4}


def test_card_path_clashing_with_builtin_is_an_error(tmp_path):
    card = tmp_path / "dummy.yaml"
    card.write_text((REPO_ROOT / "tokenizers" / "dummy.yaml").read_text())
    registries = build_registries()
    with pytest.raises(DuplicateNameError, match="tokenizers/dummy.yaml.*dummy.yaml"):
        registries.resolve_name("tokenizer", str(card))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\ndescription: d\nclass: a.b:C\nparms: {}\n", "unknown key 'parms'"),
        ("name: x\ndescription: d\nclass: a.b:C\nparams: [1]\n", "'params' must be dict"),
        ("name: x\nclass: a.b:C\n", "missing required key 'description'"),
        ("name: X Y\ndescription: d\nclass: a.b:C\n", "must be lower case"),
        ("name: x\ndescription: d\nclass: notatarget\n", "must look like"),
        ("name: x\ndescription: d\nclass: a.b:C\npresets: {tiny: {}}\n", "unknown preset 'tiny'"),
        (
            "name: x\ndescription: d\nclass: a.b:C\npresets: {mini: {epochs: 1}}\n",
            "unknown key 'epochs' under presets.mini",
        ),
        ("name: x\ndescription: d\nclass: a.b:C\nweights: {hub: m}\n", "weights"),
        ("name: [x\n", "not valid YAML"),
    ],
)
def test_malformed_cards_name_file_and_key(tmp_path, text, message):
    path = tmp_path / "card.yaml"
    path.write_text(text)
    with pytest.raises(CardError, match=message) as info:
        load_card(path)
    assert str(path) in str(info.value)


def test_preset_overrides_merge_params_and_replace_weights(tmp_path):
    path = tmp_path / "card.yaml"
    path.write_text(
        "name: x\ndescription: d\nclass: a.b:C\nparams: {a: 1, b: 2}\n"
        "weights: {hub: org/model, revision: abc}\n"
        "presets:\n  mini: {params: {b: 3}, weights: {path: /tmp/tiny}}\n"
    )
    card = load_card(path)
    mini = card.resolve("mini")
    assert mini.params == {"a": 1, "b": 3} and mini.weights == {"path": "/tmp/tiny"}
    full = card.resolve("full")
    assert full.params == {"a": 1, "b": 2} and full.weights["revision"] == "abc"
    with pytest.raises(CardError, match="unknown preset"):
        card.resolve("huge")


def _make_wheel(folder: Path) -> Path:
    """A real (hand-built) wheel of a throwaway distribution declaring an entry point."""
    name, version = "bench_ep_plugin", "1.2.3"
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    module = (
        "from benchmark.tokenizers.dummy import MelBandTokenizer\n"
        "class EntryPointMel(MelBandTokenizer):\n"
        "    '''Mel bands from an installed package.'''\n"
    )
    files = {
        f"{name}/__init__.py": module,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
        f"{info}/entry_points.txt": (f"[benchmark.tokenizers]\nep-mel = {name}:EntryPointMel\n"),
    }
    record = "".join(f"{path},,\n" for path in files) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
        archive.writestr(f"{info}/RECORD", record)
    return wheel


def test_entry_point_plugin_from_an_installed_distribution(tmp_path):
    wheel = _make_wheel(tmp_path)
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        timeout=300,
    )
    env = {"PYTHONPATH": str(target)}
    listing = _cli("list", "tokenizers", env_extra=env)
    assert listing.returncode == 0, listing.stderr
    line = next(row for row in listing.stdout.splitlines() if row.startswith("ep-mel"))
    assert "package bench_ep_plugin==1.2.3" in line
    check = _cli("check-tokenizer", "ep-mel", "--quiet", env_extra=env)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.strip().endswith("ep-mel: 10 passed, 0 failed, 0 skipped")


def test_tokenizer_and_task_folders_hold_no_python():
    for folder in ("tokenizers", "tasks"):
        offenders = [
            p for p in (REPO_ROOT / folder).rglob("*") if p.suffix in (".py", ".pyc", ".so")
        ]
        assert offenders == [], f"{folder}/ must hold cards only, found {offenders}"
        assert not (REPO_ROOT / folder / "__init__.py").exists()


def test_import_tokenizers_is_hugging_face_from_the_repo_root():
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import tokenizers, sys; print(tokenizers.__file__); "
            "print(hasattr(tokenizers, 'Tokenizer'))",
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
        check=True,
    ).stdout.split()
    assert "site-packages" in out[0] and out[1] == "True"
    assert not out[0].startswith(str(REPO_ROOT / "tokenizers"))


def test_a_plugin_file_is_an_ordinary_importable_module(tmp_path):
    (tmp_path / "sibling_bands.py").write_text("BANDS = 3\n")
    (tmp_path / "own_plugin.py").write_text(
        "from benchmark.plugins import register_tokenizer\n"
        "from benchmark.tokenizers.dummy import MelBandTokenizer\n"
        "from sibling_bands import BANDS\n"
        "class Three(MelBandTokenizer):\n    '''Three bands.'''\n"
        "register_tokenizer('three-bands', Three, params={'n_bands': BANDS})\n"
    )
    # the author's own test: a plain import, no harness, no error
    code = "import own_plugin; print(own_plugin.Three(n_bands=3).info.num_codebooks)"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120, check=True)  # fmt: skip
    assert out.stdout.strip() == "3"
    registries = build_registries([tmp_path / "own_plugin.py"])
    assert registries.tokenizer.get("three-bands").card.params == {"n_bands": 3}
    card = tmp_path / "three-card.yaml"
    card.write_text("name: three-card\ndescription: via a card\nclass: own_plugin:Three\n")
    entry = registries.resolve_name("tokenizer", str(card))
    assert entry.load().__name__ == "Three"


def test_plugin_and_duplicate_errors_are_usage_errors(tmp_path):
    missing = _cli("list", "tokenizers", "--plugin", str(tmp_path / "nope.py"))
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        f"error: plugin file {tmp_path / 'nope.py'} does not exist; check the --plugin path"
    ]
    copy = tmp_path / "copy.py"
    copy.write_text(PLUGIN.read_text())
    duplicate = _cli("list", "tokenizers", "--plugin", str(PLUGIN), "--plugin", str(copy))
    assert duplicate.returncode == 2 and "registered twice" in duplicate.stderr
    check = _cli("check-tokenizer", "dummy", "--threads", "1", "--quiet")
    assert check.returncode == 0 and "dummy: 10 passed" in check.stdout
