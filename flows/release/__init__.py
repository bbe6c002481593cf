"""What a run leaves behind: its typed manifest, and the report and the Prefect artifacts read from it.

Also the atomic publishing of a release, a refusal or an evaluation, and the privacy budget's ledger.
"""
