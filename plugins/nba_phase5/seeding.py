"""A realistic, reproducible game day for the local stack and tests.

Writes the schedule (a slate of games), one feature-store row per player of the teams that play, and
Phase 4's run-history success row. Everything is derived from the date and the player's lookup, so the
same arguments always give the same rows. Re-seeding a date replaces that date only.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from nba_phase5 import config
from nba_phase5.bq import delete_date, insert_rows

if TYPE_CHECKING:
    from google.cloud import bigquery

TEAMS = (
    ("ATL", "State Farm Arena"),
    ("BOS", "TD Garden"),
    ("BKN", "Barclays Center"),
    ("CHA", "Spectrum Center"),
    ("CHI", "United Center"),
    ("CLE", "Rocket Arena"),
    ("DAL", "American Airlines Center"),
    ("DEN", "Ball Arena"),
    ("DET", "Little Caesars Arena"),
    ("GSW", "Chase Center"),
    ("HOU", "Toyota Center"),
    ("IND", "Gainbridge Fieldhouse"),
    ("LAC", "Intuit Dome"),
    ("LAL", "Crypto.com Arena"),
    ("MEM", "FedExForum"),
    ("MIA", "Kaseya Center"),
    ("MIL", "Fiserv Forum"),
    ("MIN", "Target Center"),
    ("NOP", "Smoothie King Center"),
    ("NYK", "Madison Square Garden"),
    ("OKC", "Paycom Center"),
    ("ORL", "Kia Center"),
    ("PHI", "Wells Fargo Center"),
    ("PHX", "Footprint Center"),
    ("POR", "Moda Center"),
    ("SAC", "Golden 1 Center"),
    ("SAS", "Frost Bank Center"),
    ("TOR", "Scotiabank Arena"),
    ("UTA", "Delta Center"),
    ("WAS", "Capital One Arena"),
)
FIRST_NAMES = (
    "Aaron",
    "Andre",
    "Anthony",
    "Bam",
    "Bradley",
    "Brandon",
    "Cameron",
    "Chris",
    "Collin",
    "Damian",
    "Darius",
    "De'Aaron",
    "Derrick",
    "Devin",
    "Donovan",
    "Dwight",
    "Evan",
    "Fred",
    "Gary",
    "Gordon",
    "Isaiah",
    "Jalen",
    "Jaren",
    "Jaylen",
    "Jimmy",
    "Jordan",
    "Josh",
    "Julius",
    "Karl",
    "Kawhi",
    "Kevin",
    "Khris",
    "Kyle",
    "Lauri",
    "Luka",
    "Malik",
    "Marcus",
    "Mikal",
    "Myles",
    "Nikola",
    "Norman",
    "OG",
    "Paolo",
    "Pascal",
    "Reggie",
    "Rudy",
    "Scottie",
    "Shai",
    "Spencer",
    "Stephen",
    "Trae",
    "Tyler",
    "Tyrese",
    "Victor",
    "Zach",
    "Zion",
    "Alperen",
    "Cade",
    "Chet",
    "Desmond",
)
LAST_NAMES = (
    "Adams",
    "Allen",
    "Anderson",
    "Bailey",
    "Barnes",
    "Bell",
    "Brooks",
    "Brown",
    "Bryant",
    "Butler",
    "Carter",
    "Clark",
    "Coleman",
    "Collins",
    "Cook",
    "Davis",
    "Dixon",
    "Edwards",
    "Ellis",
    "Evans",
    "Fisher",
    "Fox",
    "Gordon",
    "Graham",
    "Grant",
    "Green",
    "Griffin",
    "Hall",
    "Harris",
    "Hayes",
    "Hill",
    "Holiday",
    "Howard",
    "Hughes",
    "Jackson",
    "James",
    "Jenkins",
    "Johnson",
    "Jones",
    "King",
    "Lewis",
    "Lopez",
    "Martin",
    "Mitchell",
    "Moore",
    "Morris",
    "Murray",
    "Nelson",
    "Parker",
    "Porter",
    "Powell",
    "Price",
    "Reed",
    "Robinson",
    "Ross",
    "Russell",
    "Simmons",
    "Smith",
    "Thomas",
    "Walker",
)
GAME_TIMES_ET = ("19:00", "19:30", "20:00", "21:00", "22:00", "22:30")
FEATURE_VERSION = "v2.3"
DEFAULT_PLAYERS = 450
DEFAULT_READY_PCT = 93.0


@dataclass(frozen=True)
class SeedReport:
    game_date: date
    games: int
    players_total: int
    players_ready: int
    phase4_run: bool

    def summary(self) -> str:
        run = "with" if self.phase4_run else "without"
        return (
            f"Seeded {self.game_date}: {self.games} games, {self.players_total} players, "
            f"{self.players_ready} production-ready, {run} Phase 4 run-history row."
        )


def player_lookup(name: str) -> str:
    """The lookup key the platform uses: lower-case letters only (``LeBron James`` → ``lebronjames``)."""
    return "".join(ch for ch in name.lower() if ch.isalpha())


def player_name(index: int) -> str:
    """A stable, unique synthetic name for player ``index`` (0 ≤ index < 3,600)."""
    first = FIRST_NAMES[index % len(FIRST_NAMES)]
    last = LAST_NAMES[(index // len(FIRST_NAMES) + index * 7) % len(LAST_NAMES)]
    return f"{first} {last}"


def slate(game_date: date, players: int) -> list[tuple[str, str]]:
    """(home, away) pairs: enough teams for ``players`` at up to 15 a roster, at most all 30."""
    teams_needed = min(len(TEAMS), max(2, -(-players // 15)))
    teams_needed += teams_needed % 2
    rng = random.Random(f"slate:{game_date.isoformat()}")
    abbrs = [abbr for abbr, _ in TEAMS]
    rng.shuffle(abbrs)
    playing = abbrs[:teams_needed]
    return [(playing[i], playing[i + 1]) for i in range(0, teams_needed, 2)]


def build_day(
    game_date: date, *, players: int = DEFAULT_PLAYERS, ready_pct: float = DEFAULT_READY_PCT
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Schedule rows and feature-store rows for one day."""
    if not 0 < players <= len(FIRST_NAMES) * len(LAST_NAMES):
        raise ValueError(f"players must be between 1 and {len(FIRST_NAMES) * len(LAST_NAMES)}")
    if not 0 <= ready_pct <= 100:
        raise ValueError("ready_pct must be between 0 and 100")
    arenas = dict(TEAMS)
    games = slate(game_date, players)
    created = datetime.combine(game_date, datetime.min.time(), UTC) + timedelta(hours=7)
    schedule = []
    sides: list[tuple[str, str, str, bool]] = []  # team, opponent, game_id, is_home
    for number, (home, away) in enumerate(games, start=1):
        game_id = f"{game_date:%Y%m%d}_{away}_{home}"
        schedule.append(
            {
                "game_date": game_date,
                "game_id": game_id,
                "home_team_abbr": home,
                "away_team_abbr": away,
                "game_time_et": GAME_TIMES_ET[number % len(GAME_TIMES_ET)],
                "arena": arenas[home],
                "game_status": "scheduled",
            }
        )
        sides += [(home, away, game_id, True), (away, home, game_id, False)]

    ready_count = round(players * ready_pct / 100)
    order = list(range(players))
    random.Random(f"ready:{game_date.isoformat()}").shuffle(order)
    ready = set(order[:ready_count])
    features = []
    for index in range(players):
        name = player_name(index)
        lookup = player_lookup(name)
        team, opponent, game_id, is_home = sides[index % len(sides)]
        rng = random.Random(f"{game_date.isoformat()}:{lookup}")
        season = round(rng.uniform(4.0, 30.0), 1)
        features.append(
            {
                "game_date": game_date,
                "player_lookup": lookup,
                "player_name": name,
                "team_abbr": team,
                "opponent_team_abbr": opponent,
                "game_id": game_id,
                "is_home": is_home,
                "is_production_ready": index in ready,
                "points_avg_last_5": round(max(0.0, season + rng.gauss(0, 3)), 1),
                "points_avg_last_10": round(max(0.0, season + rng.gauss(0, 2)), 1),
                "points_avg_season": season,
                "rebounds_avg_last_10": round(rng.uniform(1.0, 12.0), 1),
                "assists_avg_last_10": round(rng.uniform(0.5, 9.0), 1),
                "minutes_avg_last_10": round(min(40.0, 10 + season * 0.9 + rng.uniform(-3, 3)), 1),
                "usage_rate": round(rng.uniform(12.0, 34.0), 1),
                "opponent_def_rating": round(rng.uniform(105.0, 120.0), 1),
                "days_rest": rng.choice((0, 1, 1, 1, 2, 3)),
                "feature_quality_score": round(
                    rng.uniform(85.0, 100.0) if index in ready else rng.uniform(40.0, 70.0), 1
                ),
                "feature_version": FEATURE_VERSION,
                "created_at": created,
            }
        )
    return schedule, features


