"""Protein, nucleotide and k-mer tokenizers with fixed, documented ids.

Every tokenizer starts with the same five specials, so a mask of real positions is always
``ids != PAD``::

    0 <pad>   1 <mask>   2 <cls>   3 <eos>   4 <unk>

then its letters, in the order below (id = 5 + index):

* :class:`ProteinTokenizer`: the 20 standard amino acids ``ACDEFGHIKLMNPQRSTVWY`` (ids
  5-24), then the ambiguity letters ``X B Z U O`` (ids 25-29; X any, B D/N, Z E/Q,
  U selenocysteine, O pyrrolysine). ``vocab_size`` 30.
* :class:`NucleotideTokenizer`: ``A C G T`` (5-8), ``N`` (9), then the IUPAC ambiguity codes
  ``R Y S W K M B D H V`` (10-19). ``vocab_size`` 20.
* :class:`KmerTokenizer`: the ``4^k`` k-mers over ``ACGT`` in lexicographic order (k-mer
  ``x_1 ... x_k`` with digits A=0 C=1 G=2 T=3 has id ``5 + sum_j x_j 4^(k-j)``), one per
  window ``[s·stride, s·stride + k)``. ``vocab_size`` ``5 + 4^k``.

Input is case-insensitive; decoding writes upper case. A letter outside the alphabet raises
``ValueError`` naming the letter, its 0-based position and (if given) the sequence's id;
only ``unknown="map"`` maps it to ``<unk>`` (id 4). ``<cls>`` / ``<eos>`` wrap each sequence
when the tokenizer is built with ``add_cls`` / ``add_eos``. :meth:`decode` drops
``<pad>``, ``<cls>`` and ``<eos>`` and writes ``<mask>`` as ``#`` and ``<unk>`` as ``?``
(characters in no alphabet), so ``decode(encode(s)) == s.upper()`` for every valid ``s``.

Shape letters: ``B`` batch (sequences), ``T`` token positions.

>>> tok = ProteinTokenizer(add_cls=True, add_eos=True)
>>> tok.encode("mKv").tolist(), tok.decode(tok.encode("mKv"))
([2, 15, 13, 22, 3], 'MKV')
>>> ids, mask = tok.encode_batch(["MK", "MKVL"])
>>> ids.tolist(), mask.sum(axis=1).tolist()
([[2, 15, 13, 3, 0, 0], [2, 15, 13, 22, 14, 3]], [4, 6])
>>> KmerTokenizer(3).encode("ACGTA").tolist()   # ACG, CGT, GTA
[11, 32, 49]
"""

from collections.abc import Sequence

import numpy as np

PAD, MASK, CLS, EOS, UNK = 0, 1, 2, 3, 4
SPECIALS = ("<pad>", "<mask>", "<cls>", "<eos>", "<unk>")
#: The 20 standard amino acids, alphabetical by one-letter code.
AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
#: Protein ambiguity and rare letters: any, D/N, E/Q, selenocysteine, pyrrolysine.
PROTEIN_EXTRA = "XBZUO"
DNA = "ACGT"
#: ``N`` (any), then the IUPAC two- and three-base codes.
NUCLEOTIDE_EXTRA = "NRYSWKMBDHV"
_SHOWN = {MASK: "#", UNK: "?"}   # how decode writes the specials it keeps


