"""The build's fetch of onnxruntime's headers through apt's own configuration
(custom_ops/cmake/fetch_onnxruntime_headers.py), and that no registry host is named in the repo."""

from __future__ import annotations

import importlib.util
import io
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "custom_ops" / "cmake" / "fetch_onnxruntime_headers.py"


def load_script():
    spec = importlib.util.spec_from_file_location("fetch_onnxruntime_headers", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


fetch = load_script()


def test_one_line_sources() -> None:
    text = """
# a comment
deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] http://mirror.example/debian bookworm main contrib
deb-src http://mirror.example/debian bookworm main
deb http://mirror.example/debian-security bookworm-security main  # trailing comment
deb cdrom:[Debian 12]/ bookworm main
"""
    sources = fetch.parse_one_line(text, "sources.list")
    assert [(s.uris, s.suites, s.components, s.signed_by) for s in sources] == [
        (["http://mirror.example/debian"], ["bookworm"], ["main", "contrib"], "/usr/share/keyrings/x.gpg"),
        (["http://mirror.example/debian-security"], ["bookworm-security"], ["main"], ""),
        (["cdrom:[Debian"], ["12]/"], ["bookworm", "main"], ""),
    ]


def test_deb822_sources() -> None:
    text = """Types: deb deb-src
# http://snapshot.example/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian http://other.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://src.example/debian
Suites: bookworm
Components: main

Types: deb
URIs: http://disabled.example/debian
Suites: bookworm
Components: main
Enabled: no

Types: deb
URIs: http://inline.example/debian
Suites: trixie
Components: main
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 mQINBGPL0BUBEADmW5NdOOHwPIJlgPu6JDcKw/NZJPR8lsD3K87ZM18gzyQZJD+w
 -----END PGP PUBLIC KEY BLOCK-----
"""
    sources = fetch.parse_deb822(text, "debian.sources")
    assert [s.uris for s in sources] == [
        ["http://mirror.example/debian", "http://other.example/debian"],
        ["http://inline.example/debian"],
    ]
    assert sources[0].suites == ["bookworm", "bookworm-updates"]
    assert sources[0].signed_by == "/usr/share/keyrings/debian-archive-keyring.gpg"
    key = sources[1].signed_by
    assert key.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQINB") and key.endswith("BLOCK-----")


def test_candidate_mirrors_skip_security_updates_and_cdroms() -> None:
    sources = [
        fetch.Source(["http://sec.example/debian-security"], ["bookworm-security"], ["main"]),
        fetch.Source(["http://third.example/repo"], ["nodistro"], ["contrib"]),
        fetch.Source(["cdrom:[Debian]/"], ["bookworm"], ["main"]),
        fetch.Source(["http://mirror.example/debian/", "http://mirror.example/debian"], ["bookworm"], ["main"], "k"),
        fetch.Source(["http://up.example/debian"], ["bookworm-updates"], ["main"]),
    ]
    assert fetch.candidate_mirrors(sources) == [
        ("http://mirror.example/debian/", "k"),  # a main archive first, each mirror once
        ("http://third.example/repo", ""),
    ]


def test_configured_sources_read_both_formats(tmp_path: Path) -> None:
    (tmp_path / "sources.list").write_text("deb http://a.example/debian bookworm main\n")
    parts = tmp_path / "sources.list.d"
    parts.mkdir()
    (parts / "b.sources").write_text("Types: deb\nURIs: http://b.example/debian\nSuites: bookworm\nComponents: main\n")
    (parts / "c.list.disabled").write_text("deb http://c.example/debian bookworm main\n")
    found = fetch.configured_sources(tmp_path / "sources.list", parts)
    assert [s.uris[0] for s in found] == ["http://a.example/debian", "http://b.example/debian"]


def _deb(members: dict[str, bytes]) -> bytes:
    """A minimal .deb (ar archive) whose data.tar.xz holds ``members``."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:xz") as archive:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    out = b"!<arch>\n"
    for name, content in (("debian-binary", b"2.0\n"), ("control.tar.xz", b""), ("data.tar.xz", data.getvalue())):
        header = f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(content):<10}`\n".encode()
        out += header + content + (b"\n" if len(content) % 2 else b"")
    return out


def test_unpack_takes_only_the_headers(tmp_path: Path) -> None:
    deb = _deb(
        {
            "./usr/include/onnxruntime/onnxruntime_c_api.h": b"// c api\n",
            "./usr/include/onnxruntime/onnxruntime_cxx_api.h": b"// cxx api\n",
            "./usr/include/onnxruntime/core/session/extra.h": b"// nested\n",
            "./usr/lib/x86_64-linux-gnu/libonnxruntime.so": b"ELF",
            "./usr/include/onnxruntime/../../../../evil.h": b"outside",
        }
    )
    dest = tmp_path / "cache" / "onnxruntime-headers-x"
    fetch.unpack_headers(deb, dest)
    files = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert files == [
        "onnxruntime/core/session/extra.h",
        "onnxruntime/onnxruntime_c_api.h",
        "onnxruntime/onnxruntime_cxx_api.h",
    ]
    assert not (tmp_path / "evil.h").exists() and sorted(p.name for p in dest.parent.iterdir()) == [dest.name]
    with pytest.raises(ValueError, match=r"holds no onnxruntime_cxx_api\.h"):
        fetch.unpack_headers(_deb({"./usr/include/onnxruntime/onnxruntime_c_api.h": b""}), tmp_path / "other")
    assert not (tmp_path / "other").exists()
    with pytest.raises(ValueError, match="not a Debian package"):
        fetch.unpack_headers(b"junk", tmp_path / "other")


def test_without_apt_it_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch.shutil, "which", lambda name: None)
    log: list[str] = []
    assert not fetch.fetch(tmp_path / "h", "1", "0" * 64, log)
    assert log == ["apt-get not found: this is not a Debian-like system"]


@pytest.mark.skipif(
    os.environ.get("LSC_ORT_TEST_APT_FETCH") != "1",
    reason="downloads about 10 MB of apt indexes; set LSC_ORT_TEST_APT_FETCH=1 to run",
)
def test_fetch_from_the_configured_mirror(tmp_path: Path) -> None:
    cmake = (REPO / "custom_ops" / "cmake" / "OnnxRuntimeHeaders.cmake").read_text()
    version = re.search(r'LSC_ORT_HEADERS_VERSION "([^"]+)"', cmake).group(1)
    sha256 = re.search(r'LSC_ORT_HEADERS_SHA256 "([0-9a-f]{64})"', cmake).group(1)
    log: list[str] = []
    assert fetch.fetch(tmp_path / "headers", version, sha256, log), log
    assert (tmp_path / "headers" / "onnxruntime" / "onnxruntime_c_api.h").is_file()


# --- the repository names no package registry host -------------------------------------------------

# Assembled from parts so that this file does not name them either.
_REGISTRY_DOMAINS = [
    r"\.".join(parts)
    for parts in (
        ("debian", "org"),
        ("ubuntu", "com"),
        ("pypi", "org"),
        ("pythonhosted", "org"),
        ("npmjs", "(?:org|com)"),
        ("anaconda", "(?:org|com)"),
        ("crates", "io"),
    )
]
_REGISTRY_HOST = re.compile(r"(?<![\w-])(?:[\w-]+\.)*(?:" + "|".join(_REGISTRY_DOMAINS) + r")(?![\w-])", re.I)


def test_no_registry_host_is_named_in_the_repository() -> None:
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True, timeout=60
        ).stdout.split(b"\0")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    offenders = []
    for name in filter(None, listed):
        path = REPO / name.decode()
        if not path.is_file() or path.stat().st_size > 2_000_000:
            continue
        text = path.read_bytes().decode("utf-8", errors="ignore")
        offenders += [f"{name.decode()}: {m.group(0)}" for m in _REGISTRY_HOST.finditer(text)]
    assert not offenders, offenders


def test_the_host_pattern_catches_hosts() -> None:
    dotted = ".".join
    assert _REGISTRY_HOST.search(f"fetch from http://{dotted(['deb', 'debian', 'org'])}/debian")
    assert _REGISTRY_HOST.search(dotted(["files", "pythonhosted", "org"]))
    assert not _REGISTRY_HOST.search("Debian's libonnxruntime-dev from PyPI wheels")
