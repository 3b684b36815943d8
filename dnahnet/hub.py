"""Checkpoints on the Hugging Face Hub: resolve `org/name[@revision]`, and export a folder to publish.

A checkpoint string that is an existing local path (or whose parent folder exists,
as in `runs/typo`) is a local folder. Any other string shaped like a Hub id
(`org/name`, optionally `@revision`: a branch, tag or commit) is resolved through
`huggingface_hub.snapshot_download`, which uses the standard cache (`HF_HUB_CACHE` / `HF_HOME`, layout
`models--org--name/{refs/REV, snapshots/COMMIT/}`) and honours offline mode
(`HF_HUB_OFFLINE=1`: only the cache is read, nothing downloads).

`export_hub_folder` writes what `huggingface-cli upload org/name DIR` publishes as
is: config.json, model.safetensors, train.json (if any) and a model card README.md.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from dnahnet.errors import DnahnetInputError

HUB_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?:@(?P<rev>[\w./-]+))?$")
_TRUE = {"1", "on", "yes", "true"}


def is_offline() -> bool:
    """HF_HUB_OFFLINE (read at call time: huggingface_hub reads it once at import)."""
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE")
    return (env or "").strip().lower() in _TRUE if env is not None else bool(constants.HF_HUB_OFFLINE)


def cache_dir() -> str | None:
    """HF_HUB_CACHE or HF_HOME/hub when set now, else huggingface_hub's default."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return str(Path(os.environ["HF_HOME"]) / "hub")
    return None


def parse_hub_id(spec: str) -> tuple[str, str | None] | None:
    """(repo id, revision or None) for `org/name[@rev]`, None if the string is not shaped like one."""
    match = HUB_ID.match(spec)
    return (match["repo"], match["rev"]) if match else None


def run_checkpoint(path: Path) -> Path:
    """A `dnahnet pretrain --out` run folder stands for its newest checkpoint, RUN/latest."""
    if path.is_dir() and not (path / "config.json").exists() and (path / "latest" / "config.json").exists():
        return path / "latest"
    return path


def resolve_checkpoint(spec: str | os.PathLike, revision: str | None = None) -> Path:
    """A local checkpoint folder for `spec`: the path itself, or the Hub snapshot in the cache."""
    path = Path(spec)
    # A missing path whose parent folder exists locally (runs/typo) is a local path, not a Hub id.
    local = path.exists() or path.parent.is_dir() and str(path.parent) not in ("", ".")
    parsed = None if local else parse_hub_id(str(spec))
    if parsed is None:
        return run_checkpoint(path)  # a local path (missing ones are reported by the checkpoint reader)
    repo, rev = parsed
    rev = revision or rev
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import (
            EntryNotFoundError,
            HfHubHTTPError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )
    except ImportError:  # pragma: no cover - a declared dependency
        raise DnahnetInputError(f"{spec!r} is not a local folder, and huggingface_hub is not installed to look it up on the Hub") from None
    offline = is_offline()
    where = f"Hub model {repo}" + (f" revision {rev}" if rev else "")
    try:
        folder = snapshot_download(repo, revision=rev, cache_dir=cache_dir(), local_files_only=offline,
                                   library_name="dnahnet")
    except LocalEntryNotFoundError:
        mode = "offline mode (HF_HUB_OFFLINE=1)" if offline else "the Hub could not be reached"
        raise DnahnetInputError(f"not a local folder, and {where} is not in the Hub cache ({cache_dir() or 'default cache'}) "
                                f"while {mode}", file=str(spec)) from None
    except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError) as exc:
        raise DnahnetInputError(f"not a local folder, and {where} was not found on the Hub ({type(exc).__name__})",
                                file=str(spec)) from None
    except HfHubHTTPError as exc:
        raise DnahnetInputError(f"{where}: Hub request failed ({str(exc).splitlines()[0]})", file=str(spec)) from None
    return Path(folder)


# ----- export -------------------------------------------------------------------------------------
def _held_out(checkpoint: Path) -> tuple[float, int] | None:
    """(best held-out bits/base, step) from metrics.jsonl, if the checkpoint has one."""
    path = checkpoint / "metrics.jsonl"
    best = None
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            value = row.get("eval_bits_per_base")
            if isinstance(value, (int, float)) and (best is None or value < best[0]):
                best = (float(value), int(row.get("step", -1)))
    return best


