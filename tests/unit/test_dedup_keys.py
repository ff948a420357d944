"""dedup._unique_keys finds repeated (provider, event_id) keys through 64-bit hashes; the rows it
marks are exactly those whose key occurs more than once (counted by Arrow's group-by)."""
import random

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from settlement.dedup import KEY, _unique_keys


def by_group_by(table: pa.Table) -> np.ndarray:
    counts = table.select(KEY).group_by(KEY).aggregate([([], "count_all")])
    times = {(p, e): c for p, e, c in zip(*(counts.column(n).to_pylist() for n in (*KEY, "count_all")))}
    return np.array([times[(p, e)] == 1 for p, e in zip(*(table.column(n).to_pylist() for n in KEY))], bool)


@pytest.mark.parametrize("seed", range(12))
def test_unique_keys_marks_exactly_the_repeated_keys(seed):
    rng = random.Random(seed)
    providers = [f"0x{rng.getrandbits(160):040x}" for _ in range(rng.randint(1, 4))]
    n = rng.randint(0, 400)
    rows = [(rng.choice(providers), str(rng.randint(0, n // 2 + 1))) for _ in range(n)]
    table = pa.table({"provider": [p for p, _ in rows], "event_id": [e for _, e in rows]})
    assert np.array_equal(_unique_keys(table).to_numpy(zero_copy_only=False), by_group_by(table))


def test_unique_keys_of_distinct_keys_and_of_one_row():
    table = pa.table({"provider": ["0xa"] * 1000, "event_id": [str(i) for i in range(1000)]})
    assert pc.all(_unique_keys(table)).as_py()
    assert _unique_keys(table.slice(0, 1)).to_pylist() == [True]
    assert _unique_keys(table.slice(0, 0)).to_pylist() == []
