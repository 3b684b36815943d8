"""Byte vocabulary and DNA normalisation.

The model reads raw bytes (vocabulary 256), so DNA is simply ASCII: `A C G T N`.
Normalisation upper-cases bases and maps IUPAC ambiguity codes to `N`, but keeps
the soft-mask bit (lower case = repeat) as a separate boolean track instead of
throwing it away.
"""

from __future__ import annotations

import numpy as np

VOCAB_SIZE = 256
DNA_BASES = b"ACGT"
N_BYTE = ord("N")

_IUPAC = set(b"ACGTNRYSWKMBDHVUacgtnryswkmbdhvu")
_IUPAC_TABLE = np.zeros(256, dtype=bool)
_IUPAC_TABLE[list(_IUPAC)] = True
# Gap characters that some FASTA writers use; they are treated as N, not as errors.
_IUPAC_TABLE[[ord("-"), ord("."), ord("*")]] = True

_UPPER_TABLE = np.full(256, N_BYTE, dtype=np.uint8)
for _b in b"ACGT":
    _UPPER_TABLE[_b] = _b
    _UPPER_TABLE[_b + 32] = _b
_UPPER_TABLE[ord("U")] = ord("T")
_UPPER_TABLE[ord("u")] = ord("T")

_COMPLEMENT = np.arange(256, dtype=np.uint8)
for _a, _b in zip(b"ACGTNacgtn", b"TGCANtgcan"):
    _COMPLEMENT[_a] = _b


def as_bytes_array(seq: str | bytes | bytearray | np.ndarray) -> np.ndarray:
    """View a sequence as a uint8 array without copying when possible."""
    if isinstance(seq, np.ndarray):
        return seq.astype(np.uint8, copy=False)
    if isinstance(seq, str):
        seq = seq.encode("ascii", errors="strict")
    return np.frombuffer(bytes(seq), dtype=np.uint8)


def invalid_dna_positions(seq: str | bytes | np.ndarray) -> np.ndarray:
    """0-based positions of characters that are not IUPAC nucleotide codes."""
    arr = as_bytes_array(seq)
    return np.flatnonzero(~_IUPAC_TABLE[arr])


def normalize_dna(seq: str | bytes | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (upper-case ACGTN bytes, soft-mask flags) for a raw DNA sequence.

    Lower-case letters set the soft-mask flag; every code other than ACGT(U)
    becomes N. The caller decides what to do with non-IUPAC characters
    (see `invalid_dna_positions`); here they become N as well.
    """
    arr = as_bytes_array(seq)
    softmask = (arr >= ord("a")) & (arr <= ord("z"))
    return _UPPER_TABLE[arr], softmask


def reverse_complement(seq: str | bytes | np.ndarray):
    """Reverse complement, returning the same type it was given (case kept)."""
    arr = as_bytes_array(seq)
    out = _COMPLEMENT[arr[::-1]]
    if isinstance(seq, str):
        return out.tobytes().decode("ascii")
    if isinstance(seq, (bytes, bytearray)):
        return out.tobytes()
    return out


def is_n(arr: np.ndarray) -> np.ndarray:
    """Boolean mask of N positions in a normalised byte array."""
    return arr == N_BYTE