def seed_day(
    client: bigquery.Client,
    game_date: date,
    *,
    players: int = DEFAULT_PLAYERS,
    ready_pct: float = DEFAULT_READY_PCT,
    games: bool = True,
    phase4_run: bool = True,
) -> SeedReport:
    """Replace ``game_date``'s schedule, features and Phase 4 run row with a fresh seeded day.

    ``games=False`` seeds an off day: no schedule rows and no features.
    """
    schedule, features = build_day(game_date, players=players, ready_pct=ready_pct)
    if not games:
        schedule, features = [], []
    delete_date(client, config.SCHEDULE_TABLE, "game_date", game_date)
    delete_date(client, config.FEATURE_STORE_TABLE, "game_date", game_date)
    delete_date(client, config.RUN_HISTORY_TABLE, "data_date", game_date, processor_name=config.PHASE4_PROCESSOR)
    insert_rows(client, config.SCHEDULE_TABLE, schedule)
    insert_rows(client, config.FEATURE_STORE_TABLE, features)
    ready = sum(1 for row in features if row["is_production_ready"])
    if phase4_run:
        # Phase 4 runs overnight: 01:30 to 02:17 Eastern on the game date.
        started = datetime.combine(game_date, datetime.min.time(), UTC) + timedelta(hours=6, minutes=30)
        finished = started + timedelta(minutes=47)
        insert_rows(
            client,
            config.RUN_HISTORY_TABLE,
            [
                {
                    "data_date": game_date,
                    "processor_name": config.PHASE4_PROCESSOR,
                    "run_id": f"seed_{game_date:%Y%m%d}",
                    "status": "success",
                    "triggered_by": "scheduler",
                    "started_at": started,
                    "completed_at": finished,
                    "records_processed": len(features),
                    "players_ready": ready,
                    "players_total": len(features),
                    "updated_at": finished,
                }
            ],
        )
    return SeedReport(game_date, len(schedule), len(features), ready, phase4_run)
