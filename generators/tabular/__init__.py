"""The table's data model every package speaks: schema and kinds, inference, formats, encoder, errors.

No model code here; `validation` and `privacy` import only this part of `generators`.
"""