class AlphabetTokenizer:
    """One id per letter of ``letters`` (id ``5 + index``) after the five specials.

    Args:
        letters: the alphabet, upper case, distinct.
        name: the alphabet's name, for error messages.
        unknown: ``"error"`` (default) raises on a letter outside ``letters``; ``"map"``
            encodes it as ``<unk>``.
        add_cls, add_eos: wrap every encoded sequence in ``<cls>`` ... ``<eos>``.

    Raises:
        ValueError: for repeated or non-upper-case letters, or an unknown ``unknown``.
    """

    def __init__(self, letters: str, *, name: str = "custom", unknown: str = "error",
                 add_cls: bool = False, add_eos: bool = False):
        if not letters or len(set(letters)) != len(letters) or letters != letters.upper() \
                or not letters.isascii():
            raise ValueError(f"letters must be distinct upper-case ASCII letters, got "
                             f"{letters!r}")
        _check_unknown(unknown)
        self.letters, self.name, self.unknown = letters, name, unknown
        self.add_cls, self.add_eos = add_cls, add_eos
        self.tokens = SPECIALS + tuple(letters)
        self._table = np.full(128, -1, np.int32)   # ASCII code -> id, -1 outside the alphabet
        for i, c in enumerate(letters):
            self._table[ord(c)] = self._table[ord(c.lower())] = len(SPECIALS) + i

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def token_to_id(self, token: str) -> int:
        """The id of a letter (either case) or a special such as ``"<mask>"``.

        Raises:
            KeyError: naming the token, if it is not in the vocabulary.
        """
        key = token if token in SPECIALS else token.upper()
        if key not in self.tokens:
            raise KeyError(f"token {token!r} is not in the {self.name} vocabulary "
                           f"{self.tokens}")
        return self.tokens.index(key)

    def encode(self, seq: str, *, seq_id: str | None = None) -> np.ndarray:
        """``[cls?, ids..., eos?]`` as int32 ``[T]``.

        Raises:
            ValueError: naming the first letter outside the alphabet, its 0-based position
                and ``seq_id``, unless the tokenizer maps unknowns.
        """
        return self._wrap(self._letter_ids(seq, seq_id))

    def encode_batch(self, seqs: Sequence[str], length: int | None = None, *,
                     ids: Sequence[str] | None = None,
                     truncate: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Encodes and right-pads ``seqs`` to ``length`` (default: the longest).

        Args:
            seqs: the sequences.
            length: ``T``, the padded length (counting ``<cls>``/``<eos>``).
            ids: one id per sequence, named in errors.
            truncate: cut sequences longer than ``length`` (keeping ``<cls>``/``<eos>``);
                else a longer sequence raises.

        Returns:
            ``(ids [B, T] int32, mask [B, T] bool)`` with ``mask == (ids != PAD)``.

        Raises:
            ValueError: for a bad letter, or a sequence longer than ``length`` without
                ``truncate``.
        """
        names = list(ids) if ids is not None else [None] * len(seqs)
        if len(names) != len(seqs):
            raise ValueError(f"ids must have one entry per sequence ({len(seqs)}), got "
                             f"{len(names)}")
        body = [self._letter_ids(s, n) for s, n in zip(seqs, names)]
        extra = int(self.add_cls) + int(self.add_eos)
        if length is None:
            length = max((len(b) for b in body), default=0) + extra
        if length < extra + 1:
            raise ValueError(f"length must be >= {extra + 1} (room for the specials and one "
                             f"token), got {length}")
        out = np.full((len(body), length), PAD, np.int32)
        for row, (b, name) in enumerate(zip(body, names)):
            if len(b) + extra > length:
                if not truncate:
                    who = f"sequence {name!r}" if name is not None else f"sequence {row}"
                    raise ValueError(f"{who} has {len(b) + extra} tokens, more than length "
                                     f"{length}; pass truncate=True to cut it")
                b = b[:length - extra]
            w = self._wrap(b)
            out[row, :len(w)] = w
        return out, out != PAD

    def decode(self, ids) -> str:
        """The letters of ``ids`` (``[T]``), dropping pad/cls/eos; mask as ``#``, unk ``?``.

        Raises:
            ValueError: naming an id outside ``[0, vocab_size)``.
        """
        ids = _check_ids(ids, self.vocab_size)
        return "".join(self._show(int(i)) for i in ids if i not in (PAD, CLS, EOS))

    def _show(self, i: int) -> str:
        return _SHOWN[i] if i < len(SPECIALS) else self.tokens[i]

    def _letter_ids(self, seq: str, seq_id: str | None) -> np.ndarray:
        if not isinstance(seq, str):
            raise TypeError(f"seq must be a str, got {type(seq).__name__}")
        # One byte per character: a non-ASCII character becomes '?' (never in an alphabet).
        codes = np.frombuffer(seq.encode("ascii", errors="replace"), np.uint8)
        found = self._table[codes]
        bad = np.flatnonzero(found < 0)
        if bad.size:
            if self.unknown != "map":
                raise ValueError(_bad_letter(seq, int(bad[0]), seq_id, self.name,
                                             self.letters))
            found = np.where(found < 0, UNK, found)
        return found.astype(np.int32)

    def _wrap(self, body: np.ndarray) -> np.ndarray:
        head = [CLS] if self.add_cls else []
        tail = [EOS] if self.add_eos else []
        return np.concatenate([np.array(head, np.int32), body, np.array(tail, np.int32)])


class ProteinTokenizer(AlphabetTokenizer):
    """Amino acids: the 20 standard (ids 5-24), then ``X B Z U O`` (25-29); see the module.

    >>> tok = ProteinTokenizer()
    >>> tok.vocab_size, tok.token_to_id("W"), tok.token_to_id("x")
    (30, 23, 25)
    """

    def __init__(self, *, unknown: str = "error", add_cls: bool = False,
                 add_eos: bool = False):
        super().__init__(AMINO_ACIDS + PROTEIN_EXTRA, name="protein", unknown=unknown,
                         add_cls=add_cls, add_eos=add_eos)


class NucleotideTokenizer(AlphabetTokenizer):
    """DNA: ``A C G T`` (ids 5-8), ``N`` (9), IUPAC ``R Y S W K M B D H V`` (10-19).

    >>> NucleotideTokenizer().encode("acgtn").tolist()
    [5, 6, 7, 8, 9]
    """

    def __init__(self, *, unknown: str = "error", add_cls: bool = False,
                 add_eos: bool = False):
        super().__init__(DNA + NUCLEOTIDE_EXTRA, name="nucleotide", unknown=unknown,
                         add_cls=add_cls, add_eos=add_eos)


class KmerTokenizer(AlphabetTokenizer):
    """Overlapping k-mers over ``ACGT``: window ``s`` covers letters ``[s·stride, s·stride+k)``.

    A sequence of ``n >= k`` letters gives ``(n - k) // stride + 1`` tokens (none if
    ``n < k``); letters past the last whole window are dropped, so decoding gives the
    sequence back exactly when ``(n - k) % stride == 0`` (always for ``stride=1``).

    Args:
        k: k-mer length (1 to 12).
        stride: step between windows, 1 to ``k`` (``k`` gives non-overlapping k-mers).
        ambiguous: a window holding an IUPAC ambiguity code (``N R Y ...``): ``"error"``
            raises naming the letter and position; ``"map"`` gives ``<unk>``.
        unknown: a letter outside IUPAC: ``"error"`` raises; ``"map"`` makes its windows
            ``<unk>``.
        add_cls, add_eos: wrap every sequence in ``<cls>`` ... ``<eos>``.

    >>> tok = KmerTokenizer(2, stride=2, ambiguous="map")
    >>> ids = tok.encode("ACNTGG")   # AC, NT (ambiguous), GG
    >>> ids.tolist(), tok.decode(ids), tok.vocab_size
    ([6, 4, 15], 'AC??GG', 21)
    """

    def __init__(self, k: int = 3, *, stride: int = 1, ambiguous: str = "error",
                 unknown: str = "error", add_cls: bool = False, add_eos: bool = False):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= 12:
            raise ValueError(f"k must be an integer in [1, 12], got {k!r}")
        if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) \
                or not 1 <= stride <= k:
            raise ValueError(f"stride must be an integer in [1, k={k}], got {stride!r}")
        _check_unknown(ambiguous, "ambiguous")
        super().__init__(DNA + NUCLEOTIDE_EXTRA, name="nucleotide", unknown=unknown,
                         add_cls=add_cls, add_eos=add_eos)
        self.k, self.stride, self.ambiguous = int(k), int(stride), ambiguous
        self.tokens = SPECIALS + kmer_vocab(self.k)

    def _letter_ids(self, seq: str, seq_id: str | None) -> np.ndarray:
        letters = super()._letter_ids(seq, seq_id)   # validated letter ids, UNK if mapped
        n_win = (len(letters) - self.k) // self.stride + 1 if len(letters) >= self.k else 0
        if n_win == 0:
            return np.zeros(0, np.int32)
        digits = letters - len(SPECIALS)                   # A=0 C=1 G=2 T=3; else not ACGT
        plain = (digits >= 0) & (digits < 4)
        if self.ambiguous != "map":
            covered = n_win * self.stride + self.k - self.stride
            amb = np.flatnonzero(~plain[:covered] & (letters[:covered] != UNK))
            if amb.size:
                raise ValueError(_bad_letter(seq, int(amb[0]), seq_id, "k-mer", DNA,
                                             hint='ambiguous="map"'))
        starts = np.arange(n_win) * self.stride
        window = starts[:, None] + np.arange(self.k)[None, :]
        weights = 4 ** np.arange(self.k - 1, -1, -1)
        codes = (np.where(plain, digits, 0)[window] * weights).sum(axis=1) + len(SPECIALS)
        return np.where(plain[window].all(axis=1), codes, UNK).astype(np.int32)

    def decode(self, ids) -> str:
        """The sequence the k-mers overlap into: the first k-mer, then the last ``stride``
        letters of each next one (pad/cls/eos dropped). An ``<unk>`` window adds ``?`` for
        its letters, so a plain letter that only it contributes shows as ``?`` too."""
        ids = [int(i) for i in _check_ids(ids, self.vocab_size) if i not in (PAD, CLS, EOS)]
        parts = [self._show(i) * self.k if i < len(SPECIALS) else self.tokens[i] for i in ids]
        return "".join(p if j == 0 else p[-self.stride:] for j, p in enumerate(parts))


def kmer_vocab(k: int, alphabet: str = DNA) -> tuple[str, ...]:
    """All ``len(alphabet)^k`` k-mers in lexicographic order of ``alphabet``'s letters.

    >>> kmer_vocab(2)[:5]
    ('AA', 'AC', 'AG', 'AT', 'CA')
    """
    words = [""]
    for _ in range(k):
        words = [w + c for w in words for c in alphabet]
    return tuple(words)


def _check_unknown(value, name: str = "unknown") -> None:
    if value not in ("error", "map"):
        raise ValueError(f"{name} must be 'error' or 'map', got {value!r}")


def _check_ids(ids, vocab_size: int) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.ndim != 1 or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
        raise ValueError(f"ids must be a 1-D integer array [T], got shape {ids.shape} "
                         f"dtype {ids.dtype}")
    bad = np.flatnonzero((ids < 0) | (ids >= vocab_size))
    if bad.size:
        raise ValueError(f"ids must lie in [0, {vocab_size}), got {int(ids[bad[0]])} at "
                         f"position {int(bad[0])}")
    return ids


def _bad_letter(seq: str, pos: int, seq_id, name: str, letters: str,
                hint: str = 'unknown="map"') -> str:
    where = f"sequence {seq_id!r}: " if seq_id is not None else ""
    return (f"{where}letter {seq[pos]!r} at position {pos} is not in the {name} alphabet "
            f"{letters}; pass {hint} to encode it as <unk> (id {UNK})")


__all__ = ["PAD", "MASK", "CLS", "EOS", "UNK", "SPECIALS", "AMINO_ACIDS", "PROTEIN_EXTRA",
           "DNA", "NUCLEOTIDE_EXTRA", "AlphabetTokenizer", "ProteinTokenizer",
           "NucleotideTokenizer", "KmerTokenizer", "kmer_vocab"]
