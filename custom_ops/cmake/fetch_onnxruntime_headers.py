"""Fetch onnxruntime's C/C++ API headers from Debian's ``libonnxruntime-dev`` package through the
machine's own apt configuration (called by OnnxRuntimeHeaders.cmake; standard library only).

The onnxruntime wheel ships no headers. Debian trixie packages them (1.21). This script reads the
archive mirrors configured for apt (``/etc/apt/sources.list``, ``sources.list.d/*.list`` and
deb822 ``*.sources``), and for each, with a private apt state (the system's apt state, caches and
lists are never touched; its ``apt.conf`` settings such as proxies still apply):

1. writes a sources list naming that mirror with the suite the package needs (``trixie main``),
   signed by the keyring the system's entry uses, else Debian's archive keyring if installed;
2. runs ``apt-get update`` and ``apt-get download libonnxruntime-dev``;
3. checks the package: with a signed index apt has verified it; without a keyring the mirror is
   used ``[trusted=yes]`` and only the pinned version with the pinned SHA-256 is accepted;
4. unpacks ``usr/include/onnxruntime`` into ``--dest`` (atomically: a temp dir, then a rename).

No host name is written anywhere: the mirror is the one apt is configured with.

Exit status 0 when the headers are in ``--dest``, 1 otherwise (the reason on stderr).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "libonnxruntime-dev"
SUITE = "trixie"
COMPONENT = "main"
DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
HEADERS = ("onnxruntime_c_api.h", "onnxruntime_cxx_api.h")


@dataclass
class Source:
    """One ``deb`` entry of apt's configuration."""

    uris: list[str]
    suites: list[str]
    components: list[str] = field(default_factory=list)
    signed_by: str = ""
    """A keyring path, or an inline ASCII-armoured key block (deb822 only)."""
    origin: str = ""
    """The file it was read from."""


def parse_one_line(text: str, origin: str = "") -> list[Source]:
    """The ``deb`` entries of a one-line-style ``sources.list``."""
    sources = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line.startswith("deb ") and not line.startswith("deb\t"):
            continue  # deb-src, or not an entry
        rest = line[3:].strip()
        options: dict[str, str] = {}
        if rest.startswith("["):
            end = rest.find("]")
            if end < 0:
                continue
            for option in rest[1:end].split():
                key, _, value = option.partition("=")
                options[key.lower()] = value
            rest = rest[end + 1 :].strip()
        words = rest.split()
        if len(words) < 2:
            continue
        sources.append(Source([words[0]], [words[1]], words[2:], options.get("signed-by", ""), origin))
    return sources


def parse_deb822(text: str, origin: str = "") -> list[Source]:
    """The enabled ``deb`` entries of a deb822-style ``.sources`` file."""
    sources = []
    for paragraph in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in paragraph.splitlines():
            if line.startswith("#"):
                continue
            if line[:1] in (" ", "\t") and key is not None:
                value = line.strip()
                fields[key] += "\n" + ("" if value == "." else value)
                continue
            key, sep, value = line.partition(":")
            if not sep:
                key = None
                continue
            key = key.strip().lower()
            fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").strip().lower() in ("no", "false", "0"):
            continue
        uris, suites = fields.get("uris", "").split(), fields.get("suites", "").split()
        if uris and suites:
            sources.append(
                Source(uris, suites, fields.get("components", "").split(), fields.get("signed-by", "").strip(), origin)
            )
    return sources


def _apt_paths() -> tuple[Path, Path]:
    """apt's main sources list and its parts directory, as apt is configured."""
    try:
        out = subprocess.run(
            ["apt-config", "shell", "LIST", "Dir::Etc::sourcelist/f", "PARTS", "Dir::Etc::sourceparts/d"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
        found = dict(re.findall(r"^(LIST|PARTS)='(.*)'$", out, re.M))
        return Path(found["LIST"]), Path(found["PARTS"])
    except (OSError, subprocess.SubprocessError, KeyError):
        return Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d")


def configured_sources(sources_list: Path | None = None, parts: Path | None = None) -> list[Source]:
    """Every ``deb`` entry apt is configured with."""
    if sources_list is None or parts is None:
        sources_list, parts = _apt_paths()
    found: list[Source] = []
    files = [sources_list] + (sorted(parts.iterdir()) if parts.is_dir() else [])
    for path in files:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if path.name.endswith(".list"):
            found += parse_one_line(text, str(path))
        elif path.name.endswith(".sources"):
            found += parse_deb822(text, str(path))
    return found


def candidate_mirrors(sources: list[Source]) -> list[tuple[str, str]]:
    """``(uri, signed_by)`` of the mirrors to try, Debian archive mirrors first: entries with a
    ``main`` component and a release suite (not ``-security``, ``-updates``, ``-backports``)."""
    ranked: list[tuple[int, str, str]] = []
    seen: set[str] = set()
    for index, source in enumerate(sources):
        for uri in source.uris:
            if uri.startswith("cdrom:") or uri.rstrip("/") in seen:
                continue
            release = [s for s in source.suites if not re.search(r"-(security|updates|backports)$", s)]
            if not release:
                continue  # a security or updates archive: it has no full suite
            seen.add(uri.rstrip("/"))
            rank = 0 if COMPONENT in source.components else 1
            ranked.append((rank * 1000 + index, uri, source.signed_by))
    return [(uri, signed) for _, uri, signed in sorted(ranked)]


def _keyring(signed_by: str, work: Path, index: int) -> str | None:
    """A keyring file for ``signed-by``, or None when there is none to verify with."""
    if "BEGIN PGP PUBLIC KEY BLOCK" in signed_by:
        path = work / f"inline-key-{index}.asc"
        path.write_text(signed_by.strip() + "\n")
        return str(path)
    for candidate in [*signed_by.replace(",", " ").split(), str(DEBIAN_KEYRING)]:
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def _apt_options(work: Path, sources_list: Path) -> list[str]:
    empty = work / "empty"
    for directory in (empty, work / "lists" / "partial", work / "cache" / "archives" / "partial"):
        directory.mkdir(parents=True, exist_ok=True)
    options = {
        "Dir::Etc::SourceList": sources_list,
        "Dir::Etc::SourceParts": empty,
        "Dir::Etc::Preferences": "/dev/null",
        "Dir::Etc::PreferencesParts": empty,
        "Dir::State": work,
        "Dir::State::Lists": work / "lists",
        "Dir::State::status": "/dev/null",
        "Dir::Cache": work / "cache",
        "Debug::NoLocking": "1",
        "Acquire::Languages": "none",
        "APT::Get::List-Cleanup": "0",
    }
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        options["APT::Sandbox::User"] = "root"  # the private dirs need not be readable by _apt
    return [arg for key, value in options.items() for arg in ("-o", f"{key}={value}")]


def _run(command: list[str], cwd: Path) -> tuple[bool, str]:
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.SubprocessError) as error:
        return False, str(error)
    text = (done.stdout + done.stderr).strip()
    failed = done.returncode != 0 or re.search(r"^(E:|W: (Failed|GPG error|The repository))", text, re.M)
    return not failed, text


def read_deb_member(deb: bytes, prefix: str) -> bytes:
    """The content of the first member of the ``ar`` archive ``deb`` whose name starts with
    ``prefix`` (e.g. ``data.tar``)."""
    if not deb.startswith(b"!<arch>\n"):
        raise ValueError("not a Debian package (no ar header)")
    at = 8
    while at + 60 <= len(deb):
        header = deb[at : at + 60]
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip())
        if name.startswith(prefix):
            return deb[at + 60 : at + 60 + size]
        at += 60 + size + (size & 1)
    raise ValueError(f"no {prefix}* member in the package")


