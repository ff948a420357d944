"""Great Expectations on tables too large for pandas: DuckDB picks the rows GX must see.

A suite over a wide batch's events or lines would make GX copy, hash and check millions of rows
of Python objects (minutes, gigabytes). Instead, each expectation of the suite is compiled here
into a SQL predicate that holds for every row the expectation could find unexpected (a superset:
a row it picks may still pass), and GX runs the whole suite on those rows alone, as pandas.
GX stays the judge of every row it sees; rows no predicate picks are rows no expectation would
report, so the unexpected counts, values and offending rows are GX's own. The figures that
depend on the whole table (row counts, element and missing counts, percentages) are GX's too:
table-level expectations run on a frame of the table's row count, and each column result's
counts are restated over the whole table by GX's own formulas (`restate_counts`).

An expectation this module cannot compile (another type, `mostly`, a value set whose types do
not match the column) picks every row: slower, never wrong.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from sinks.catalog import sql_string

TABLE_LEVEL = frozenset({"expect_table_row_count_to_be_between", "expect_table_row_count_to_equal"})
"""Expectations on the table as a whole: run on a frame with the table's row count."""

EVERY_ROW = "TRUE"

_INTEGER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                  "UINTEGER", "UBIGINT", "UHUGEINT")


@dataclass(frozen=True)
class SqlTable:
    """A table of the suites, as a DuckDB query (never materialized whole)."""
    sql: str
    """SELECT of every row and column the suite expects on (no ORDER BY)."""
    order_by: str
    """ORDER BY of the pandas frame GX would have been given: the first offending rows GX
    reports are the same."""
    params: dict
    """Named parameters of `sql`."""


@dataclass(frozen=True)
class Compiled:
    """One expectation in SQL."""
    suspect: str
    """Predicate over a row: true for every row the expectation could report (and maybe more)."""
    keys: str | None = None
    """A CTE over the table `t` the predicate reads, `name AS (SELECT ...)`, or None."""
    missing: str | None = None
    """Predicate: the row counts as missing for GX (element_count - nonnull_count), or None when
    GX reports no missing count for this expectation."""


