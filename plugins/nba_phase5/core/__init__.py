"""The rules of a Phase 5 day, with no Airflow and no Google import: the platform's message contract, the game
day, the prediction request, the batch's names, alert kinds and the run's record.
"""
