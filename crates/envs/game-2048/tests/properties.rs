//! Property tests of the 2048 rules, checked against restatements written independently of
//! `board.rs` (lines are read here by transposing and mirroring, not by `Board::slide`).

// Test helpers outside `#[test]` functions may unwrap and panic too: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::panic)]

use envtorch_sdk::{Environment, ResetRequest, Reward, StepContext};
use game_2048_env::board::{Board, Cells, Direction, SIZE};
use game_2048_env::env::{Game2048Action, Game2048Env};
use game_2048_env::game::Game;
use proptest::prelude::*;
use serde_json::json;

/// Mostly empty cells and small tiles, so that merges are common; now and then a large one.
fn tile() -> impl Strategy<Value = u32> {
    prop_oneof![
        4 => Just(0u32),
        4 => (1u32..=3).prop_map(|k| 1 << k),
        1 => (1u32..=12).prop_map(|k| 1 << k),
    ]
}

fn board() -> impl Strategy<Value = Board> {
    prop::array::uniform4(prop::array::uniform4(tile())).prop_map(Board::from_cells)
}

fn direction() -> impl Strategy<Value = Direction> {
    prop::sample::select(Direction::ALL.to_vec())
}

/// The board's lines as they slide towards `direction`, each read from that wall.
fn lines_towards(cells: &Cells, direction: Direction) -> Vec<Vec<u32>> {
    let rows: Vec<Vec<u32>> = cells.iter().map(|r| r.to_vec()).collect();
    let columns: Vec<Vec<u32>> = (0..SIZE)
        .map(|c| cells.iter().map(|r| r[c]).collect())
        .collect();
    let reversed = |lines: Vec<Vec<u32>>| {
        lines
            .into_iter()
            .map(|mut l| {
                l.reverse();
                l
            })
            .collect()
    };
    match direction {
        Direction::Left => rows,
        Direction::Right => reversed(rows),
        Direction::Up => columns,
        Direction::Down => reversed(columns),
    }
}

/// Checks one slid line against the rule: tiles packed against the wall, each input tile used
/// exactly once, and equal neighbours paired greedily from the wall, each pair making one tile
/// (so no tile merges twice in a move). Returns the points the rule gives.
fn check_line(input: &[u32], output: &[u32]) -> Result<u64, TestCaseError> {
    let tiles: Vec<u32> = input.iter().copied().filter(|&v| v != 0).collect();
    let packed = output.iter().skip_while(|&&v| v != 0).all(|&v| v == 0);
    prop_assert!(packed, "tiles not packed against the wall: {output:?}");
    let mut next = 0;
    let mut points = 0;
    for &made in output.iter().filter(|&&v| v != 0) {
        prop_assert!(
            next < tiles.len(),
            "{input:?} -> {output:?}: a tile from nowhere"
        );
        if next + 1 < tiles.len() && tiles[next] == tiles[next + 1] {
            prop_assert_eq!(made, tiles[next] * 2, "{:?} -> {:?}", input, output);
            points += u64::from(made);
            next += 2;
        } else {
            prop_assert_eq!(made, tiles[next], "{:?} -> {:?}", input, output);
            next += 1;
        }
    }
    prop_assert_eq!(next, tiles.len(), "{:?} -> {:?}: tiles lost", input, output);
    Ok(points)
}

fn mirror(cells: Cells) -> Cells {
    cells.map(|mut row| {
        row.reverse();
        row
    })
}

fn transpose(cells: Cells) -> Cells {
    let mut out = [[0; SIZE]; SIZE];
    for (r, row) in cells.iter().enumerate() {
        for (c, &v) in row.iter().enumerate() {
            out[c][r] = v;
        }
    }
    out
}

