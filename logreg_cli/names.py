"""Class names as a person reads them, and paths as a terminal can show them.

Every class name enters through class_name(), wherever it was typed: a class folder's name,
a labels-file cell, a feature file's or a model's classes, --positive, --class. So names a
person reads as the same are the same class: Unicode NFC and NFD spellings (macOS writes
folder names in NFD, `Ü` as U+0055 U+0308), a byte-order mark, and whitespace or a CR around
the name. Letter case is kept: 'Cat' and 'cat' are two classes.
"""

import codecs
import re
import unicodedata

BOM = "\ufeff"
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# What shown() escapes: lone surrogates, and control characters but the tab (a newline or CR
# in a file name would split a one-line message, an ESC would drive the terminal).
NOT_SHOWN = re.compile("[\x00-\x08\x0a-\x1f\x7f\ud800-\udfff]")
CONTROL_ESCAPES = {"\n": "\\n", "\r": "\\r"}


def class_name(text):
    """A name as typed -> the class it names (str -> str): NFC, BOM and surrounding
    whitespace removed."""
    return unicodedata.normalize("NFC", text.replace(BOM, "").strip())


def is_text(name):
    """False when name holds a lone surrogate: bytes that were not UTF-8 (os.fsdecode makes
    b'\\xff' the character U+DCFF), which no UTF-8 output can carry."""
    return LONE_SURROGATE.search(name) is None


def shown(text):
    """text with each undecodable byte escaped as \\xNN (any other lone surrogate as \\uNNNN),
    and each control character but the tab as \\n, \\r or \\xNN, so that any path can be
    printed on any UTF-8 stream, within one line."""
    return NOT_SHOWN.sub(_escape, text)


def _escape(match):
    character = match.group()
    if character in CONTROL_ESCAPES:
        return CONTROL_ESCAPES[character]
    code = ord(character)
    if code < 0x80:
        return f"\\x{code:02x}"
    if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's stand-in for the byte code - 0xDC00
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}"


SHOWN_ERRORS = "logreg-shown"


def _shown_error_handler(error):
    """codecs error handler: what shown() does, for text a stream cannot encode (other
    characters a non-UTF-8 stream lacks become \\uNNNN, as with 'backslashreplace')."""
    if not isinstance(error, UnicodeEncodeError):
        raise error
    unencodable = error.object[error.start:error.end]
    return "".join(shown(char) if LONE_SURROGATE.match(char) else f"\\u{ord(char):04x}"
                   if ord(char) <= 0xFFFF else f"\\U{ord(char):08x}"
                   for char in unencodable), error.end


codecs.register_error(SHOWN_ERRORS, _shown_error_handler)


# What makes one of two class names "the rest": the other name with a negating prefix
# (non-cat for cat), or a generic name. The other class is then the positive one.
NEGATING_PREFIXES = ("non-", "not-", "not_", "no-")
GENERIC_REST = frozenset({"other", "background", "negative", "none"})


def default_positive(classes):
    """The positive class of two class names when one is the rest of the other -> str, or
    None: 'cat' for ['cat', 'non-cat'] (or 'not_cat', 'no-cat'), 'dog' for ['background',
    'dog']. Letter case is ignored in this comparison only."""
    if len(classes) != 2:
        return None
    first, second = classes
    first_is_rest, second_is_rest = _is_rest(first, second), _is_rest(second, first)
    if first_is_rest == second_is_rest:
        return None
    return second if first_is_rest else first


def _is_rest(name, other):
    name, other = name.casefold(), other.casefold()
    return name in GENERIC_REST or any(name == prefix + other for prefix in NEGATING_PREFIXES)
