//! The 2048 game as an envtorch [`Environment`]: the action, observation and state types
//! (their JSON Schemas are derived from them) and the reset/step semantics.

use envtorch_sdk::schemars::{self, JsonSchema};
use envtorch_sdk::{
    EnvError, Environment, Manifest, Observation, ResetRequest, Reward, StepContext,
    ValidationIssue,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::board::{Cells, Direction};
use crate::dealer::random_seed;
use crate::game::{DEFAULT_TARGET_TILE, Game, parse_target};

/// The environment's name in URLs and `/metadata`.
pub const ENV_NAME: &str = "game_2048";

/// The environment variable that sets the tile target for resets that do not pass
/// `target_tile` (`0` for none). Default: [`DEFAULT_TARGET_TILE`].
pub const TARGET_TILE_VAR: &str = "GAME_2048_TARGET_TILE";

/// Sessions per server when the operator sets no `MAX_CONCURRENT_ENVS`. A game is a few
/// hundred bytes and a step takes microseconds, so many sessions are cheap.
pub const DEFAULT_MAX_SESSIONS: u32 = 64;

/// One move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
pub struct Game2048Action {
    /// Where every tile slides: "up", "down", "left" or "right".
    pub direction: Direction,
}

/// What the agent sees after a reset or a move.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Game2048Observation {
    /// The board, row by row from the top; 0 is an empty cell.
    pub board: Cells,
    /// Points merged so far in this episode (the sum of the rewards).
    pub score: u64,
    /// The moves that change the board, in the order up, down, left, right; empty when no
    /// move is left.
    pub legal_moves: Vec<Direction>,
    /// The largest tile on the board.
    pub max_tile: u32,
    /// The tile that ends the episode when reached; null when the episode runs until no move
    /// is left.
    pub target_tile: Option<u32>,
    /// True when the action just sent changed nothing (reward 0, no new tile); false after a
    /// reset.
    pub no_op: bool,
    /// The board as text, one row per line, `.` for empty cells.
    pub board_text: String,
}

/// The episode's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Game2048State {
    /// Unique identifier for the current episode.
    pub episode_id: Option<String>,
    /// Number of steps taken in the current episode, moves that changed nothing included.
    pub step_count: u64,
    /// Points merged so far.
    pub score: u64,
    /// The seed that deals this episode's tiles: reset with it and replay the actions to get
    /// the same episode.
    pub seed: u64,
}

/// One 2048 session.
#[derive(Debug, Clone)]
pub struct Game2048Env {
    game: Game,
    episode_id: Option<String>,
    step_count: u64,
    default_target: Option<u32>,
}

impl Game2048Env {
    /// A session whose resets use `default_target` unless they pass `target_tile`. It starts
    /// with a random game, so a step before any reset is played rather than refused.
    pub fn new(default_target: Option<u32>) -> Self {
        Self {
            game: Game::new(random_seed(), default_target),
            episode_id: Some(envtorch_sdk::env::new_episode_id()),
            step_count: 0,
            default_target,
        }
    }

    /// The game being played.
    pub fn game(&self) -> &Game {
        &self.game
    }

    fn observe(&self, no_op: bool) -> Observation<Game2048Observation> {
        let board = self.game.board();
        Observation::new(Game2048Observation {
            board: board.cells(),
            score: self.game.score(),
            legal_moves: board.legal_moves(),
            max_tile: board.max_tile(),
            target_tile: self.game.target_tile(),
            no_op,
            board_text: board.render(),
        })
        .done(self.game.is_over())
        .meta("seed", self.game.seed())
    }

    /// The reset's `target_tile`: absent means the session default, `null` or `0` none.
    fn requested_target(&self, request: &ResetRequest) -> Result<Option<u32>, EnvError> {
        let value = match request.get("target_tile") {
            None => return Ok(self.default_target),
            Some(Value::Null) => return Ok(None),
            Some(value) => value,
        };
        let Some(number) = value.as_u64() else {
            return Err(EnvError::Validation(vec![
                ValidationIssue::wrong_type("integer", vec!["target_tile".into()], value.clone())
                    .with_url(),
            ]));
        };
        parse_target(number).map_err(|e| {
            EnvError::Validation(vec![
                ValidationIssue::new(
                    "value_error",
                    vec!["target_tile".into()],
                    format!("Value error, {e}"),
                    value.clone(),
                )
                .with_ctx(json!({"error": e.to_string()}))
                .with_url(),
            ])
        })
    }
}

