//! [`Grid`]: one cell per distinct entity key of a request and feature view of the registry, in one flat
//! `Vec` (keys major), so that a request's rows cost one allocation and no call site computes an index.

/// One `T` per `(key, view)`: `key` indexes the request plan's distinct entity keys, `view` the
/// registry's feature views.
#[derive(Debug)]
pub(crate) struct Grid<T> {
    cells: Vec<T>,
    views: usize,
}

impl<T: Default> Grid<T> {
    /// `keys` × `views` cells, each `T::default()`.
    pub fn new(keys: usize, views: usize) -> Self {
        let mut cells = Vec::new();
        cells.resize_with(keys.saturating_mul(views), T::default);
        Self { cells, views }
    }
}

impl<T> Grid<T> {
    /// The cell of `key` and `view`; `None` outside the grid.
    #[inline]
    pub fn get(&self, key: usize, view: usize) -> Option<&T> {
        self.cells.get(self.index(key, view)?)
    }

    /// The cell of `key` and `view`, to fill; `None` outside the grid.
    #[inline]
    pub fn get_mut(&mut self, key: usize, view: usize) -> Option<&mut T> {
        let index = self.index(key, view)?;
        self.cells.get_mut(index)
    }

    /// A view out of range would otherwise land on the next key's cells.
    #[inline]
    fn index(&self, key: usize, view: usize) -> Option<usize> {
        if view >= self.views {
            return None;
        }
        key.checked_mul(self.views)?.checked_add(view)
    }
}

#[cfg(test)]
mod tests {
    use super::Grid;

    #[test]
    fn cells_are_addressed_by_key_and_view() {
        let mut grid: Grid<Option<(usize, usize)>> = Grid::new(3, 4);
        for key in 0..3 {
            for view in 0..4 {
                assert_eq!(grid.get(key, view), Some(&None));
                *grid.get_mut(key, view).expect("inside") = Some((key, view));
            }
        }
        for key in 0..3 {
            for view in 0..4 {
                assert_eq!(grid.get(key, view), Some(&Some((key, view))));
            }
        }
    }

    #[test]
    fn nothing_outside_the_grid() {
        let mut grid: Grid<u8> = Grid::new(2, 3);
        assert_eq!(
            grid.get(0, 3),
            None,
            "a view past the last is not the next key's first"
        );
        assert_eq!(grid.get(2, 0), None);
        assert_eq!(grid.get_mut(1, 3), None);
        assert_eq!(grid.get(usize::MAX, 1), None);
        assert_eq!(Grid::<u8>::new(0, 4).get(0, 0), None);
        assert_eq!(Grid::<u8>::new(4, 0).get(0, 0), None);
    }
}
