"""A realistic, reproducible game day for the local stack and tests, in the production tables' shapes.

Writes the NBA.com schedule (a slate of games, docs/platform.md §5b), one feature-store row per player of
the teams that play (features as a named array, §5) and Phase 4's run-history row (§3.3, §4). Everything is
derived from the date and the player's lookup, so the same arguments always give the same rows.
Re-seeding a date replaces that date only.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from nba_phase5 import config
from nba_phase5.bigquery.bq import delete_date, insert_rows
from nba_phase5.core.game_day import season_year
from nba_phase5_local.phase4_publisher import phase4_run_id, run_history_row

if TYPE_CHECKING:
    from google.cloud import bigquery

# (tricode, NBA.com team id, city, team name, arena): the ids and names NBA.com's schedule carries.
TEAMS = (
    ("ATL", 1610612737, "Atlanta", "Hawks", "State Farm Arena"),
    ("BOS", 1610612738, "Boston", "Celtics", "TD Garden"),
    ("BKN", 1610612751, "Brooklyn", "Nets", "Barclays Center"),
    ("CHA", 1610612766, "Charlotte", "Hornets", "Spectrum Center"),
    ("CHI", 1610612741, "Chicago", "Bulls", "United Center"),
    ("CLE", 1610612739, "Cleveland", "Cavaliers", "Rocket Arena"),
    ("DAL", 1610612742, "Dallas", "Mavericks", "American Airlines Center"),
    ("DEN", 1610612743, "Denver", "Nuggets", "Ball Arena"),
    ("DET", 1610612765, "Detroit", "Pistons", "Little Caesars Arena"),
    ("GSW", 1610612744, "San Francisco", "Warriors", "Chase Center"),
    ("HOU", 1610612745, "Houston", "Rockets", "Toyota Center"),
    ("IND", 1610612754, "Indianapolis", "Pacers", "Gainbridge Fieldhouse"),
    ("LAC", 1610612746, "Inglewood", "Clippers", "Intuit Dome"),
    ("LAL", 1610612747, "Los Angeles", "Lakers", "Crypto.com Arena"),
    ("MEM", 1610612763, "Memphis", "Grizzlies", "FedExForum"),
    ("MIA", 1610612748, "Miami", "Heat", "Kaseya Center"),
    ("MIL", 1610612749, "Milwaukee", "Bucks", "Fiserv Forum"),
    ("MIN", 1610612750, "Minneapolis", "Timberwolves", "Target Center"),
    ("NOP", 1610612740, "New Orleans", "Pelicans", "Smoothie King Center"),
    ("NYK", 1610612752, "New York", "Knicks", "Madison Square Garden"),
    ("OKC", 1610612760, "Oklahoma City", "Thunder", "Paycom Center"),
    ("ORL", 1610612753, "Orlando", "Magic", "Kia Center"),
    ("PHI", 1610612755, "Philadelphia", "76ers", "Xfinity Mobile Arena"),
    ("PHX", 1610612756, "Phoenix", "Suns", "PHX Arena"),
    ("POR", 1610612757, "Portland", "Trail Blazers", "Moda Center"),
    ("SAC", 1610612758, "Sacramento", "Kings", "Golden 1 Center"),
    ("SAS", 1610612759, "San Antonio", "Spurs", "Frost Bank Center"),
    ("TOR", 1610612761, "Toronto", "Raptors", "Scotiabank Arena"),
    ("UTA", 1610612762, "Salt Lake City", "Jazz", "Delta Center"),
    ("WAS", 1610612764, "Washington", "Wizards", "Capital One Arena"),
)
# Word lists as strings (hence noqa SIM905): 145 names in 12 lines, not 145.
FIRST_NAMES = tuple(
    "Aaron Andre Anthony Bam Bradley Brandon Cameron Chris Collin Damian Darius De'Aaron Derrick Devin Donovan "  # noqa: SIM905
    "Dwight Evan Fred Gary Gordon Isaiah Jalen Jaren Jaylen Jimmy Jordan Josh Julius Karl Kawhi Kevin Khris Kyle "
    "Lauri Luka Malik Marcus Mikal Myles Nikola Norman OG Paolo Pascal Reggie Rudy Scottie Shai Spencer Stephen "
    "Trae Tyler Tyrese Victor Zach Zion Alperen Cade Chet Desmond".split()
)
LAST_NAMES = tuple(
    "Adams Allen Anderson Bailey Barnes Bell Brooks Brown Bryant Butler Carter Clark Coleman Collins Cook Davis "  # noqa: SIM905
    "Dixon Edwards Ellis Evans Fisher Fox Gordon Graham Grant Green Griffin Hall Harris Hayes Hill Holiday Howard "
    "Hughes Jackson James Jenkins Johnson Jones King Lewis Lopez Martin Mitchell Moore Morris Murray Nelson Parker "
    "Porter Powell Price Reed Robinson Ross Russell Simmons Smith Thomas Walker".split()
)
# The production feature store's first 25 names, in its order (``feature_names`` of every row); the
# stand-in worker reads values by these names, never by position.
FEATURE_NAMES = tuple(
    "points_avg_last_5 points_avg_last_10 points_avg_season points_std_last_10 games_in_last_7_days "  # noqa: SIM905
    "fatigue_score shot_zone_mismatch_score pace_score usage_spike_score rest_advantage injury_risk "
    "recent_trend minutes_change opponent_def_rating opponent_pace home_away back_to_back playoff_game "
    "pct_paint pct_mid_range pct_three pct_free_throw team_pace team_off_rating team_win_pct".split()
)
FEATURE_VERSION = "v1_baseline_25"
DEFAULT_PLAYERS = 450
DEFAULT_READY_PCT = 93.0
PHASE4_STATUSES = ("success", "partial")


@dataclass(frozen=True)
class SeedReport:
    game_date: date
    games: int
    players_total: int
    players_ready: int
    phase4_run: bool
    phase4_status: str | None = None

    def summary(self) -> str:
        run = f"with a '{self.phase4_status}'" if self.phase4_run else "without a"
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
    abbrs = [team[0] for team in TEAMS]
    rng.shuffle(abbrs)
    return [(abbrs[i], abbrs[i + 1]) for i in range(0, teams_needed, 2)]


def game_id(game_date: date, number: int) -> str:
    """An NBA.com-style regular-season id (``0022500301``), unique per date and game within a season."""
    year = season_year(game_date)
    sequence = (game_date - date(year, 10, 1)).days * 15 + number
    return f"002{year % 100:02d}{sequence:05d}"


def schedule_rows(game_date: date, games: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """One ``nbac_schedule`` row per game, as Phase 2's NBA.com schedule processor writes it."""
    teams = {team[0]: team for team in TEAMS}
    year = season_year(game_date)
    season_nba_format = f"{year}-{(year + 1) % 100:02d}"
    # Phase 2 loads the schedule overnight; NBA.com's gameDateEst is the date at midnight.
    loaded = datetime.combine(game_date, datetime.min.time(), UTC) + timedelta(hours=5)
    rows = []
    for number, (home, away) in enumerate(games, start=1):
        _, home_id, _, home_name, arena = teams[home]
        _, away_id, _, away_name, _ = teams[away]
        rows.append(
            {
                "game_id": game_id(game_date, number),
                "game_code": f"{game_date:%Y%m%d}/{away}{home}",
                "season": str(year),
                "season_nba_format": season_nba_format,
                "season_year": year,
                "game_date": game_date,
                "game_date_est": datetime.combine(game_date, datetime.min.time(), UTC),
                "game_status": 1,
                "game_status_text": "Scheduled",
                "home_team_id": home_id,
                "home_team_tricode": home,
                "home_team_name": home_name,
                "away_team_id": away_id,
                "away_team_tricode": away,
                "away_team_name": away_name,
                "arena_name": arena,
                "arena_city": teams[home][2],
                "is_regular_season": True,
                "is_playoffs": False,
                "is_all_star": False,
                "data_source": "nba_com",
                "source_file_path": f"gs://nba-scraped-data/nba-com/schedule/{season_nba_format}/{game_date:%Y%m%d}.json",
                "created_at": loaded,
                "processed_at": loaded,
            }
        )
    return rows