impl Environment for Game2048Env {
    type Action = Game2048Action;
    type Observation = Game2048Observation;
    type State = Game2048State;

    /// Deals a new game. Keyword arguments: `seed` (a non-negative integer; random when
    /// absent, and reported in the observation metadata either way), `episode_id`, and
    /// `target_tile` (see [`Game2048Env::new`] and [`TARGET_TILE_VAR`]).
    fn reset(
        &mut self,
        request: ResetRequest,
    ) -> Result<Observation<Game2048Observation>, EnvError> {
        let seed = request.seed()?.unwrap_or_else(random_seed);
        let target = self.requested_target(&request)?;
        self.game = Game::new(seed, target);
        self.episode_id = request.episode_id_or_new();
        self.step_count = 0;
        Ok(self.observe(false).reward(Reward::Int(0)))
    }

    /// Plays one move. Every move is legal to send: one that changes nothing scores 0, deals
    /// no tile and sets `no_op`.
    fn step(
        &mut self,
        action: Game2048Action,
        _ctx: &StepContext,
    ) -> Result<Observation<Game2048Observation>, EnvError> {
        self.step_count += 1;
        let result = self.game.play(action.direction);
        let points = i64::try_from(result.points).unwrap_or(i64::MAX);
        Ok(self.observe(!result.moved).reward(Reward::Int(points)))
    }

    fn state(&self) -> Game2048State {
        Game2048State {
            episode_id: self.episode_id.clone(),
            step_count: self.step_count,
            score: self.game.score(),
            seed: self.game.seed(),
        }
    }
}

/// The tile target for resets without `target_tile`, from [`TARGET_TILE_VAR`]; read once at
/// startup so a bad value stops the worker instead of failing every reset.
pub fn default_target_from_env() -> Result<Option<u32>, String> {
    match std::env::var(TARGET_TILE_VAR) {
        Err(std::env::VarError::NotPresent) => Ok(Some(DEFAULT_TARGET_TILE)),
        Err(e) => Err(format!("{TARGET_TILE_VAR}: {e}")),
        Ok(text) => text
            .trim()
            .parse::<u64>()
            .map_err(|_| format!("{TARGET_TILE_VAR}={text:?}: not a non-negative integer"))
            .and_then(|n| parse_target(n).map_err(|e| format!("{TARGET_TILE_VAR}={text:?}: {e}"))),
    }
}

