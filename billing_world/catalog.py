"""Customers, the price book and daily FX rates: the world's static inputs.

Everything the month loop needs per customer (segment, currency, tax rate,
payment method, sign-up date) comes back as numpy arrays of integer codes; the
contract-shaped frames are built here too because nothing later changes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import polars as pl

from billing_world.money import decimal_series, half_up_div
from billing_world.reference import METHOD, PERIODS, SEGMENTS, UNITS_PER_USD, Reference
from billing_world.timeline import DAY_US, MAX_ANCHOR_DAY, Calendar

SEGMENT_SHARE = (0.60, 0.30, 0.10)
MONTHLY_SIGNUP_GROWTH = 1.04
COUNTRY_WEIGHT = {
    "US": 30,
    "CA": 5,
    "MX": 3,
    "BR": 5,
    "AR": 2,
    "GB": 10,
    "DE": 9,
    "FR": 7,
    "NL": 4,
    "ES": 4,
    "IE": 2,
    "SE": 2,
    "IN": 5,
    "JP": 5,
    "KR": 3,
    "AU": 4,
    "SG": 3,
}
LEGAL_SUFFIX = {
    "US": "Inc.",
    "CA": "Inc.",
    "MX": "S.A. de C.V.",
    "BR": "Ltda.",
    "AR": "S.A.",
    "DE": "GmbH",
    "FR": "SAS",
    "NL": "B.V.",
    "ES": "S.L.",
    "SE": "AB",
    "IN": "Pvt. Ltd.",
    "JP": "K.K.",
    "KR": "Co., Ltd.",
    "AU": "Pty Ltd",
    "SG": "Pte. Ltd.",
}
INDUSTRIES = (
    "software",
    "retail",
    "healthcare",
    "financial_services",
    "manufacturing",
    "education",
    "media",
    "logistics",
    "public_sector",
    "hospitality",
)
CHANNELS = ("organic", "paid_search", "partner", "outbound_sales", "referral")
CHANNEL_SHARE_BY_SEGMENT = (
    (0.40, 0.30, 0.10, 0.05, 0.15),
    (0.25, 0.20, 0.20, 0.20, 0.15),
    (0.10, 0.05, 0.25, 0.50, 0.10),
)
NAME_WORDS = (
    (
        "Blue",
        "Silver",
        "North",
        "Bright",
        "Quiet",
        "Rapid",
        "Golden",
        "Iron",
        "Cedar",
        "Maple",
        "Harbor",
        "Summit",
        "Crystal",
        "Granite",
        "Coastal",
        "Prairie",
        "Velvet",
        "Amber",
        "Polar",
        "Lunar",
        "Solar",
        "Crimson",
        "Emerald",
        "Scarlet",
        "Ivory",
        "Cobalt",
        "Copper",
        "Onyx",
        "Willow",
        "Aspen",
        "Birch",
        "Falcon",
        "Orchid",
        "Sable",
        "Tidal",
        "Vivid",
        "Noble",
        "Swift",
        "Clever",
        "Hidden",
        "Open",
        "Urban",
        "Wild",
        "Modern",
        "Little",
        "Grand",
        "Prime",
        "True",
        "Bold",
        "Keen",
    ),
    (
        "River",
        "Peak",
        "Field",
        "Stone",
        "Bridge",
        "Forge",
        "Grove",
        "Harbor",
        "Meadow",
        "Ridge",
        "Canyon",
        "Delta",
        "Beacon",
        "Anchor",
        "Compass",
        "Lantern",
        "Orbit",
        "Pixel",
        "Signal",
        "Vertex",
        "Matrix",
        "Nimbus",
        "Quartz",
        "Rocket",
        "Spark",
        "Tower",
        "Vector",
        "Wave",
        "Atlas",
        "Bloom",
        "Cloud",
        "Dune",
        "Ember",
        "Fjord",
        "Glacier",
        "Horizon",
        "Island",
        "Jungle",
        "Kite",
        "Lake",
        "Mesa",
        "Nova",
        "Oasis",
        "Pine",
        "Quill",
        "Reef",
        "Sierra",
        "Trail",
        "Valley",
        "Zenith",
    ),
    (
        "Analytics",
        "Systems",
        "Labs",
        "Logistics",
        "Health",
        "Foods",
        "Media",
        "Retail",
        "Robotics",
        "Studios",
        "Energy",
        "Capital",
        "Partners",
        "Works",
        "Networks",
        "Software",
        "Security",
        "Dynamics",
        "Solutions",
        "Ventures",
        "Supply",
        "Motors",
        "Textiles",
        "Clinics",
        "Academy",
        "Travel",
        "Freight",
        "Brewing",
        "Farms",
        "Designs",
        "Consulting",
        "Data",
        "Devices",
        "Outfitters",
        "Printing",
        "Pharma",
        "Insurance",
        "Learning",
        "Marine",
        "Metals",
        "Mobility",
        "Optics",
        "Games",
        "Homes",
        "Kitchens",
        "Audio",
        "Bikes",
        "Cosmetics",
        "Imaging",
        "Tools",
    ),
)
PAYMENT_METHOD_MIX = {  # mid-market and enterprise; smb always pays by card
    "EUR": {"sepa_debit": 0.50, "bank_transfer": 0.25, "card": 0.15, "paypal": 0.10},
    "USD": {"ach": 0.50, "bank_transfer": 0.25, "card": 0.15, "paypal": 0.10},
    None: {"bank_transfer": 0.55, "card": 0.30, "paypal": 0.15},
}
UPDATED_SHARE = 0.05

# Price book: five product families, each sold per seat for three billing periods.
FAMILY_SLUGS = ("plan_basic", "plan_pro", "plan_enterprise", "addon_threat_alerts", "addon_encryption")
FAMILY_NAMES = ("Basic plan", "Pro plan", "Enterprise plan", "Real-Time Threat Alerts", "Encryption Module")
FAMILY_TIER = ("basic", "pro", "enterprise", None, None)
MONTHLY_LIST_USD = ("12.00", "29.00", "79.00", "6.00", "4.00")
PERIOD_LABELS = ("monthly", "quarterly", "yearly")
PERIOD_LIST_PERCENT = (100, 95, 85)  # quarter = 3x month less 5 %, year = 12x month less 15 %
PLAN_FAMILIES = 3
ADDON_FAMILIES = (3, 4)
INCREASED_FAMILIES = (1, 2, 3)
INCREASE_PERCENT = 108
FX_WEEKDAY_ONLY = ("BRL", "INR", "KRW")
FX_DAILY_VOLATILITY = 0.0035
FX_MISSING_SHARE = 0.01


def id_width(count: int) -> int:
    return max(6, len(str(count)))


def product_index(family: np.ndarray | int, period: np.ndarray | int) -> np.ndarray:
    return np.asarray(family) * len(PERIODS) + period


@dataclass(frozen=True)
class Customers:
    count: int
    segment: np.ndarray
    currency: np.ndarray
    tax_bp: np.ndarray
    method: np.ndarray
    signup_month: np.ndarray
    signup_day: np.ndarray  # day of month 1..28: billing anchors need no clamping
    frame: pl.DataFrame  # contract columns


def _choice(rng: np.random.Generator, weights: dict, size: int) -> np.ndarray:
    p = np.array(list(weights.values()), dtype=float)
    return rng.choice(len(p), size=size, p=p / p.sum())


def _payment_methods(rng: np.random.Generator, segment: np.ndarray, currency: np.ndarray, ref: Reference) -> np.ndarray:
    method = np.full(len(segment), METHOD["card"])
    for key, mix in PAYMENT_METHOD_MIX.items():
        if key is None:
            mask = ~np.isin(currency, [ref.currency_code(c) for c in PAYMENT_METHOD_MIX if c])
        else:
            mask = currency == ref.currency_code(key)
        mask &= segment != SEGMENTS.index("smb")
        names = list(mix)
        method[mask] = np.array([METHOD[n] for n in names])[_choice(rng, mix, int(mask.sum()))]
    return method


def _names(rng: np.random.Generator, n: int, country: np.ndarray, ref: Reference) -> tuple[pl.Series, pl.Series]:
    sizes = [len(words) for words in NAME_WORDS]
    combos = int(np.prod(sizes))
    pick = rng.permutation(combos)[: min(n, combos)]
    pick = np.concatenate([pick, rng.integers(0, combos, n - len(pick))])
    first, rest = np.divmod(pick, sizes[1] * sizes[2])
    second, third = np.divmod(rest, sizes[2])
    words = [pl.Series(w).gather(i) for w, i in zip(NAME_WORDS, (first, second, third), strict=True)]
    suffix = pl.Series([LEGAL_SUFFIX.get(c, "Ltd.") for c in ref.countries]).gather(country)
    # Past the word combinations a number keeps names unique.
    repeat = pl.Series(np.where(np.arange(n) < combos, "", " " + (np.arange(n) // combos + 1).astype(str)))
    name = words[0] + " " + words[1] + " " + words[2] + repeat + " " + suffix
    domain = (words[0] + "-" + words[1] + repeat.str.replace(" ", "-")).str.to_lowercase()
    return name, domain


def _signups(rng: np.random.Generator, n: int, calendar: Calendar) -> tuple[np.ndarray, np.ndarray]:
    weights = MONTHLY_SIGNUP_GROWTH ** np.arange(calendar.months)
    month = np.sort(rng.choice(calendar.months, size=n, p=weights / weights.sum()))
    return month, rng.integers(1, MAX_ANCHOR_DAY + 1, n)


def build_customers(rng: np.random.Generator, n: int, calendar: Calendar, ref: Reference) -> Customers:
    segment = rng.choice(len(SEGMENTS), size=n, p=SEGMENT_SHARE)
    country = _choice(rng, {c: COUNTRY_WEIGHT.get(c, 1) for c in ref.countries}, n)
    currency = ref.country_currency[country]
    month, day = _signups(rng, n, calendar)
    start_us = calendar.day(month, day) * DAY_US
    # The account exists a little before its first subscription starts at midnight UTC.
    lead = np.minimum(2 * DAY_US, start_us - calendar.start_day * DAY_US)
    created_us = start_us - (rng.random(n) * lead).astype(np.int64)
    room = calendar.end_us - created_us - DAY_US
    updated = (rng.random(n) < UPDATED_SHARE) & (room > 0)
    updated_us = created_us + DAY_US + (rng.random(n) * np.maximum(room, 0)).astype(np.int64)
    channel = np.empty(n, dtype=np.int64)
    for s, share in enumerate(CHANNEL_SHARE_BY_SEGMENT):
        mask = segment == s
        channel[mask] = rng.choice(len(CHANNELS), size=int(mask.sum()), p=share)
    name, domain = _names(rng, n, country, ref)
    ids = pl.Series(np.arange(1, n + 1)).cast(pl.String).str.zfill(id_width(n))
    frame = pl.DataFrame(
        {
            "customer_id": "cus_" + ids,
            "name": name,
            "email": "billing+cus_" + ids + "@" + domain + ".test",
            "country": pl.Series(ref.countries).gather(country),
            "currency": pl.Series(ref.currencies).gather(currency),
            "company_size": pl.Series(SEGMENTS).gather(segment),
            "industry": pl.Series(INDUSTRIES).gather(rng.integers(0, len(INDUSTRIES), n)),
            "acquisition_channel": pl.Series(CHANNELS).gather(channel),
            "created_at": pl.Series(created_us).cast(pl.Datetime("us")),
            "updated_at": pl.Series(np.where(updated, updated_us, 0)).cast(pl.Datetime("us")),
        }
    ).with_columns(updated_at=pl.when(pl.Series(updated)).then(pl.col("updated_at")))
    return Customers(
        count=n,
        segment=segment,
        currency=currency,
        tax_bp=ref.country_tax_bp[country],
        method=_payment_methods(rng, segment, currency, ref),
        signup_month=month,
        signup_day=day,
        frame=frame,
    )


@dataclass(frozen=True)
class PriceBook:
    old: np.ndarray  # [product, currency] minor units before the increase
    new: np.ndarray  # [product, currency] minor units from change_day on
    changed: np.ndarray  # [product] whether the product's price increases
    change_day: int
    frame: pl.DataFrame

    def price(self, product: np.ndarray, currency: np.ndarray, day: np.ndarray) -> np.ndarray:
        """Price of the book row valid on `day` (valid_from <= day < valid_to)."""
        later = self.changed[product] & (day >= self.change_day)
        return np.where(later, self.new[product, currency], self.old[product, currency])


def _monthly_minor(usd: str, currency: str, exponent: int) -> int:
    major = Decimal(usd) * Decimal(str(UNITS_PER_USD[currency]))
    return int((major * 10**exponent).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _price_tables(ref: Reference) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    monthly = np.array(
        [
            [_monthly_minor(usd, c, int(e)) for c, e in zip(ref.currencies, ref.exponent, strict=True)]
            for usd in MONTHLY_LIST_USD
        ],
        dtype=np.int64,
    )
    old = np.empty((len(FAMILY_SLUGS) * len(PERIODS), len(ref.currencies)), dtype=np.int64)
    for period, percent in enumerate(PERIOD_LIST_PERCENT):
        months = int(ref.months_per_period[period])
        old[product_index(np.arange(len(FAMILY_SLUGS)), period)] = half_up_div(monthly * months * percent, 100)
    changed = np.isin(np.arange(len(old)) // len(PERIODS), INCREASED_FAMILIES)
    new = np.where(changed[:, None], half_up_div(old * INCREASE_PERCENT, 100), old)
    return old, new, changed


def _price_rows(
    old: np.ndarray, new: np.ndarray, changed: np.ndarray, book_start: date, change: date, ref: Reference
) -> pl.DataFrame:
    rows = []
    for product in range(len(old)):
        family, period = divmod(product, len(PERIODS))
        base = {
            "product_id": f"{FAMILY_SLUGS[family]}_{PERIODS[period]}",
            "name": f"{FAMILY_NAMES[family]} ({PERIOD_LABELS[period]})",
            "product_type": "plan" if family < PLAN_FAMILIES else "addon",
            "tier": FAMILY_TIER[family],
            "billing_period": PERIODS[period],
        }
        for currency, code in zip(ref.currencies, range(len(ref.currencies)), strict=True):
            versions = [(old, book_start, change if changed[product] else None)]
            if changed[product]:
                versions.append((new, change, None))
            for table, valid_from, valid_to in versions:
                rows.append(
                    {
                        **base,
                        "currency": currency,
                        "minor": int(table[product, code]),
                        "exponent": int(ref.exponent[code]),
                        "valid_from": valid_from,
                        "valid_to": valid_to,
                    }
                )
    frame = pl.DataFrame(rows, schema_overrides={"tier": pl.String, "valid_to": pl.Date})
    amount = decimal_series("unit_amount", frame["minor"].to_numpy(), frame["exponent"].to_numpy())
    return frame.with_columns(amount).select(
        "product_id",
        "name",
        "product_type",
        "tier",
        "billing_period",
        "currency",
        "unit_amount",
        "valid_from",
        "valid_to",
    )


def build_price_book(calendar: Calendar, ref: Reference) -> PriceBook:
    old, new, changed = _price_tables(ref)
    change_day = int(calendar.month_first[calendar.months // 2])
    change = date.fromordinal(date(1970, 1, 1).toordinal() + change_day)
    book_start = date(calendar.start.year - 1, 1, 1)
    frame = _price_rows(old, new, changed, book_start, change, ref)
    return PriceBook(old, new, changed, change_day, frame)


def plan_product_names() -> pl.Series:
    """Product name per product code, in product-code order."""
    return pl.Series(
        [f"{FAMILY_NAMES[f]} ({PERIOD_LABELS[p]})" for f in range(len(FAMILY_SLUGS)) for p in range(len(PERIODS))]
    )


def product_ids() -> pl.Series:
    return pl.Series([f"{FAMILY_SLUGS[f]}_{PERIODS[p]}" for f in range(len(FAMILY_SLUGS)) for p in range(len(PERIODS))])


def build_fx_rates(rng: np.random.Generator, calendar: Calendar, ref: Reference) -> pl.DataFrame:
    days = np.arange(calendar.start_day, calendar.end_day)
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
    parts = [pl.DataFrame({"day": days, "currency": "USD", "usd_per_unit": 1.0})]
    for currency in ref.currencies:
        if currency == "USD":
            continue
        walk = np.cumsum(rng.normal(0.0, FX_DAILY_VOLATILITY, len(days)))
        rate = np.round(np.exp(walk - walk[0]) / UNITS_PER_USD[currency], 10)
        keep = rng.random(len(days)) >= FX_MISSING_SHARE
        if currency in FX_WEEKDAY_ONLY:
            keep &= weekday < 5
        keep[0] = True  # the latest-earlier-rate rule needs a rate on the first day
        parts.append(pl.DataFrame({"day": days[keep], "currency": currency, "usd_per_unit": rate[keep]}))
    return (
        pl.concat(parts)
        .select(
            rate_date=pl.col("day").cast(pl.Int32).cast(pl.Date),
            currency=pl.col("currency"),
            usd_per_unit=pl.col("usd_per_unit").cast(pl.Float64),
        )
        .sort("rate_date", "currency")
    )
