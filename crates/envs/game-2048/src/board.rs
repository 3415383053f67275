//! The 4×4 board and the slide rule, with no randomness: dealing new tiles is
//! [`crate::dealer`]'s job, so the rule can be tested on its own.

use envtorch_sdk::schemars::{self, JsonSchema};
use serde::{Deserialize, Serialize};

/// Rows and columns of the board.
pub const SIZE: usize = 4;

/// Tile values by row then column, top-left first; `0` is an empty cell.
pub type Cells = [[u32; SIZE]; SIZE];

/// The largest tile a 4×4 board can ever hold (2^17): 16 cells, the last one dealt a 4.
pub const MAX_REACHABLE_TILE: u32 = 131_072;

/// Where the tiles slide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(transform = plain_enum_schema)]
pub enum Direction {
    /// Towards row 0.
    Up,
    /// Towards row 3.
    Down,
    /// Towards column 0.
    Left,
    /// Towards column 3.
    Right,
}

impl Direction {
    /// Every direction, in the order legal moves are listed.
    pub const ALL: [Direction; 4] = [
        Direction::Up,
        Direction::Down,
        Direction::Left,
        Direction::Right,
    ];

    /// The lowercase name, as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
            Direction::Left => "left",
            Direction::Right => "right",
        }
    }
}

/// Turns schemars' `oneOf` of documented `const` variants into a plain `enum`, as pydantic
/// writes it for a string enum: the validator then reports one `enum` issue listing every
/// direction, rather than the first variant's `literal_error`.
fn plain_enum_schema(schema: &mut schemars::Schema) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    let Some(serde_json::Value::Array(variants)) = object.get("oneOf") else {
        return;
    };
    let values: Option<Vec<serde_json::Value>> =
        variants.iter().map(|v| v.get("const").cloned()).collect();
    if let Some(values) = values {
        object.remove("oneOf");
        object.insert("type".into(), "string".into());
        object.insert("enum".into(), values.into());
    }
}

/// What one slide did, before any new tile is dealt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slide {
    /// The board after the slide.
    pub board: Board,
    /// The sum of the tiles made by merges (the move's reward).
    pub points: u64,
    /// How many merges happened.
    pub merges: u32,
    /// Whether any tile moved or merged; a slide that changes nothing deals no new tile.
    pub moved: bool,
}

/// A 4×4 2048 board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Board {
    cells: Cells,
}

impl Board {
    /// A board with these tiles. Values are taken as given (tests build arbitrary boards).
    pub fn from_cells(cells: Cells) -> Self {
        Self { cells }
    }

    /// The tiles, row by row.
    pub fn cells(&self) -> Cells {
        self.cells
    }

    /// The tile at `row`, `col` (0 when empty).
    pub fn get(&self, row: usize, col: usize) -> u32 {
        self.cells[row][col]
    }

    /// Puts `value` at `row`, `col`.
    pub fn set(&mut self, row: usize, col: usize, value: u32) {
        self.cells[row][col] = value;
    }

    /// The empty cells in row-major order; the dealer indexes into this list, so its order is
    /// part of the seeded-trajectory contract.
    pub fn empty_cells(&self) -> Vec<(usize, usize)> {
        let mut empty = Vec::with_capacity(SIZE * SIZE);
        for (r, row) in self.cells.iter().enumerate() {
            for (c, &v) in row.iter().enumerate() {
                if v == 0 {
                    empty.push((r, c));
                }
            }
        }
        empty
    }

    /// The largest tile (0 on an empty board).
    pub fn max_tile(&self) -> u32 {
        self.cells.iter().flatten().copied().max().unwrap_or(0)
    }

    /// The sum of all tiles, which a slide conserves.
    pub fn tile_sum(&self) -> u64 {
        self.cells.iter().flatten().map(|&v| u64::from(v)).sum()
    }

    /// How many cells hold a tile.
    pub fn tile_count(&self) -> usize {
        self.cells.iter().flatten().filter(|&&v| v != 0).count()
    }

    /// Slides every line towards `direction`: tiles move as far as they can, and two equal
    /// neighbours merge into one, at most once per tile per move, the pair nearest the wall
    /// first (so `2 2 2 2` left gives `4 4 . .`, and `4 4 8 .` left gives `8 8 . .`).
    pub fn slide(&self, direction: Direction) -> Slide {
        let mut board = *self;
        let mut points = 0;
        let mut merges = 0;
        for i in 0..SIZE {
            let line = self.line(direction, i);
            let (slid, line_points, line_merges) = slide_line(line);
            points += line_points;
            merges += line_merges;
            board.set_line(direction, i, slid);
        }
        Slide {
            moved: board != *self,
            board,
            points,
            merges,
        }
    }

    /// The directions in which a slide changes the board, in [`Direction::ALL`] order. Empty
    /// means the game is over.
    pub fn legal_moves(&self) -> Vec<Direction> {
        Direction::ALL
            .into_iter()
            .filter(|&d| self.slide(d).moved)
            .collect()
    }

