"""A run's last metadata step: the rows that have a GPS position and no place yet get one, named for all of them
in one batch (``places.locate``: two offline GeoNames tables, loaded only when some row needs them)."""
from __future__ import annotations

import time

import numpy as np
import pyarrow as pa

from ..search.places import locate
from ..store.database import Store
from ..store.tables import PLACE_COLUMNS
from .summary import IndexSummary


def unplaced(table) -> dict[str, tuple[float, float]]:
    """path -> (lat, lon) of ``table``'s rows with a position (not null, not NaN) and a null place."""
    if "place" not in table.table.schema.names:
        return {}
    out = {}
    for batch in table.scan(["path", "lat", "lon", "place"]):
        lat = batch.column("lat").to_numpy(zero_copy_only=False).astype(float)  # null -> NaN
        lon = batch.column("lon").to_numpy(zero_copy_only=False).astype(float)
        todo = np.isfinite(lat) & np.isfinite(lon) & np.asarray(batch.column("place").is_null(), bool)
        paths = batch.column("path").to_pylist()
        out.update((paths[i], (float(lat[i]), float(lon[i]))) for i in np.flatnonzero(todo))
    return out


def fill_places(store: Store, tables: dict, summary: IndexSummary) -> None:
    """Name every position no place is stored for yet, in every table, with one ``locate`` call."""
    started = time.time()
    wanted = {role: unplaced(table) for role, table in tables.items()}
    points = sorted({point for rows in wanted.values() for point in rows.values()})
    if not points:
        return
    named = dict(zip(points, locate(points)))
    for role, table in tables.items():
        paths = sorted(wanted[role])
        for start in range(0, len(paths), store.commit_rows):
            rows = table.rows_of(paths[start:start + store.commit_rows])
            order = rows.column("path").to_pylist()
            for name in PLACE_COLUMNS:
                values = [named[wanted[role][p]][name] for p in order]
                rows = rows.set_column(rows.schema.get_field_index(name), name,
                                       pa.array(values, table.schema.field(name).type))
            table.put(rows)
            store.commit()
    summary.placed = len(points)
    summary.places_s = round(time.time() - started, 2)
