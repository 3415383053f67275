//! One game of 2048: a board, a score and the seeded dealer, with no protocol concerns.

use crate::board::{Board, Direction, MAX_REACHABLE_TILE};
use crate::dealer::{Dealer, DealtTile};

/// The tile target when neither the reset nor `GAME_2048_TARGET_TILE` sets one.
pub const DEFAULT_TARGET_TILE: u32 = 2048;

/// Why a target tile was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidTarget;

impl std::fmt::Display for InvalidTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "target_tile must be 0 (no target) or a power of two from 4 to {MAX_REACHABLE_TILE}"
        )
    }
}

impl std::error::Error for InvalidTarget {}

/// Checks a requested tile target: `0` means none (play until no move is left), otherwise a
/// power of two the board can reach. A tile of 2 is refused because a new game could start
/// already done.
pub fn parse_target(value: u64) -> Result<Option<u32>, InvalidTarget> {
    if value == 0 {
        return Ok(None);
    }
    match u32::try_from(value) {
        Ok(v) if v.is_power_of_two() && (4..=MAX_REACHABLE_TILE).contains(&v) => Ok(Some(v)),
        _ => Err(InvalidTarget),
    }
}

/// What one move did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MoveResult {
    /// The points merged by the move (its reward); 0 when nothing changed.
    pub points: u64,
    /// Whether the move changed the board. A move that changes nothing is allowed: it scores
    /// 0 and deals no tile.
    pub moved: bool,
    /// The tile dealt after the move, if it moved.
    pub dealt: Option<DealtTile>,
}

/// A game in progress.
#[derive(Debug, Clone)]
pub struct Game {
    board: Board,
    score: u64,
    seed: u64,
    target_tile: Option<u32>,
    dealer: Dealer,
}

impl Game {
    /// A new game for `seed`: two tiles dealt on an empty board. `target_tile` (if any) ends
    /// the game when a tile reaches it.
    pub fn new(seed: u64, target_tile: Option<u32>) -> Self {
        let mut dealer = Dealer::new(seed);
        let mut board = Board::default();
        dealer.deal(&mut board);
        dealer.deal(&mut board);
        Self {
            board,
            score: 0,
            seed,
            target_tile,
            dealer,
        }
    }

    /// A game from a given position with a fresh dealer for `seed` and score 0: for tests
    /// and analysis of particular positions.
    pub fn from_position(board: Board, seed: u64, target_tile: Option<u32>) -> Self {
        Self {
            board,
            score: 0,
            seed,
            target_tile,
            dealer: Dealer::new(seed),
        }
    }

    /// Slides towards `direction` and, if anything moved, deals one new tile.
    pub fn play(&mut self, direction: Direction) -> MoveResult {
        let slide = self.board.slide(direction);
        if !slide.moved {
            return MoveResult {
                points: 0,
                moved: false,
                dealt: None,
            };
        }
        self.board = slide.board;
        self.score += slide.points;
        let dealt = self.dealer.deal(&mut self.board);
        MoveResult {
            points: slide.points,
            moved: true,
            dealt,
        }
    }

    /// The board.
    pub fn board(&self) -> &Board {
        &self.board
    }

    /// The sum of all points merged so far.
    pub fn score(&self) -> u64 {
        self.score
    }

    /// The seed that dealt this game's tiles.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The tile that ends the game, if any.
    pub fn target_tile(&self) -> Option<u32> {
        self.target_tile
    }

    /// Whether a tile reached the target.
    pub fn target_reached(&self) -> bool {
        self.target_tile
            .is_some_and(|target| self.board.max_tile() >= target)
    }

    /// Whether the game is over: no legal move is left, or the target is reached.
    pub fn is_over(&self) -> bool {
        self.target_reached() || self.board.legal_moves().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_zero_or_reachable_powers_of_two() {
        assert_eq!(parse_target(0), Ok(None));
        assert_eq!(parse_target(4), Ok(Some(4)));
        assert_eq!(parse_target(2048), Ok(Some(2048)));
        assert_eq!(parse_target(131_072), Ok(Some(131_072)));
        for bad in [1, 2, 3, 100, 262_144, u64::MAX] {
            assert_eq!(parse_target(bad), Err(InvalidTarget), "{bad}");
        }
    }

    #[test]
    fn a_new_game_has_two_small_tiles() {
        let game = Game::new(3, None);
        assert_eq!(game.board().tile_count(), 2);
        assert!(
            game.board()
                .cells()
                .iter()
                .flatten()
                .all(|&v| [0, 2, 4].contains(&v))
        );
        assert_eq!(game.score(), 0);
        assert!(!game.is_over());
    }

    #[test]
    fn a_move_that_changes_nothing_deals_nothing() {
        let corner = Board::from_cells([[2, 0, 0, 0], [0; 4], [0; 4], [0; 4]]);
        let mut game = Game::from_position(corner, 0, None);
        for blocked in [Direction::Up, Direction::Left] {
            let result = game.play(blocked);
            assert_eq!(
                (result.points, result.moved, result.dealt),
                (0, false, None)
            );
            assert_eq!(*game.board(), corner);
        }
        let result = game.play(Direction::Right);
        assert!(result.moved);
        assert_eq!(game.board().tile_count(), 2);
    }

    #[test]
    fn the_target_ends_the_game() {
        let board = Board::from_cells([[1024, 1024, 0, 0], [0; 4], [0; 4], [0; 4]]);
        let mut game = Game::from_position(board, 0, Some(2048));
        assert!(!game.is_over());
        assert_eq!(game.play(Direction::Left).points, 2048);
        assert!(game.target_reached() && game.is_over());
        let mut endless = Game::from_position(board, 0, None);
        endless.play(Direction::Left);
        assert!(!endless.is_over());
    }
}
