//! Golden trajectories: for fixed seeds and a fixed action sequence, the boards, rewards and
//! scores checked in under `tests/golden/`. They pin the dealing algorithm (see
//! `src/dealer.rs`): a change that alters them changes every seeded episode, so it must be
//! deliberate. Regenerate with `UPDATE_GOLDEN=1 cargo test -p game-2048-env --test golden`
//! and review the diff.

// Test helpers outside `#[test]` functions may unwrap and panic too: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;

use envtorch_sdk::{Environment, Observation, ResetRequest, StepContext};
use game_2048_env::board::Direction;
use game_2048_env::env::{Game2048Action, Game2048Env, Game2048Observation};
use serde_json::{Value, json};

/// The fixed action sequence, repeated: it contains every direction, so a game always ends
/// (a cycle tries each direction within four steps).
const CYCLE: [Direction; 8] = [
    Direction::Left,
    Direction::Down,
    Direction::Right,
    Direction::Down,
    Direction::Left,
    Direction::Up,
    Direction::Right,
    Direction::Down,
];

fn record(obs: &Observation<Game2048Observation>, action: Option<Direction>) -> Value {
    let mut entry = json!({
        "reward": obs.reward.map(|r| match r {
            envtorch_sdk::Reward::Int(i) => json!(i),
            envtorch_sdk::Reward::Float(f) => json!(f),
        }),
        "score": obs.observation.score,
        "done": obs.done,
        "no_op": obs.observation.no_op,
        "board": obs.observation.board,
    });
    if let Some(direction) = action {
        entry["action"] = json!(direction.as_str());
    }
    entry
}

/// Plays `seed` with `target_tile` from the cycle, for `max_steps` or until done.
fn trajectory(seed: u64, target_tile: u64, max_steps: usize) -> Value {
    let Value::Object(raw) = json!({"seed": seed, "target_tile": target_tile}) else {
        unreachable!()
    };
    let mut env = Game2048Env::new(None);
    let reset = env.reset(ResetRequest { raw }).unwrap();
    let mut steps = Vec::new();
    let mut done = reset.done;
    for direction in CYCLE.iter().copied().cycle().take(max_steps) {
        if done {
            break;
        }
        let obs = env
            .step(Game2048Action { direction }, &StepContext::default())
            .unwrap();
        done = obs.done;
        steps.push(record(&obs, Some(direction)));
    }
    let state = env.state();
    json!({
        "seed": seed,
        "target_tile": target_tile,
        "reset": record(&reset, None),
        "steps": steps,
        "final": {"score": state.score, "step_count": state.step_count, "done": done},
    })
}

/// One step per line, so a diff of a regenerated file points at the step that changed.
fn render(golden: &Value) -> String {
    let mut out = String::from("{\n");
    for key in ["seed", "target_tile", "reset", "final"] {
        out += &format!("  \"{key}\": {},\n", golden[key]);
    }
    out += "  \"steps\": [\n";
    let steps = golden["steps"].as_array().unwrap();
    for (i, step) in steps.iter().enumerate() {
        let comma = if i + 1 < steps.len() { "," } else { "" };
        out += &format!("    {step}{comma}\n");
    }
    out += "  ]\n}\n";
    out
}

fn check(name: &str, actual: Value) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.json"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, render(&actual)).unwrap();
    }
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
    let expected: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(expected["reset"], actual["reset"], "{name}: reset differs");
    let (want, got) = (
        expected["steps"].as_array().unwrap(),
        actual["steps"].as_array().unwrap(),
    );
    for (i, (w, g)) in want.iter().zip(got).enumerate() {
        assert_eq!(w, g, "{name}: step {} differs", i + 1);
    }
    assert_eq!(want.len(), got.len(), "{name}: number of steps differs");
    assert_eq!(expected, actual, "{name}");
}

#[test]
fn seed_0_first_40_moves() {
    check("seed-0-40-moves", trajectory(0, 0, 40));
}

#[test]
fn seed_12345_first_40_moves() {
    check("seed-12345-40-moves", trajectory(12345, 0, 40));
}

#[test]
fn seed_7_full_game_without_target() {
    let golden = trajectory(7, 0, 100_000);
    assert_eq!(golden["final"]["done"], true);
    check("seed-7-full-game", golden);
}

#[test]
fn seed_42_until_the_128_target() {
    let golden = trajectory(42, 128, 100_000);
    let last = golden["steps"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["done"], true);
    assert!(
        last["board"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r.as_array().unwrap())
            .any(|v| v == 128)
    );
    check("seed-42-target-128", golden);
}