def model_card(checkpoint: Path, repo_id: str | None = None, command: str | None = None) -> str:
    """README.md with Hub metadata: architecture, training data and command, held-out bits/base, usage."""
    from dnahnet.io.checkpoint import read_config

    config = read_config(checkpoint)
    info: dict = {}
    if (checkpoint / "train.json").exists():
        try:
            info = json.loads((checkpoint / "train.json").read_text())
        except json.JSONDecodeError:
            info = {}
    finetune = None
    if (checkpoint / "finetune.json").exists():
        finetune = json.loads((checkpoint / "finetune.json").read_text())
    data = info.get("data", {}) if isinstance(info.get("data"), dict) else {}
    trained_on = ", ".join(map(str, data.get("genome") or data.get("text") or [])) or "not recorded"
    command = command or info.get("command") or "not recorded"
    held = _held_out(checkpoint)
    held_text = f"{held[0]:.4f} bits/base (best evaluation, step {held[1]})" if held else "not recorded"
    name = repo_id or "org/name"
    lines = [
        "---",
        "library_name: dnahnet",
        "tags:",
        "- dna",
        "- genomics",
        "- h-net",
        "- byte-level",
        "---",
        "",
        f"# {name}",
        "",
        "A tokenizer-free DNA language model with H-Net dynamic chunking, trained with "
        "[dnahnet](https://github.com/) (bases are read as bytes; the model learns its own chunks).",
        "",
        "| | |",
        "|---|---|",
        f"| architecture | `arch_layout` {json.dumps(config.arch_layout)}, `d_model` {config.d_model}, "
        f"{config.n_routed} routed stage(s), chunking {config.chunking} |",
        f"| trained on | {trained_on} |",
        f"| training length | {data.get('seq_len', 'not recorded')} bases per window, "
        f"{info.get('bases_seen', 'not recorded')} bases seen ({info.get('step', '?')} steps) |",
        f"| held-out bits/base | {held_text} |",
        f"| training command | `{command}` |",
        f"| dnahnet version | {info.get('dnahnet', 'not recorded')} |",
    ]
    if finetune:
        lines.append(f"| fine-tuned | task {finetune.get('task')}, mode {finetune.get('mode')}; "
                     f"test metrics in finetune.json |")
    lines += [
        "",
        "## Use",
        "",
        "```python",
        "import dnahnet",
        f'model = dnahnet.load("{name}")  # resolves through the Hugging Face cache; HF_HUB_OFFLINE=1 reads only the cache',
        'bits = model.score(["ACGT..."])  # per-base log2 P',
        'vectors = model.embed(["ACGT..."], pool="mean")',
        "```",
        "",
        f"or `dnahnet score --checkpoint {name} --fasta seqs.fa --out scores.tsv`.",
        "",
    ]
    return "\n".join(lines)


def export_hub_folder(checkpoint: str | os.PathLike, out_dir: str | os.PathLike, repo_id: str | None = None,
                      command: str | None = None) -> Path:
    """Copy the model half of `checkpoint` (and a fine-tuned head) into `out_dir` with a model card.

    Written into a hidden sibling folder and renamed into place, so `out_dir` is
    never half-written; an existing non-empty `out_dir` is refused.
    """
    from dnahnet.io.atomic import staged_folder
    from dnahnet.io.checkpoint import CONFIG, WEIGHTS, read_config

    source = resolve_checkpoint(checkpoint)
    read_config(source)
    if not (source / WEIGHTS).exists():
        raise DnahnetInputError(f"checkpoint has no {WEIGHTS}", file=str(source))
    out = Path(out_dir)
    with staged_folder(out) as partial:
        for name in (CONFIG, WEIGHTS, "train.json", "finetune.json", "head.safetensors"):
            if (source / name).exists():
                shutil.copyfile(source / name, partial / name)
        (partial / "README.md").write_text(model_card(source, repo_id=repo_id, command=command))
    return out