fn reset(env: &mut Game2048Env, seed: u64) {
    let serde_json::Value::Object(raw) = json!({"seed": seed, "target_tile": 0}) else {
        unreachable!()
    };
    env.reset(ResetRequest { raw }).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// A slide conserves the tile sum; an effective move adds exactly one 2 or 4 in a cell the
    /// slide left empty; a move that changes nothing changes nothing at all.
    #[test]
    fn tiles_are_conserved_except_the_new_tile(board in board(), seed: u64, direction in direction()) {
        let slide = board.slide(direction);
        prop_assert_eq!(slide.board.tile_sum(), board.tile_sum());
        prop_assert_eq!(slide.board.tile_count(), board.tile_count() - slide.merges as usize);

        let mut game = Game::from_position(board, seed, None);
        let result = game.play(direction);
        prop_assert_eq!(result.moved, slide.moved);
        if result.moved {
            let dealt = result.dealt.unwrap();
            prop_assert!(dealt.value == 2 || dealt.value == 4);
            prop_assert_eq!(slide.board.get(dealt.row, dealt.col), 0);
            prop_assert_eq!(game.board().tile_sum(), board.tile_sum() + u64::from(dealt.value));
            prop_assert_eq!(game.board().tile_count(), slide.board.tile_count() + 1);
            let mut without_new = *game.board();
            without_new.set(dealt.row, dealt.col, 0);
            prop_assert_eq!(without_new, slide.board);
        } else {
            prop_assert_eq!(*game.board(), board);
            prop_assert_eq!(result.points, 0);
            prop_assert!(result.dealt.is_none());
        }
    }

    /// Every line obeys the merge rule (each tile merges at most once per move, pairs nearest
    /// the wall first), and the move's points are the sum of the merged tiles.
    #[test]
    fn merges_happen_once_per_tile_per_move(board in board(), direction in direction()) {
        let slide = board.slide(direction);
        let before = lines_towards(&board.cells(), direction);
        let after = lines_towards(&slide.board.cells(), direction);
        let mut points = 0;
        for (input, output) in before.iter().zip(&after) {
            points += check_line(input, output)?;
        }
        prop_assert_eq!(slide.points, points);
        prop_assert_eq!(slide.moved, before != after);
    }

    /// The four directions are one rule seen through mirrors and transposes.
    #[test]
    fn directions_are_symmetric(board in board()) {
        let left = |cells: Cells| Board::from_cells(cells).slide(Direction::Left);
        let cells = board.cells();
        let right = board.slide(Direction::Right);
        prop_assert_eq!(right.board.cells(), mirror(left(mirror(cells)).board.cells()));
        prop_assert_eq!(right.points, left(mirror(cells)).points);
        let up = board.slide(Direction::Up);
        prop_assert_eq!(up.board.cells(), transpose(left(transpose(cells)).board.cells()));
        let down = board.slide(Direction::Down);
        prop_assert_eq!(
            down.board.cells(),
            transpose(mirror(left(mirror(transpose(cells))).board.cells()))
        );
    }

    /// Over whole episodes through the environment: the score is the sum of the rewards, the
    /// observation agrees with the state, and `done` means no move or the target.
    #[test]
    fn score_is_the_sum_of_rewards(seed in 0u64..1_000_000, moves in prop::collection::vec(direction(), 0..300)) {
        let mut env = Game2048Env::new(None);
        reset(&mut env, seed);
        let mut total = 0i64;
        for direction in moves {
            let obs = env.step(Game2048Action { direction }, &StepContext::default()).unwrap();
            let Some(Reward::Int(reward)) = obs.reward else {
                return Err(TestCaseError::fail(format!("reward {:?} is not an integer", obs.reward)));
            };
            prop_assert!(reward >= 0);
            total += reward;
            prop_assert_eq!(obs.observation.score, total as u64);
            prop_assert_eq!(env.state().score, total as u64);
            prop_assert_eq!(obs.done, obs.observation.legal_moves.is_empty());
            if obs.observation.no_op {
                prop_assert_eq!(reward, 0);
            }
        }
    }

    /// The same seed and actions give the same observations, bit for bit.
    #[test]
    fn same_seed_same_trajectory(seed: u64, moves in prop::collection::vec(direction(), 0..100)) {
        let play = || {
            let mut env = Game2048Env::new(None);
            reset(&mut env, seed);
            moves
                .iter()
                .map(|&direction| {
                    let obs = env.step(Game2048Action { direction }, &StepContext::default()).unwrap();
                    (obs.observation, obs.reward, obs.done)
                })
                .collect::<Vec<_>>()
        };
        prop_assert_eq!(play(), play());
    }
}
