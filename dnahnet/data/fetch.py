"""Download a real genome named in `data_manifests/` and make it randomly accessible.

`fetch_genome("hg38", "data/")` downloads the manifest's URL (http(s), ftp or
`file://`), checks its size and sha256 when the manifest gives them, rewrites
gzip (or plain) FASTA as bgzip, builds the `.fai`/`.gzi` index and downloads the
split BED the manifest names. Every file appears atomically: an interrupted
fetch leaves nothing half-written under the final names, and a finished one is
not downloaded again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from Bio import bgzf

from dnahnet.data.demo import manifest_dir
from dnahnet.data.genome import Genome, is_bgzip_header, sniff_fasta
from dnahnet.errors import DnahnetInputError
from dnahnet.io.atomic import atomic_path, check_writable_dir
from dnahnet.io.text import open_binary

BLOCK = 1 << 20
Progress = Callable[[int, int | None], None]  # (bytes so far, total bytes or None)


def load_manifest(name: str) -> dict:
    """The manifest `data_manifests/<name>.json`."""
    folder = manifest_dir()
    path = folder / f"{name}.json"
    if not path.exists():
        known = sorted(p.stem for p in folder.glob("*.json"))
        raise DnahnetInputError(f"unknown genome {name!r}; manifests available: {', '.join(known)}")
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def download(url: str, target: Path, *, size: int | None = None, sha256: str | None = None,
             progress: Progress | None = None) -> Path:
    """Fetch `url` to `target` atomically, checking size and sha256 when given."""
    digest = hashlib.sha256()
    done = 0
    with atomic_path(target) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as out:
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else size
                while chunk := response.read(BLOCK):
                    out.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise DnahnetInputError(f"cannot download {url}: {reason}") from None
        if size is not None and done != size:
            raise DnahnetInputError(f"downloaded {done:,} bytes from {url}, the manifest expects {size:,}")
        if sha256 is not None and digest.hexdigest() != sha256.lower():
            raise DnahnetInputError(
                f"sha256 of {url} is {digest.hexdigest()}, the manifest expects {sha256} (corrupt or changed download)"
            )
    return target


def to_bgzip(src: Path, target: Path) -> Path:
    """Rewrite a gzip or plain FASTA as bgzip (streamed; never the whole file in memory)."""
    with atomic_path(target) as tmp:
        try:
            with open_binary(src) as fin, bgzf.BgzfWriter(str(tmp), "wb") as fout:
                shutil.copyfileobj(fin, fout, BLOCK)
        except (OSError, EOFError) as exc:
            raise DnahnetInputError(f"cannot decompress ({exc})", file=str(src)) from None
    return target


def _check_total(genome: Genome, expected: int | None, where: str, hint: str = "(check the URL or the manifest)") -> None:
    total = sum(genome.sizes.values())
    if expected is not None and total != expected:
        raise DnahnetInputError(f"{total:,} bases in the FASTA, the manifest expects {expected:,} {hint}", file=where)


def fetch_genome(
    name: str | dict,
    dest_dir: str | os.PathLike,
    url_override: str | None = None,
    *,
    bed_url_override: str | None = None,
    progress: Progress | None = None,
    source: str | os.PathLike | None = None,
) -> Path:
    """Download genome `name` (or a manifest dict) into `dest_dir`; return its indexed bgzip FASTA.

    The manifest's `size_bytes`/`sha256` are checked when present (a mirror given
    as `url_override` must serve the same bytes); `total_bases` is checked against
    the index. The split BED (`splits.bed_url`) is saved as `splits.bed_filename`.
    """
    manifest = load_manifest(name) if isinstance(name, str) else name
    where = str(source) if source is not None else f"manifest {name if isinstance(name, str) else manifest.get('name', '?')}"
    if not isinstance(manifest, dict):
        raise DnahnetInputError("a manifest must be a mapping of fields", file=where)
    if url_override is None and not manifest.get("url"):
        raise DnahnetInputError("the manifest has no 'url' field (add one, or give --url)", file=where)
    label = manifest.get("name", "genome")
    dest = check_writable_dir(dest_dir)
    final = dest / manifest.get("filename", f"{label}.fa.gz")
    expected = manifest.get("total_bases")
    if not final.exists():
        url = url_override or manifest["url"]
        raw = dest / f".{final.name}.download"
        staged = dest / f".{final.name}.staged"
        download(url, raw, size=manifest.get("size_bytes"), sha256=manifest.get("sha256"), progress=progress)
        try:
            with open(raw, "rb") as fh:
                head = fh.read(18)
            if is_bgzip_header(head):
                os.replace(raw, staged)  # already bgzip
            else:
                to_bgzip(raw, staged)
            try:  # an HTML error page or a GenBank file stops here, before the final name exists
                sniff_fasta(staged)
            except DnahnetInputError as exc:
                raise DnahnetInputError(exc.message, file=url) from None
            staged.chmod(0o644)
            # index and count the bases while the file is still staged: a rejected genome never gets the final name
            staged_genome = Genome(staged)
            index_files = [staged_genome.index_path] + ([staged_genome.gzi_path] if staged_genome.gzi_path else [])
            staged_genome.close()
            _check_total(staged_genome, expected, url)
            for path in index_files:  # built beside the staged file (the folder is writable): they move with it
                os.replace(path, dest / (final.name + path.name[len(staged.name):]))
            os.replace(staged, final)
        finally:
            raw.unlink(missing_ok=True)
            staged.unlink(missing_ok=True)
            for suffix in (".fai", ".gzi"):
                Path(str(staged) + suffix).unlink(missing_ok=True)
    genome = Genome(final)
    _check_total(genome, expected, str(final), hint="(delete it and fetch again, or check the URL)")
    splits = manifest.get("splits") or {}
    if splits.get("bed_url"):
        bed = dest / splits.get("bed_filename", f"{label}-splits.bed")
        if not bed.exists():
            download(bed_url_override or splits["bed_url"], bed, sha256=splits.get("bed_sha256"))
    return final
