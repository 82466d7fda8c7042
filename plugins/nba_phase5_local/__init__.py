"""What never ships to Composer: the stand-in worker, seeding, Phase 4's test publisher, provisioning, the status
report and the ``nba-phase5`` CLI that runs them on a developer's machine.
"""