/// The manifest the worker sends the server.
pub fn manifest() -> Manifest {
    Manifest::new(
        ENV_NAME,
        "The 2048 sliding-tile game, deterministic under a seed.",
    )
    .metadata_name("Game2048Environment")
    .readme(include_str!("../README.md"))
    .default_max_sessions(DEFAULT_MAX_SESSIONS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use envtorch_sdk::Action;

    fn reset_with(
        env: &mut Game2048Env,
        args: Value,
    ) -> Result<Observation<Game2048Observation>, EnvError> {
        let Value::Object(raw) = args else {
            panic!("args must be an object")
        };
        env.reset(ResetRequest { raw })
    }

    #[test]
    fn reset_reports_the_seed_and_replays() {
        let mut env = Game2048Env::new(Some(2048));
        let first = reset_with(&mut env, json!({})).unwrap();
        let seed = first.metadata["seed"].as_u64().unwrap();
        let again = reset_with(&mut env, json!({"seed": seed})).unwrap();
        assert_eq!(first.observation, again.observation);
        assert_eq!(env.state().seed, seed);
        assert_eq!(again.reward, Some(Reward::Int(0)));
        assert!(!again.done);
    }

    #[test]
    fn target_tile_comes_from_reset_then_the_session_default() {
        let mut env = Game2048Env::new(Some(1024));
        let obs = reset_with(&mut env, json!({"seed": 1})).unwrap();
        assert_eq!(obs.observation.target_tile, Some(1024));
        let obs = reset_with(&mut env, json!({"seed": 1, "target_tile": 64})).unwrap();
        assert_eq!(obs.observation.target_tile, Some(64));
        for none in [json!(0), Value::Null] {
            let obs = reset_with(&mut env, json!({"seed": 1, "target_tile": none})).unwrap();
            assert_eq!(obs.observation.target_tile, None);
        }
    }

    #[test]
    fn bad_reset_arguments_are_validation_errors() {
        let mut env = Game2048Env::new(None);
        let cases = [
            (json!({"target_tile": 100}), "value_error", "target_tile"),
            (json!({"target_tile": "big"}), "int_type", "target_tile"),
            (json!({"seed": -1}), "greater_than_equal", "seed"),
        ];
        for (args, kind, field) in cases {
            let Err(EnvError::Validation(issues)) = reset_with(&mut env, args.clone()) else {
                panic!("{args} was accepted");
            };
            let issue = serde_json::to_value(&issues[0]).unwrap();
            assert_eq!(issue["type"], kind, "{issue}");
            assert_eq!(issue["loc"], json!([field]), "{issue}");
        }
    }

    #[test]
    fn actions_are_validated_like_pydantic() {
        let schema = <Game2048Action as Action>::schema();
        let parse = |v: Value| <Game2048Action as Action>::parse(v, &schema);
        assert_eq!(
            parse(json!({"direction": "left"})).unwrap().direction,
            Direction::Left
        );
        assert!(parse(json!({"direction": "up", "metadata": {"k": 1}})).is_ok());

        let issues = parse(json!({"direction": "diagonal"})).unwrap_err();
        assert_eq!(
            serde_json::to_value(&issues).unwrap(),
            json!([{
                "type": "enum",
                "loc": ["direction"],
                "msg": "Input should be 'up', 'down', 'left' or 'right'",
                "input": "diagonal",
                "ctx": {"expected": "'up', 'down', 'left' or 'right'"},
                "url": "https://errors.pydantic.dev/2.14/v/enum"
            }])
        );
        let kinds = |v: Value| -> Vec<String> {
            parse(v).unwrap_err().into_iter().map(|i| i.kind).collect()
        };
        assert_eq!(kinds(json!({})), ["missing"]);
        assert_eq!(kinds(json!({"direction": 3})), ["enum"]);
        assert_eq!(
            kinds(json!({"direction": "up", "speed": 2})),
            ["extra_forbidden"]
        );
        assert_eq!(
            kinds(json!({"Direction": "up"})),
            ["missing", "extra_forbidden"]
        );
    }

    #[test]
    fn a_move_that_changes_nothing_is_flagged() {
        let mut env = Game2048Env::new(None);
        // Most openings have a direction that moves nothing (two tiles against one wall).
        let blocked = (0..100)
            .find_map(|seed| {
                reset_with(&mut env, json!({"seed": seed})).unwrap();
                Direction::ALL
                    .into_iter()
                    .find(|&d| !env.game().board().slide(d).moved)
            })
            .unwrap();
        let before = env.game().board().cells();
        let obs = env
            .step(
                Game2048Action { direction: blocked },
                &StepContext::default(),
            )
            .unwrap();
        assert!(obs.observation.no_op);
        assert_eq!(obs.reward, Some(Reward::Int(0)));
        assert_eq!(obs.observation.board, before);
        assert_eq!(env.state().step_count, 1);
    }

    #[test]
    fn schemas_have_the_documented_fields() {
        let observation = envtorch_sdk::schema::observation_schema::<Game2048Observation>();
        let keys: Vec<&String> = observation["properties"]
            .as_object()
            .unwrap()
            .keys()
            .collect();
        assert_eq!(
            keys,
            [
                "done",
                "reward",
                "metadata",
                "board",
                "score",
                "legal_moves",
                "max_tile",
                "target_tile",
                "no_op",
                "board_text"
            ]
        );
        let state = envtorch_sdk::schema::state_schema::<Game2048State>();
        let keys: Vec<&String> = state["properties"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["episode_id", "step_count", "score", "seed"]);
    }
}