    /// Line `i` read from the wall the tiles slide towards: for `Left` row `i` left to right,
    /// for `Right` row `i` right to left, for `Up` column `i` top to bottom, for `Down`
    /// column `i` bottom to top.
    fn line(&self, direction: Direction, i: usize) -> [u32; SIZE] {
        let mut line = [0; SIZE];
        for (k, slot) in line.iter_mut().enumerate() {
            let (r, c) = line_cell(direction, i, k);
            *slot = self.cells[r][c];
        }
        line
    }

    fn set_line(&mut self, direction: Direction, i: usize, line: [u32; SIZE]) {
        for (k, &v) in line.iter().enumerate() {
            let (r, c) = line_cell(direction, i, k);
            self.cells[r][c] = v;
        }
    }

    /// A compact text rendering for LLM agents: one row per line, cells right-aligned to the
    /// widest tile, `.` for empty, e.g. `   2    .    .    .`.
    pub fn render(&self) -> String {
        let width = self
            .cells
            .iter()
            .flatten()
            .map(|v| v.to_string().len())
            .max()
            .unwrap_or(1);
        let rows: Vec<String> = self
            .cells
            .iter()
            .map(|row| {
                row.iter()
                    .map(|&v| {
                        let cell = if v == 0 {
                            ".".to_owned()
                        } else {
                            v.to_string()
                        };
                        format!("{cell:>width$}")
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        rows.join("\n")
    }
}

/// The board cell holding position `k` of line `i` when sliding towards `direction`.
fn line_cell(direction: Direction, i: usize, k: usize) -> (usize, usize) {
    match direction {
        Direction::Left => (i, k),
        Direction::Right => (i, SIZE - 1 - k),
        Direction::Up => (k, i),
        Direction::Down => (SIZE - 1 - k, i),
    }
}

/// Slides one line towards index 0. Returns the new line, the points merged and the number
/// of merges. A tile made by a merge never merges again in the same move.
pub fn slide_line(line: [u32; SIZE]) -> ([u32; SIZE], u64, u32) {
    let mut out = [0; SIZE];
    let mut len = 0;
    let mut points = 0;
    let mut merges = 0;
    // Whether out[len - 1] may still merge (false once it is the result of a merge).
    let mut last_open = false;
    for v in line.into_iter().filter(|&v| v != 0) {
        if last_open && out[len - 1] == v {
            out[len - 1] = v * 2;
            points += u64::from(v) * 2;
            merges += 1;
            last_open = false;
        } else {
            out[len] = v;
            len += 1;
            last_open = true;
        }
    }
    (out, points, merges)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_once_per_tile_pair_nearest_the_wall_first() {
        assert_eq!(slide_line([2, 2, 2, 2]), ([4, 4, 0, 0], 8, 2));
        assert_eq!(slide_line([2, 2, 4, 0]), ([4, 4, 0, 0], 4, 1));
        assert_eq!(slide_line([4, 4, 8, 0]), ([8, 8, 0, 0], 8, 1));
        assert_eq!(slide_line([2, 0, 2, 4]), ([4, 4, 0, 0], 4, 1));
        assert_eq!(slide_line([0, 2, 2, 2]), ([4, 2, 0, 0], 4, 1));
        assert_eq!(slide_line([2, 4, 2, 4]), ([2, 4, 2, 4], 0, 0));
        assert_eq!(slide_line([0, 0, 0, 2]), ([2, 0, 0, 0], 0, 0));
        assert_eq!(slide_line([0, 0, 0, 0]), ([0, 0, 0, 0], 0, 0));
    }

    #[test]
    fn slides_in_each_direction() {
        let board = Board::from_cells([[2, 0, 0, 2], [0, 0, 0, 0], [0, 4, 0, 0], [0, 4, 0, 0]]);
        assert_eq!(
            board.slide(Direction::Left).board.cells(),
            [[4, 0, 0, 0], [0, 0, 0, 0], [4, 0, 0, 0], [4, 0, 0, 0]]
        );
        assert_eq!(
            board.slide(Direction::Right).board.cells(),
            [[0, 0, 0, 4], [0, 0, 0, 0], [0, 0, 0, 4], [0, 0, 0, 4]]
        );
        assert_eq!(
            board.slide(Direction::Up).board.cells(),
            [[2, 8, 0, 2], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
        );
        let down = board.slide(Direction::Down);
        assert_eq!(
            down.board.cells(),
            [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [2, 8, 0, 2]]
        );
        assert_eq!((down.points, down.merges, down.moved), (8, 1, true));
    }

    #[test]
    fn a_full_board_without_pairs_has_no_legal_move() {
        let board = Board::from_cells([[2, 4, 2, 4], [4, 2, 4, 2], [2, 4, 2, 4], [4, 2, 4, 2]]);
        assert!(board.legal_moves().is_empty());
        let stuck_left = Board::from_cells([[2, 0, 0, 0], [4, 0, 0, 0], [0; 4], [0; 4]]);
        assert_eq!(
            stuck_left.legal_moves(),
            [Direction::Down, Direction::Right]
        );
    }

    #[test]
    fn renders_right_aligned_with_dots() {
        let board = Board::from_cells([[2, 0, 0, 0], [0, 128, 0, 0], [0; 4], [0, 0, 0, 4]]);
        assert_eq!(
            board.render(),
            "  2   .   .   .\n  . 128   .   .\n  .   .   .   .\n  .   .   .   4"
        );
    }
}
