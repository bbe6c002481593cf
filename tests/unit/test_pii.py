"""The PII check: no real identifier reaches the output, in its own column, another column or free text."""

from __future__ import annotations

import pandas as pd
from conftest import make_mixed_frame, mixed_schema_for

from generators.tabular.schema import ColumnKind, ColumnSpec, Schema
from privacy.pii import find_pii_leaks


def test_regenerated_identifiers_leak_nothing_and_planted_ones_are_found_wherever_they_hide() -> None:
    real = make_mixed_frame(300, seed=0)
    schema = mixed_schema_for(real)
    honest = make_mixed_frame(300, seed=1).assign(
        customer_id=range(5_000, 5_300), email=[f"fresh{i}@example.net" for i in range(300)]
    )
    clean = find_pii_leaks(real, honest, schema)
    assert clean.leaked_cells == 0 and clean.real_values == 600

    leaky = honest.copy()
    leaky.loc[0, "email"] = real.loc[7, "email"]  # a real e-mail in its own column
    leaky.loc[1, "customer_id"] = real.loc[3, "customer_id"]  # a real id in its own column
    leaky.loc[2, "city"] = f"  {real.loc[9, 'email']} "  # a real e-mail moved to another column
    found = find_pii_leaks(real, leaky, schema)
    assert found.by_column == {"email": 1, "customer_id": 1, "city": 1}
    assert found.leaked_cells == 3


def test_a_real_value_inside_free_text_is_found_but_short_values_only_in_their_own_column() -> None:
    real = pd.DataFrame({"ref": ["A12", "B34"], "email": ["ann.lee@corp.example", "bo@x.io"], "note": ["n1", "n2"]})
    schema = Schema((ColumnSpec("ref", ColumnKind.ID, "object"),
                     ColumnSpec("email", ColumnKind.PII, "object", pii_type="email"),
                     ColumnSpec("note", ColumnKind.TEXT, "object")))
    synthetic = pd.DataFrame({"ref": ["C56", "B34"], "email": ["zz@q.example", "yy@q.example"],
                              "note": ["please mail ann.lee@corp.example today", "ask about A12"]})
    found = find_pii_leaks(real, synthetic, schema)
    # "A12" is too short to be told from chance outside its own column; in its own column any real id leaks.
    assert found.by_column == {"ref": 1, "note": 1}
