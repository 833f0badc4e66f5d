//! Idempotent producers (PROTOCOL §5.2.1): the validation table as a pure
//! function of the stored state and the request's `(epoch, seq)`.

use serde::{Deserialize, Serialize};

/// Per-`(stream, producer id)` state, committed with the data it guards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerState {
    /// The current epoch.
    pub epoch: u64,
    /// The highest accepted sequence number in `epoch`.
    pub last_seq: u64,
}

/// The three producer headers of one request, already validated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerClaim {
    /// `Producer-Id`, non-empty.
    pub id: String,
    /// `Producer-Epoch`.
    pub epoch: u64,
    /// `Producer-Seq`.
    pub seq: u64,
}

/// What the validation table says about a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// New data: append, then store `next` (200 OK).
    Accept {
        /// The state to commit with the data.
        next: ProducerState,
    },
    /// Already applied (204 No Content); `last_seq` is the highest accepted.
    Duplicate {
        /// Highest accepted sequence number in the epoch.
        last_seq: u64,
    },
    /// `epoch < state.epoch`: zombie fenced (403 with the current epoch).
    StaleEpoch {
        /// The server's current epoch.
        current: u64,
    },
    /// `epoch > state.epoch` with `seq != 0` (400).
    NewEpochNotAtZero,
    /// `seq > last_seq + 1` (409 with expected and received).
    Gap {
        /// The sequence number the server expects next.
        expected: u64,
        /// The sequence number received.
        received: u64,
    },
}

/// Applies the PROTOCOL §5.2.1 table. A producer the stream has never seen
/// behaves as if it had epoch `-1`: it must start at `seq = 0`.
pub fn check(state: Option<ProducerState>, epoch: u64, seq: u64) -> Decision {
    let Some(state) = state else {
        return if seq == 0 {
            Decision::Accept {
                next: ProducerState { epoch, last_seq: 0 },
            }
        } else {
            Decision::Gap {
                expected: 0,
                received: seq,
            }
        };
    };
    if epoch < state.epoch {
        return Decision::StaleEpoch {
            current: state.epoch,
        };
    }
    if epoch > state.epoch {
        return if seq == 0 {
            Decision::Accept {
                next: ProducerState { epoch, last_seq: 0 },
            }
        } else {
            Decision::NewEpochNotAtZero
        };
    }
    if seq <= state.last_seq {
        Decision::Duplicate {
            last_seq: state.last_seq,
        }
    } else if seq == state.last_seq + 1 {
        Decision::Accept {
            next: ProducerState {
                epoch,
                last_seq: seq,
            },
        }
    } else {
        Decision::Gap {
            expected: state.last_seq + 1,
            received: seq,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let s = Some(ProducerState {
            epoch: 2,
            last_seq: 5,
        });
        assert_eq!(
            check(None, 0, 0),
            Decision::Accept {
                next: ProducerState {
                    epoch: 0,
                    last_seq: 0
                }
            }
        );
        assert_eq!(
            check(None, 3, 1),
            Decision::Gap {
                expected: 0,
                received: 1
            }
        );
        assert_eq!(check(s, 1, 9), Decision::StaleEpoch { current: 2 });
        assert_eq!(check(s, 3, 1), Decision::NewEpochNotAtZero);
        assert_eq!(
            check(s, 3, 0),
            Decision::Accept {
                next: ProducerState {
                    epoch: 3,
                    last_seq: 0
                }
            }
        );
        assert_eq!(check(s, 2, 5), Decision::Duplicate { last_seq: 5 });
        assert_eq!(check(s, 2, 0), Decision::Duplicate { last_seq: 5 });
        assert_eq!(
            check(s, 2, 6),
            Decision::Accept {
                next: ProducerState {
                    epoch: 2,
                    last_seq: 6
                }
            }
        );
        assert_eq!(
            check(s, 2, 8),
            Decision::Gap {
                expected: 6,
                received: 8
            }
        );
    }
}
