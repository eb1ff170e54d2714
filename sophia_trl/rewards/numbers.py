"""
Numbers read as written, before math-verify reads them: spaced thousands, scientific notation, zeros next to words.

math-verify reads an answer as a LaTeX expression, where a space or nothing between two terms is a product and `e` is
Euler's number. Written numbers do not follow those rules:

| written      | math-verify alone        | as written                              |
|--------------|--------------------------|-----------------------------------------|
| `10 000`     | 10 x 0 = 0               | 10000 (groups of three digits)          |
| `1.2e3`      | 1.2 x e x 3 = 9.79       | 1200                                    |
| `9.3 \\times 10^{2}` | 930.0000000000001 != 930 | 930                                 |
| `it is 0`    | i x t x i x s x 0 = 0    | not a number: it must not match 0       |

[`read_as_written`] rewrites the first three so that math-verify reads the number written; [`zero_next_to_word`] and
[`zero_written_as_one`] let the numerical scorer check that a zero beside a word is the answer itself (`0 cm`) and not
a factor that wipes out a product of words (`it is 0`). [`join_spaced_thousands`] is shared with evaluation.

This module imports nothing but the standard library.
"""

import re
from decimal import Decimal

__all__ = ["join_spaced_thousands", "number_value", "read_as_written", "zero_next_to_word", "zero_written_as_one"]

# What separates digit groups or words without being an operator: spaces (also no-break, thin and narrow no-break
# spaces) and LaTeX's spacing commands `\,`, `\;`, `\:`, `\!`, `\ `, `~`, `\quad`, `\qquad`.
_SPACE = r"(?:[ \t\u00a0\u2009\u202f]|\\[,;:! ]|~|\\q?quad(?![A-Za-z]))"
# Groups of exactly three digits after a first group of one to three, with a space between each: "10 000",
# "1 234 567.5", "10\,000". The first group starts a number (no digit, point or comma before it); the last group
# ends it.
_SPACED_THOUSANDS_RE = re.compile(rf"(?<![\d.,])\d{{1,3}}(?:{_SPACE}\d{{3}})+(?![\d])")
_SPACE_RE = re.compile(_SPACE)
# Scientific notation: a decimal mantissa (not part of a longer word, number or exponent), then `e` or `E` and an
# integer ("1.2e3", "1.20E-4", "5e2"), or a product with a power of ten ("9.3 \times 10^{2}", "2.5\cdot10^-3",
# "4 × 10^6", "1.5*10^{4}").
_SCIENTIFIC_RE = re.compile(
    r"(?<![\w.^\\])(?P<mantissa>\d+(?:\.\d*)?|\.\d+)"
    r"(?:[eE](?P<e>[-+]?\d+)(?!\w|\.\d)"
    r"|\s*(?:\\times|\\cdot|\u00d7|\*)\s*10\s*\^\s*(?:\{\s*(?P<braced>[-+]?\d+)\s*\}|(?P<power>[-+]?\d+)))"
)
_LARGEST_PLAIN_EXPONENT = 30  # beyond 10^30, a number is written as a power of ten rather than with all its digits
# A numeral whose value is zero: "0", "00", "0.0", the "0" of "is 0." (not the 0 of "10", "2.0" or "0.5").
_ZERO = r"(?<!\d)(?<!\d\.)0+(?:\.0+)?(?!\d|\.\d)"
# A word (letters not preceded by a backslash, so `\times` and `\cdot` are not words), a number, or a closed group,
# then spaces only, then the zero: "no 0", "x0", "cm 0", "3 0", "\text{none} 0".
_AFTER_WORD_RE = re.compile(rf"(?:(?<![A-Za-z\\])[A-Za-z]+|\d|[)\]}}]){_SPACE}*{_ZERO}")
# The zero, spaces only, then a word, a number or an opening bracket: "0 x", "0x", "0 people", "0 cm".
_BEFORE_WORD_RE = re.compile(rf"{_ZERO}(?={_SPACE}*[A-Za-z\d(])")
_ZERO_RE = re.compile(_ZERO)
# One plain number: sign, digits (thousands grouped by commas, or by spaces once joined), decimals, e-notation.
_NUMBER_RE = re.compile(r"[+-]?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)?(?:\.\d+)?(?:(?<=\d)[eE][-+]?\d+)?")


