"""The real-project guard's rule, on its own: which commands it guards, which services each touches, and
when it refuses. Pure: no client, no emulator, no subprocess."""

from __future__ import annotations

import pytest

from nba_phase5_local.cli import build_parser
from nba_phase5_local.project_guard import BIGQUERY, PUBSUB, Action, action_for, enforce, real_services, refusal

BQ_ONLY = {"BIGQUERY_EMULATOR_HOST": "http://127.0.0.1:9050"}
PUBSUB_ONLY = {"PUBSUB_EMULATOR_HOST": "127.0.0.1:8085"}
BOTH = {**BQ_ONLY, **PUBSUB_ONLY}
SEED = Action("seed", (BIGQUERY,), "delete rows")
WORKER = Action("worker", (PUBSUB, BIGQUERY), "consume requests")


def _args(*argv: str):
    return build_parser().parse_args(list(argv))


@pytest.mark.parametrize(
    ("argv", "services"),
    [
        (["seed", "--date", "2025-11-28"], (BIGQUERY,)),
        # Counting ready players reads the feature store; given both counts, only Pub/Sub is touched.
        (["publish-phase4", "--date", "2025-11-28"], (PUBSUB, BIGQUERY)),
        (["publish-phase4", "--date", "2025-11-28", "--players-ready", "3", "--players-total", "4"], (PUBSUB,)),
        (["worker"], (PUBSUB, BIGQUERY)),
    ],
)
def test_each_guarded_command_names_every_service_it_touches(argv: list[str], services: tuple[str, ...]) -> None:
    action = action_for(_args(*argv))
    assert action is not None
    assert (action.command, action.services) == (argv[0], services)


@pytest.mark.parametrize("argv", [["provision"], ["provision", "--check"], ["status", "--date", "2025-11-28"]])
def test_other_commands_are_not_guarded(argv: list[str]) -> None:
    assert action_for(_args(*argv)) is None


def test_seed_says_what_it_would_change() -> None:
    action = action_for(_args("seed", "--date", "2025-11-28"))
    assert action is not None
    assert "2025-11-28" in action.changes
    assert "schedule, feature-store and Phase 4 run-history rows" in action.changes


def test_the_flag_is_parsed_on_each_guarded_command() -> None:
    assert _args("seed", "--date", "2025-11-28", "--allow-real-project", "p").allow_real_project == "p"
    assert _args("worker", "--allow-real-project", "p").allow_real_project == "p"
    assert _args("publish-phase4", "--date", "2025-11-28").allow_real_project is None


@pytest.mark.parametrize(
    ("environ", "real"),
    [({}, [PUBSUB, BIGQUERY]), (BQ_ONLY, [PUBSUB]), (PUBSUB_ONLY, [BIGQUERY]), (BOTH, [])],
)
def test_real_services_are_those_without_an_emulator(environ: dict[str, str], real: list[str]) -> None:
    assert real_services(WORKER, environ) == real


def test_a_blank_emulator_variable_counts_as_unset() -> None:
    assert real_services(SEED, {"BIGQUERY_EMULATOR_HOST": "  "}) == [BIGQUERY]


def test_emulators_for_every_service_allow_the_command() -> None:
    assert refusal(SEED, "nba-props-prod", None, BQ_ONLY) is None
    assert refusal(WORKER, "nba-props-prod", None, BOTH) is None


def test_no_emulator_and_no_flag_is_refused_naming_project_change_and_flag() -> None:
    message = refusal(SEED, "nba-props-prod", None, {})
    assert message is not None
    assert "\n" not in message
    assert "'nba-props-prod'" in message
    assert "BIGQUERY_EMULATOR_HOST" in message
    assert "delete rows" in message
    assert "--allow-real-project nba-props-prod" in message


def test_one_missing_emulator_is_enough_to_refuse() -> None:
    # The worker with only Pub/Sub emulated would still read and write the real project's BigQuery.
    message = refusal(WORKER, "nba-props-prod", None, PUBSUB_ONLY)
    assert message is not None
    assert "BIGQUERY_EMULATOR_HOST" in message
    assert "PUBSUB_EMULATOR_HOST" not in message


def test_the_matching_flag_allows_the_real_project() -> None:
    assert refusal(SEED, "nba-props-prod", "nba-props-prod", {}) is None
    assert refusal(WORKER, "nba-props-prod", "nba-props-prod", PUBSUB_ONLY) is None


@pytest.mark.parametrize("environ", [{}, BOTH])
def test_a_flag_naming_another_project_is_refused(environ: dict[str, str]) -> None:
    message = refusal(SEED, "nba-props-prod", "nba-props-staging", environ)
    assert message is not None
    assert "'nba-props-staging'" in message
    assert "'nba-props-prod'" in message
    assert "--allow-real-project nba-props-prod" in message


def test_enforce_exits_2_with_one_argparse_style_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GCP_PROJECT", "nba-props-prod")
    with pytest.raises(SystemExit) as exit_info:
        enforce(_args("seed", "--date", "2025-11-28"), "python -m nba_phase5_local", environ={})
    assert exit_info.value.code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("python -m nba_phase5_local seed: error: refusing to run seed against real project")


def test_enforce_uses_the_project_given_on_the_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GCP_PROJECT", "from-env")
    args = _args("--project", "given", "worker", "--allow-real-project", "given")
    enforce(args, "prog", environ={})  # returns: the flag names the project the command acts on
    with pytest.raises(SystemExit):
        enforce(_args("worker", "--allow-real-project", "given"), "prog", environ={})


def test_enforce_leaves_unguarded_commands_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    # Not even the project is resolved for them: their own error for a missing project stays theirs.
    monkeypatch.delenv("GCP_PROJECT", raising=False)
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    enforce(_args("status", "--date", "2025-11-28"), "prog", environ={})