def _quote(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def _is_numeric(sql_type: str) -> bool:
    return sql_type.startswith(_INTEGER_TYPES) or sql_type.startswith("DECIMAL") or sql_type in (
        "DOUBLE", "FLOAT", "REAL")


def _is_integral(sql_type: str) -> bool:
    return sql_type.startswith(_INTEGER_TYPES) or (sql_type.startswith("DECIMAL") and sql_type.endswith(",0)"))


def _within(col: str, bound, is_min: bool, strict: bool) -> str | None:
    """SQL: an integer column's value is on the right side of `bound`, both as Python compares
    an int with it (exactly) and as numpy compares an int64 with it (through float64): GX
    compares a column of ints with nulls the first way and one without the second; a row either
    way could find out of range is picked. GX keeps bounds as floats (2**63 - 1 becomes 2.0**63)."""
    if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not math.isfinite(bound):
        return None
    if is_min:  # v >= b  <=>  v >= ceil(b);  v > b  <=>  v >= floor(b) + 1
        exact, op = (math.floor(bound) + 1 if strict else math.ceil(bound)), (">" if strict else ">=")
        exact_sql = f"{col} >= {exact}"
    else:       # v <= b  <=>  v <= floor(b);  v < b  <=>  v <= ceil(b) - 1
        exact, op = (math.ceil(bound) - 1 if strict else math.floor(bound)), ("<" if strict else "<=")
        exact_sql = f"{col} <= {exact}"
    return f"({exact_sql} AND CAST({col} AS DOUBLE) {op} CAST('{float(bound)!r}' AS DOUBLE))"


def _literal(value, sql_type: str) -> str | None:
    """`value` as a SQL literal comparable with a column of `sql_type` exactly as Python compares
    it with that column's pandas values; None when it is not (another type)."""
    if isinstance(value, bool):
        return ("TRUE" if value else "FALSE") if sql_type == "BOOLEAN" else None
    if isinstance(value, int):
        return str(value) if (sql_type.startswith(_INTEGER_TYPES) or sql_type.startswith("DECIMAL")) else None
    if isinstance(value, str):
        return sql_string(value) if sql_type == "VARCHAR" else None
    return None


def compile_expectation(config, types: dict[str, str], position: int) -> Compiled:
    """SQL of one GX expectation configuration (`config.type`, `config.kwargs`) over a table with
    column types `types`; `position` names its window column."""
    kind, kwargs = config.type, config.kwargs
    if kind in TABLE_LEVEL:
        return Compiled("FALSE")
    if kwargs.get("mostly", 1) != 1 or kwargs.get("row_condition"):
        return Compiled(EVERY_ROW)
    column = kwargs.get("column")
    if column is not None and column not in types:
        return Compiled(EVERY_ROW)  # GX reports the missing column itself
    col = _quote(column) if column is not None else None
    if kind == "expect_column_values_to_be_null":
        return Compiled(f"{col} IS NOT NULL")
    if kind == "expect_column_values_to_not_be_null":
        return Compiled(f"{col} IS NULL")
    missing = f"{col} IS NULL" if col else None
    if kind == "expect_column_values_to_match_regex" and types[column] == "VARCHAR":
        # RE2 and Python agree on what a row of the regex set matches, but for "$" before a
        # final newline, which RE2 does not match: such a row is picked and GX judges it
        return Compiled(f"NOT regexp_matches({col}, {sql_string(kwargs['regex'])})", missing=missing)
    if kind == "expect_column_values_to_be_in_set":
        literals = [_literal(v, types[column]) for v in kwargs.get("value_set") or []]
        if any(v is None for v in literals):
            return Compiled(EVERY_ROW, missing=missing)
        if not literals:
            return Compiled(f"{col} IS NOT NULL", missing=missing)
        return Compiled(f"{col} NOT IN ({', '.join(literals)})", missing=missing)
    if kind == "expect_column_values_to_be_between" and _is_integral(types[column]):
        bounds = []
        for key, strict, is_min in (("min_value", "strict_min", True), ("max_value", "strict_max", False)):
            value = kwargs.get(key)
            if value is None:
                continue
            condition = _within(col, value, is_min, bool(kwargs.get(strict)))
            if condition is None:
                return Compiled(EVERY_ROW, missing=missing)
            bounds.append(condition)
        if not bounds:
            return Compiled(EVERY_ROW, missing=missing)
        return Compiled(f"NOT ({' AND '.join(bounds)})", missing=missing)
    if kind == "expect_column_pair_values_to_be_equal":
        a, b = kwargs.get("column_A"), kwargs.get("column_B")
        if a not in types or b not in types or kwargs.get("ignore_row_if", "both_values_are_missing") != \
                "both_values_are_missing":
            return Compiled(EVERY_ROW)
        if _is_numeric(types[a]) != _is_numeric(types[b]) or (
                not _is_numeric(types[a]) and types[a] != types[b]):
            return Compiled(EVERY_ROW)  # Python compares these otherwise than SQL would
        a, b = _quote(a), _quote(b)
        return Compiled(f"{a} IS DISTINCT FROM {b}", missing=f"({a} IS NULL AND {b} IS NULL)")
    if kind == "expect_compound_columns_to_be_unique":
        columns = kwargs.get("column_list") or []
        if not columns or any(c not in types for c in columns) or kwargs.get(
                "ignore_row_if", "all_values_are_missing") != "all_values_are_missing":
            return Compiled(EVERY_ROW)
        quoted = ", ".join(_quote(c) for c in columns)
        name = f"__repeated_keys_{position}"
        return Compiled(f"(({quoted}) IN (SELECT * FROM {name}) OR "
                        f"{' OR '.join(f'{_quote(c)} IS NULL' for c in columns)})",
                        keys=f"{name} AS (SELECT {quoted} FROM t GROUP BY ALL HAVING count(*) > 1)",
                        missing="(" + " AND ".join(f"{_quote(c)} IS NULL" for c in columns) + ")")
    return Compiled(EVERY_ROW, missing=missing)


POSITION = "__position"
ROWS = "__rows"


def missing_column(position: int) -> str:
    return f"__missing_{position}"


def plan(table: SqlTable, configs: list, types: dict[str, str]) -> str:
    """One query over the table, computed once: the rows GX must see, numbered in the frame's
    order (POSITION), then one row of ROWS (the table's row count) and each expectation's
    missing count (missing_column(i), NULL where GX reports none)."""
    compiled = [compile_expectation(c, types, i) for i, c in enumerate(configs)]
    picked = " OR ".join(f"({c.suspect})" for c in compiled) or "FALSE"
    order = ", ".join(_quote(c) for c in types) if table.order_by == "ALL" else table.order_by
    ctes = [f"t AS MATERIALIZED ({table.sql})", *(c.keys for c in compiled if c.keys)]
    missing = "".join(f", count(*) FILTER (WHERE {c.missing}) AS {missing_column(i)}"
                      for i, c in enumerate(compiled) if c.missing)
    return (f"WITH {', '.join(ctes)}, "
            f"picked AS (SELECT *, row_number() OVER (ORDER BY {order}) AS {POSITION} FROM t "
            f"WHERE coalesce({picked}, TRUE)), "
            f"counts AS (SELECT count(*) AS {ROWS}{missing} FROM t) "
            f"SELECT * FROM picked UNION ALL BY NAME SELECT * FROM counts ORDER BY {POSITION} NULLS LAST")


def restate_counts(result: dict, element_count: int, missing_count: int | None) -> None:
    """Restate one GX map-expectation result (SUMMARY format) computed on the picked rows over
    the whole table, as GX's `_format_map_output` states them; the unexpected figures stay."""
    if "element_count" not in result:
        return
    unexpected = result.get("unexpected_count")
    result["element_count"] = element_count
    skip_missing = "missing_count" not in result or missing_count is None
    nonnull = None if skip_missing else element_count - missing_count
    total = nonmissing = missing_percent = None
    if unexpected is not None and element_count > 0:
        total = unexpected / element_count * 100
        if not skip_missing:
            missing_percent = missing_count / element_count * 100
            nonmissing = unexpected / nonnull * 100 if nonnull > 0 else None
        else:
            nonmissing = total
    result["unexpected_percent"] = nonmissing
    if not skip_missing:
        result["missing_count"] = missing_count
        result["missing_percent"] = missing_percent
        result["unexpected_percent_total"] = total
        result["unexpected_percent_nonmissing"] = nonmissing
