"""scripts/install.sh refuses at once, in one line, when the disk cannot hold the install."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    """A copy of the install script and the files it hashes, with a fake ``.venv/bin/python``
    (logs its arguments; has torch unless ``NO_TORCH=1``) and fake ``df`` / ``espeak-ng``
    first on PATH."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "install.sh", tmp_path / "scripts" / "install.sh")
    for name in ("pyproject.toml", "requirements.lock", "requirements-dev.lock"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    _executable(
        tmp_path / ".venv" / "bin" / "python",
        '#!/usr/bin/env bash\necho "$*" >> "$CALLS"\n'
        'if [ "$1" = "-c" ]; then exit "$NO_TORCH"; fi\nexit 0\n',
    )
    fake_bin = tmp_path / "fake-bin"
    fake_bin.mkdir()
    _executable(
        fake_bin / "df",
        "#!/usr/bin/env bash\necho 'Filesystem 1024-blocks Used Available Capacity Mounted on'\n"
        'echo "/dev/fake 999999999 0 $FREE_KIB 1% /fake-mount"\n',
    )
    _executable(fake_bin / "espeak-ng", "#!/usr/bin/env bash\nexit 0\n")
    return tmp_path


def _install(
    sandbox: Path, free_gib: int, has_torch: bool = False
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.update(
        PATH=f"{sandbox / 'fake-bin'}:{env['PATH']}",
        FREE_KIB=str(free_gib * 1024 * 1024),
        CALLS=str(sandbox / "calls.log"),
        TMPDIR=str(sandbox),
        NO_TORCH="0" if has_torch else "1",
    )
    return subprocess.run(
        ["bash", "scripts/install.sh"], cwd=sandbox, env=env, capture_output=True, text=True
    )


def test_too_little_disk_is_a_one_line_error_before_pip_runs(sandbox: Path):
    result = _install(sandbox, free_gib=3)
    assert result.returncode == 1
    error = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(error) == 1, result.stderr
    assert "only 3 GiB free for .venv (/fake-mount)" in error[0]
    assert "needs about 8 GiB" in error[0] and "rerun" in error[0]
    calls = (sandbox / "calls.log").read_text()
    assert "-m pip" not in calls
    assert not (sandbox / ".venv" / ".install-stamp").exists()


def test_enough_disk_goes_on_to_install_the_locks(sandbox: Path):
    result = _install(sandbox, free_gib=9)
    assert result.returncode == 0, result.stderr
    calls = (sandbox / "calls.log").read_text()
    assert "-m pip install -q -r requirements.lock" in calls
    assert "-m pip install -q --no-deps -e ." in calls
    assert (sandbox / ".venv" / ".install-stamp").exists()


def test_a_venv_that_has_torch_needs_less(sandbox: Path):
    assert "needs about 2 GiB" in _install(sandbox, free_gib=1, has_torch=True).stderr
    assert _install(sandbox, free_gib=3, has_torch=True).returncode == 0
    # installed: a second call does nothing, whatever the disk
    assert _install(sandbox, free_gib=0, has_torch=True).returncode == 0
