"""Money of the reports: exact millionths in, a decimal string or a formatted amount out."""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache

from babel.numbers import format_currency, get_currency_precision, list_currencies

from ..ingest.schema import VALUE_SCALE

_CURRENCIES: frozenset[str] | None = None


def currencies() -> frozenset[str]:
    """ISO 4217 codes that Babel knows (cached)."""
    global _CURRENCIES
    if _CURRENCIES is None:
        _CURRENCIES = frozenset(list_currencies())
    return _CURRENCIES


def is_currency(code: str) -> bool:
    """Whether `code` is a known ISO 4217 currency code (upper case)."""
    return isinstance(code, str) and len(code) == 3 and code in currencies()


def to_decimal(micros: int) -> Decimal:
    """An exact Decimal of stored millionths."""
    return Decimal(micros) / VALUE_SCALE


def minor_unit(currency: str) -> int:
    """The currency's smallest unit (a cent) in millionths."""
    return 10 ** (6 - min(get_currency_precision(currency), 6))


def decimal_string(micros: int, currency: str) -> str:
    """The exact amount as a string with at least the currency's minor digits ("9.90")."""
    value = to_decimal(micros)
    digits = get_currency_precision(currency)
    exponent = value.normalize().as_tuple().exponent
    shown = max(digits, -exponent if isinstance(exponent, int) and exponent < 0 else 0)
    return f"{value:.{shown}f}"


# A pure function, and Babel spends about 0.1 ms per call: a dashboard shows some 300
# amounts, most of them the same on every view (the settled days of its chart).
@lru_cache(maxsize=8192)
def display(micros: int, currency: str, locale: str = "en_US") -> str:
    """The amount formatted for people in its currency ("€1,234.50"), exact to the cent."""
    value = to_decimal(micros)
    digits = get_currency_precision(currency)
    if value == value.quantize(Decimal(1).scaleb(-digits)):
        return format_currency(value, currency, locale=locale)
    # Finer than the currency's minor unit: show every stored digit rather than round.
    pattern = "¤#,##0." + "0" * digits + "#" * (6 - digits)
    return format_currency(value, currency, format=pattern, locale=locale, currency_digits=False)
