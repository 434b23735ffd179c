//! The frames of a shared live log execution that its subscribers may
//! still need: a short window of consecutive positions.

use std::collections::VecDeque;

use super::frame::{Frame, Payload, Run};

/// The frames of the live execution that subscribers may still need.
pub(super) struct Window {
    /// The frames cover the positions after this one.
    after: i32,
    /// Frame `i` is at position `after + 1 + i`.
    frames: VecDeque<Payload>,
    /// Most frames kept: a subscriber further behind catches up on its own.
    capacity: usize,
    /// The live execution's final frame, once it ended.
    end: Option<Frame>,
    /// Runs handed out since the last push, by the position before their
    /// first frame: every subscriber that had sent the same last frame
    /// takes the same run.
    runs: Vec<(i32, Run)>,
}

/// What the window holds for a subscriber that sent everything up to a
/// position.
pub(super) enum Next {
    /// The frames after it, as one frame, and how many they are.
    Frames(Frame, usize),
    /// The live execution ended with this frame.
    End(Frame),
    /// Nothing yet.
    Wait,
    /// The window has moved past it.
    Behind,
}

impl Window {
    /// An empty window of `capacity` frames (at least one) after `after`.
    pub(super) fn new(after: i32, capacity: usize) -> Self {
        Self {
            after,
            frames: VecDeque::new(),
            capacity: capacity.max(1),
            end: None,
            runs: Vec::new(),
        }
    }

    /// Appends the frame at `position`. A position that does not follow the
    /// last one (which the live execution never sends) restarts the window
    /// just before it, so subscribers behind it catch up on their own.
    pub(super) fn push(&mut self, position: i32, frame: Payload) {
        let next = i32::try_from(self.frames.len())
            .ok()
            .and_then(|len| self.after.checked_add(len)?.checked_add(1));
        if next != Some(position) {
            self.frames.clear();
            self.after = position.saturating_sub(1);
        }
        self.frames.push_back(frame);
        if self.frames.len() > self.capacity {
            self.frames.pop_front();
            self.after = self.after.saturating_add(1);
        }
        self.runs.clear();
    }

    /// Records the live execution's final frame.
    pub(super) fn end(&mut self, frame: Frame) {
        self.end = Some(frame);
    }

    /// What there is for a subscriber that sent everything up to `last`.
    pub(super) fn after(&mut self, last: i32) -> Next {
        if last < self.after {
            return Next::Behind;
        }
        let index = usize::try_from(i64::from(last) - i64::from(self.after)).unwrap_or(usize::MAX);
        let count = self.frames.len().saturating_sub(index);
        match count {
            0 => self.end.clone().map_or(Next::Wait, Next::End),
            1 => self.frames.back().map_or(Next::Wait, |frame| {
                Next::Frames(Frame::Next(frame.clone()), 1)
            }),
            _ => {
                let run = match self.runs.iter().find(|(from, _)| *from == last) {
                    Some((_, run)) => run.clone(),
                    None => {
                        let run = Run::new(self.frames.range(index..).cloned().collect());
                        self.runs.push((last, run.clone()));
                        run
                    }
                };
                Next::Frames(Frame::Run(run), count)
            }
        }
    }

    /// Frames held now (for tests).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.frames.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(position: i32) -> Payload {
        Payload::from(position.to_string())
    }

    fn positions(next: Next) -> Vec<String> {
        match next {
            Next::Frames(Frame::Next(payload), 1) => vec![payload.as_str().to_owned()],
            Next::Frames(Frame::Run(run), count) => {
                assert_eq!(run.payloads().len(), count);
                run.payloads()
                    .iter()
                    .map(|p| p.as_str().to_owned())
                    .collect()
            }
            Next::Frames(..) => panic!("a frame that is no item"),
            Next::End(_) => vec!["end".to_owned()],
            Next::Wait => vec![],
            Next::Behind => vec!["behind".to_owned()],
        }
    }

    #[test]
    fn the_window_keeps_consecutive_positions_and_restarts_on_a_jump() {
        let mut window = Window::new(0, 2);
        window.push(1, payload(1));
        window.push(2, payload(2));
        window.push(3, payload(3));
        assert_eq!(window.after, 1);
        assert_eq!(window.len(), 2);
        assert_eq!(positions(window.after(0)), ["behind"]);
        assert_eq!(positions(window.after(1)), ["2", "3"]);
        assert_eq!(positions(window.after(2)), ["3"]);
        assert_eq!(positions(window.after(3)), Vec::<String>::new());
        // A subscriber ahead of the live execution waits for it.
        assert_eq!(positions(window.after(9)), Vec::<String>::new());
        window.push(7, payload(7));
        assert_eq!(window.after, 6);
        assert_eq!(window.len(), 1);
        assert_eq!(positions(window.after(3)), ["behind"]);
        window.end(Frame::Complete);
        assert_eq!(positions(window.after(6)), ["7"]);
        assert_eq!(positions(window.after(7)), ["end"]);
    }

    #[test]
    fn subscribers_at_the_same_position_take_the_same_run() {
        let mut window = Window::new(0, 8);
        for position in 1..=4 {
            window.push(position, payload(position));
        }
        let (Next::Frames(Frame::Run(a), 3), Next::Frames(Frame::Run(b), 3)) =
            (window.after(1), window.after(1))
        else {
            panic!("two runs of three");
        };
        assert!(std::ptr::eq(a.payloads(), b.payloads()));
        window.push(5, payload(5));
        let Next::Frames(Frame::Run(c), 4) = window.after(1) else {
            panic!("a run of four");
        };
        assert!(!std::ptr::eq(a.payloads(), c.payloads()));
    }
}