def feature_values(rng: random.Random, *, is_home: bool, days_rest: int, ready: bool) -> list[float]:
    """The 25 features of one player, in :data:`FEATURE_NAMES` order."""
    season = round(rng.uniform(4.0, 30.0), 1)
    last5 = round(max(0.0, season + rng.gauss(0, 3)), 1)
    paint, mid, three = rng.uniform(0.2, 0.5), rng.uniform(0.05, 0.25), rng.uniform(0.1, 0.45)
    named = {
        "points_avg_last_5": last5,
        "points_avg_last_10": round(max(0.0, season + rng.gauss(0, 2)), 1),
        "points_avg_season": season,
        "points_std_last_10": round(rng.uniform(2.0, 8.0), 2),
        "games_in_last_7_days": float(rng.randint(1, 4)),
        "fatigue_score": round(rng.uniform(40.0, 100.0), 1),
        "shot_zone_mismatch_score": round(rng.uniform(-10.0, 10.0), 2),
        "pace_score": round(rng.uniform(-3.0, 3.0), 2),
        "usage_spike_score": round(rng.uniform(-3.0, 3.0), 2),
        "rest_advantage": float(rng.choice((-1, 0, 0, 1))),
        "injury_risk": round(rng.uniform(0.0, 0.3) if ready else rng.uniform(0.2, 0.8), 2),
        "recent_trend": round((last5 - season) / max(season, 1.0), 3),
        "minutes_change": round(rng.uniform(-4.0, 4.0), 1),
        "opponent_def_rating": round(rng.uniform(105.0, 120.0), 1),
        "opponent_pace": round(rng.uniform(96.0, 104.0), 1),
        "home_away": 1.0 if is_home else 0.0,
        "back_to_back": 1.0 if days_rest == 0 else 0.0,
        "playoff_game": 0.0,
        "pct_paint": round(paint, 3),
        "pct_mid_range": round(mid, 3),
        "pct_three": round(three, 3),
        "pct_free_throw": round(max(0.0, 1.0 - paint - mid - three), 3),
        "team_pace": round(rng.uniform(96.0, 104.0), 1),
        "team_off_rating": round(rng.uniform(108.0, 122.0), 1),
        "team_win_pct": round(rng.uniform(0.2, 0.8), 3),
    }
    return [named[name] for name in FEATURE_NAMES]


