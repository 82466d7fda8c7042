"""Talking to Google Cloud below Airflow: the SQL templates and their typed parameters, the client factories, and
the tables this package owns (event inbox, request ledger, consolidation of the staged rows).
"""