def unpack_headers(deb: bytes, dest: Path) -> None:
    """Extract ``usr/include/onnxruntime/*`` of the package ``deb`` into ``dest/onnxruntime``,
    replacing ``dest`` atomically."""
    data = read_deb_member(deb, "data.tar")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        include = staging / "onnxruntime"
        include.mkdir()
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
            for member in archive.getmembers():
                name = member.name.removeprefix("./")
                if not name.startswith("usr/include/onnxruntime/") or not member.isfile():
                    continue
                relative = Path(name).relative_to("usr/include/onnxruntime")
                if ".." in relative.parts or relative.is_absolute():
                    continue
                target = include / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                source = archive.extractfile(member)
                if source is not None:
                    target.write_bytes(source.read())
        missing = [h for h in HEADERS if not (include / h).is_file()]
        if missing:
            raise ValueError(f"the package holds no {', '.join(missing)}")
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def fetch(dest: Path, version: str, sha256: str, log: list[str]) -> bool:
    """Download and unpack the headers into ``dest``; ``log`` collects what happened."""
    if shutil.which("apt-get") is None:
        log.append("apt-get not found: this is not a Debian-like system")
        return False
    mirrors = candidate_mirrors(configured_sources())
    if not mirrors:
        log.append("apt is configured with no deb archive mirror")
        return False
    for index, (uri, signed_by) in enumerate(mirrors):
        with tempfile.TemporaryDirectory(prefix="lsc-ort-apt-") as temp:
            work = Path(temp)
            keyring = _keyring(signed_by, work, index)
            option = f"signed-by={keyring}" if keyring else "trusted=yes"
            sources_list = work / "sources.list"
            sources_list.write_text(f"deb [{option}] {uri} {SUITE} {COMPONENT}\n")
            apt = ["apt-get", *_apt_options(work, sources_list)]
            ok, text = _run([*apt, "update"], work)
            if not ok:
                log.append(f"{uri} {SUITE}: apt-get update failed: {text.splitlines()[-1] if text else ''}")
                continue
            downloads = work / "deb"
            downloads.mkdir()
            ok, text = _run([*apt, "download", PACKAGE], downloads)
            debs = sorted(downloads.glob(f"{PACKAGE}_*.deb"))
            if not ok or not debs:
                log.append(f"{uri} {SUITE}: apt-get download {PACKAGE} failed: {text.splitlines()[-1] if text else ''}")
                continue
            deb = debs[0].read_bytes()
            digest = hashlib.sha256(deb).hexdigest()
            got_version = debs[0].name.split("_")[1].replace("%3a", ":")
            if not keyring and (got_version != version or digest != sha256):
                log.append(
                    f"{uri} {SUITE}: no keyring to verify the archive with, and {debs[0].name} "
                    f"(SHA-256 {digest}) is not the pinned {version} ({sha256})"
                )
                continue
            try:
                unpack_headers(deb, dest)
            except (ValueError, OSError, tarfile.TarError) as error:
                log.append(f"{uri} {SUITE}: cannot unpack {debs[0].name}: {error}")
                continue
            how = "signed index" if keyring else "pinned SHA-256"
            log.append(f"{PACKAGE} {got_version} from the apt mirror {uri} ({SUITE}, verified by {how})")
            (dest / "SOURCE").write_text(f"{PACKAGE} {got_version} sha256 {digest}\n")
            return True
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", required=True, type=Path, help="directory to hold onnxruntime/*.h")
    parser.add_argument("--version", required=True, help="the pinned package version")
    parser.add_argument("--sha256", required=True, help="SHA-256 of the pinned .deb (checked when unsigned)")
    args = parser.parse_args(argv)
    log: list[str] = []
    ok = fetch(args.dest, args.version, args.sha256.lower(), log)
    print("\n".join(log), file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