def build_day(
    game_date: date, *, players: int = DEFAULT_PLAYERS, ready_pct: float = DEFAULT_READY_PCT
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Schedule rows and feature-store rows for one day."""
    if not 0 < players <= len(FIRST_NAMES) * len(LAST_NAMES):
        raise ValueError(f"players must be between 1 and {len(FIRST_NAMES) * len(LAST_NAMES)}")
    if not 0 <= ready_pct <= 100:
        raise ValueError("ready_pct must be between 0 and 100")
    schedule = schedule_rows(game_date, slate(game_date, players))
    sides: list[tuple[str, str, str, bool]] = []  # team, opponent, game_id, is_home
    for game in schedule:
        home, away = game["home_team_tricode"], game["away_team_tricode"]
        sides += [(home, away, game["game_id"], True), (away, home, game["game_id"], False)]
    order = list(range(players))
    random.Random(f"ready:{game_date.isoformat()}").shuffle(order)
    ready = set(order[: round(players * ready_pct / 100)])
    # Phase 4 writes the feature store overnight, 02:17 Eastern on the game date.
    created = datetime.combine(game_date, datetime.min.time(), UTC) + timedelta(hours=7, minutes=17)
    features = []
    for index in range(players):
        lookup = player_lookup(player_name(index))
        _, opponent, match, is_home = sides[index % len(sides)]
        rng = random.Random(f"{game_date.isoformat()}:{lookup}")
        days_rest = rng.choice((0, 1, 1, 1, 2, 3))
        quality = rng.uniform(85.0, 100.0) if index in ready else rng.uniform(40.0, 70.0)
        features.append(
            {
                "player_lookup": lookup,
                "universal_player_id": f"{lookup}_001",
                "game_date": game_date,
                "game_id": match,
                "features": feature_values(rng, is_home=is_home, days_rest=days_rest, ready=index in ready),
                "feature_names": list(FEATURE_NAMES),
                "feature_count": len(FEATURE_NAMES),
                "feature_version": FEATURE_VERSION,
                "feature_quality_score": Decimal(f"{quality:.2f}"),
                "opponent_team_abbr": opponent,
                "is_home": is_home,
                "days_rest": days_rest,
                "data_source": "phase4",
                "is_production_ready": index in ready,
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
    phase4_status: str = "success",
) -> SeedReport:
    """Replace ``game_date``'s schedule, features and Phase 4 run row with a fresh seeded day.

    ``games=False`` seeds an off day: no schedule rows and no features. ``phase4_status`` is the
    run-history status Phase 4 reports (``success`` or ``partial``; both count as "Phase 4 ran").
    """
    if phase4_status not in PHASE4_STATUSES:
        raise ValueError(f"phase4_status must be one of {PHASE4_STATUSES}, got {phase4_status!r}")
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
        # Phase 4 runs overnight, 01:30 to 02:17 Eastern; in a partial run some players failed (no row).
        started = datetime.combine(game_date, datetime.min.time(), UTC) + timedelta(hours=6, minutes=30)
        row = run_history_row(
            game_date,
            run_id=phase4_run_id(started, seed=f"seed:{game_date.isoformat()}"),  # reproducible, real format
            status=phase4_status,
            started_at=started,
            processed_at=started + timedelta(minutes=47),
            players_processed=len(features),
            players_ready=ready,
            players_failed=max(1, len(features) // 50) if phase4_status == "partial" else 0,
            season_year=season_year(game_date),
        )
        insert_rows(client, config.RUN_HISTORY_TABLE, [row])
    return SeedReport(game_date, len(schedule), len(features), ready, phase4_run, phase4_status if phase4_run else None)