def join_spaced_thousands(text: str) -> str:
    """
    Writes each number whose digits are grouped by threes with spaces without the spaces: `10 000` -> `10000`.

    A space between digit groups is a thousands separator when every group after the first has exactly three digits
    and the first has one to three, as in SI style (`45 000`, `1 234 567.5`); spaces may be ordinary, no-break, thin
    or narrow no-break ones, or LaTeX's `\\,`, `\\;`, `\\ ` and `~`. Other spaced digits are kept as they are
    (`3 4`, `2007 2008`, `10 00`).

    Args:
        text (`str`):
            An answer or a solution.

    Returns:
        `str`: The text with those numbers written without spaces.

    Example:
    ```python
    >>> join_spaced_thousands("45 000"), join_spaced_thousands("10\\\\,000 cm"), join_spaced_thousands("3 4")
    ('45000', '10000 cm', '3 4')
    ```
    """
    return _SPACED_THOUSANDS_RE.sub(lambda match: _SPACE_RE.sub("", match.group(0)), text)


def read_as_written(text: str) -> str:
    """
    Rewrites the numbers of `text` so that math-verify reads the number written: spaced thousands joined (see
    [`join_spaced_thousands`]) and scientific notation written out exactly, whether in e-notation (`1.2e3`,
    `1.20E3`, `5.5e-3`) or as a product with a power of ten (`9.3 \\times 10^{2}`, `2.5\\cdot10^{-3}`, `4 × 10^6`).
    A lone `e` (`2e`, `e^2`) stays Euler's number. Written out exactly, `9.3 \\times 10^{2}` is `930`, where
    math-verify alone computes 930.0000000000001 in floating point and finds it different from 930.

    Args:
        text (`str`):
            An answer or a solution, without `$`.

    Returns:
        `str`: The rewritten text.

    Example:
    ```python
    >>> read_as_written("10 000"), read_as_written("1.20e3"), read_as_written("2.5E-4"), read_as_written("2e")
    ('10000', '1200', '0.00025', '2e')
    >>> read_as_written("9.3 \\\\times 10^{2} m"), read_as_written("1e40")
    ('930 m', '1\\\\times10^{40}')
    ```
    """
    return _SCIENTIFIC_RE.sub(_written_out, join_spaced_thousands(text))


def _written_out(match: re.Match) -> str:
    """A `_SCIENTIFIC_RE` match as a plain decimal, exactly (`9.3e2` -> `930`), or as an integer times a power of ten
    when the exponent is large (`1e40` -> `1\\times10^{40}`)."""
    whole, _, decimals = match["mantissa"].partition(".")
    digits = int(whole + decimals or "0")
    exponent = int(match["e"] or match["braced"] or match["power"]) - len(decimals)
    if abs(exponent) > _LARGEST_PLAIN_EXPONENT:
        return f"{digits}\\times10^{{{exponent}}}"
    return format(Decimal(digits).scaleb(exponent), "f")


def number_value(text: str) -> float | None:
    """
    The value of a text that is one plain number as written, or `None`: a sign, digits with thousands grouped by
    commas or spaces (`1,000`, `45 000`), decimals and e-notation (`1.2e3`); `"7"` and `"7.0"` are both 7.0.

    Example:
    ```python
    >>> number_value("45 000"), number_value("-1,234.5"), number_value("1.2e3"), number_value("7 cm")
    (45000.0, -1234.5, 1200.0, None)
    ```
    """
    plain = join_spaced_thousands(text.strip())
    if not re.search(r"\d", plain) or not _NUMBER_RE.fullmatch(plain):
        return None
    return float(plain.replace(",", ""))


def zero_next_to_word(text: str) -> bool:
    """
    Whether `text` has a zero written next to a word or a number with only spaces between, where math-verify reads a
    product (`no 0`, `it is 0`, `x0`, `0 x`, `3 0`) or a unit (`0 cm`).

    Args:
        text (`str`):
            An answer, as given to math-verify (see [`read_as_written`]).

    Returns:
        `bool`: `True` when such a zero is there.

    Example:
    ```python
    >>> zero_next_to_word("it is 0"), zero_next_to_word("0 cm"), zero_next_to_word("x = 0"), zero_next_to_word("3 \\\\times 0")
    (True, True, False, False)
    ```
    """
    return bool(_AFTER_WORD_RE.search(text) or _BEFORE_WORD_RE.search(text))


def zero_written_as_one(text: str) -> str:
    """
    `text` with every zero numeral written as `1` (`it is 0` -> `it is 1`, `0 cm` -> `1 cm`; `10` and `2.0` keep
    their digits).

    An answer that is a zero (with a unit) reads as 1 once its zero is written as 1, while a product of words and a
    zero does not: this is how the numerical scorer tells `0 cm` from `it is 0`.

    Example:
    ```python
    >>> zero_written_as_one("it is 0"), zero_written_as_one("0.0 cm"), zero_written_as_one("10")
    ('it is 1', '1 cm', '10')
    ```
    """
    return _ZERO_RE.sub("1", text)
