//! What Cruise Control's `add-brokers` and `remove-brokers` proposals do, computed from the partitions a real
//! cluster reports: the replica moves, as a reassignment Kafka's own tool executes.

use std::collections::BTreeMap;

use crate::dataplane::Partition;

/// A partition's new replica list.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Move {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<i32>,
}

/// The moves of a rebalance in `mode` naming `named` brokers, on a cluster whose brokers are `brokers`.
/// - `remove-brokers`: every replica on a named broker moves to the least loaded remaining broker that does
///   not hold one of the partition yet;
/// - `add-brokers`: replicas move from the most loaded brokers onto each named broker until it holds its share
///   (total replicas / brokers), one replica per partition;
/// - any other mode moves nothing.
pub fn plan(mode: &str, named: &[i32], brokers: &[i32], partitions: &[Partition]) -> Result<Vec<Move>, String> {
    let mut assignment: BTreeMap<(String, i32), Vec<i32>> =
        partitions.iter().map(|p| ((p.topic.clone(), p.partition), p.replicas.clone())).collect();
    let mut load: BTreeMap<i32, usize> = brokers.iter().map(|b| (*b, 0)).collect();
    for replicas in assignment.values() {
        for r in replicas {
            *load.entry(*r).or_default() += 1;
        }
    }
    match mode {
        "remove-brokers" => {
            let remaining: Vec<i32> = brokers.iter().copied().filter(|b| !named.contains(b)).collect();
            for ((topic, partition), replicas) in assignment.iter_mut() {
                for slot in 0..replicas.len() {
                    let leaving = replicas[slot];
                    if !named.contains(&leaving) {
                        continue;
                    }
                    let to = remaining
                        .iter()
                        .copied()
                        .filter(|b| !replicas.contains(b))
                        .min_by_key(|b| (load.get(b).copied().unwrap_or(0), *b))
                        .ok_or_else(|| {
                            format!(
                                "{topic}-{partition} has {} replicas; the {} remaining brokers cannot hold them",
                                replicas.len(),
                                remaining.len()
                            )
                        })?;
                    replicas[slot] = to;
                    *load.entry(to).or_default() += 1;
                    if let Some(l) = load.get_mut(&leaving) {
                        *l = l.saturating_sub(1);
                    }
                }
            }
        }
        "add-brokers" => {
            let total: usize = load.values().sum();
            let share = total / brokers.len().max(1);
            for new in named {
                while load.get(new).copied().unwrap_or(0) < share {
                    // The most loaded broker that can give a replica of a partition the new broker lacks.
                    let candidate = assignment
                        .iter()
                        .filter(|(_, replicas)| !replicas.contains(new))
                        .flat_map(|(key, replicas)| {
                            replicas.iter().enumerate().map(move |(slot, r)| (key.clone(), slot, *r))
                        })
                        .filter(|(_, _, r)| !named.contains(r) && load.get(r).copied().unwrap_or(0) > share)
                        .max_by_key(|(key, _, r)| (load.get(r).copied().unwrap_or(0), std::cmp::Reverse(key.clone())));
                    let Some((key, slot, from)) = candidate else { break };
                    if let Some(replicas) = assignment.get_mut(&key) {
                        replicas[slot] = *new;
                    }
                    *load.entry(*new).or_default() += 1;
                    if let Some(l) = load.get_mut(&from) {
                        *l -= 1;
                    }
                }
            }
        }
        _ => {}
    }
    Ok(partitions
        .iter()
        .filter_map(|p| {
            let replicas = &assignment[&(p.topic.clone(), p.partition)];
            (*replicas != p.replicas).then(|| Move {
                topic: p.topic.clone(),
                partition: p.partition,
                replicas: replicas.clone(),
            })
        })
        .collect())
}

/// The reassignment file `kafka-reassign-partitions --execute` reads.
pub fn reassignment_json(moves: &[Move]) -> serde_json::Value {
    serde_json::json!({"version": 1, "partitions": moves})
}

/// Whether the moves are done: each partition has exactly its new replicas, all in sync.
pub fn done(moves: &[Move], partitions: &[Partition]) -> bool {
    moves.iter().all(|m| {
        partitions.iter().any(|p| {
            let mut now = p.replicas.clone();
            let mut want = m.replicas.clone();
            now.sort_unstable();
            want.sort_unstable();
            p.topic == m.topic && p.partition == m.partition && now == want && want.iter().all(|r| p.isr.contains(r))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(topic: &str, partition: i32, replicas: &[i32]) -> Partition {
        Partition { topic: topic.into(), partition, replicas: replicas.to_vec(), isr: replicas.to_vec() }
    }

    fn on(partitions: &[Partition], moves: &[Move], broker: i32) -> usize {
        partitions
            .iter()
            .map(|p| {
                let replicas = moves
                    .iter()
                    .find(|m| m.topic == p.topic && m.partition == p.partition)
                    .map(|m| m.replicas.clone())
                    .unwrap_or_else(|| p.replicas.clone());
                usize::from(replicas.contains(&broker))
            })
            .sum()
    }

    #[test]
    fn remove_brokers_empties_the_named_brokers_and_keeps_replication() {
        let parts: Vec<Partition> =
            (0..12).map(|i| p("t", i, &[3 + i % 5, 3 + (i + 1) % 5, 3 + (i + 2) % 5])).collect();
        let moves = plan("remove-brokers", &[6, 7], &[3, 4, 5, 6, 7], &parts).unwrap();
        assert_eq!((on(&parts, &moves, 6), on(&parts, &moves, 7)), (0, 0));
        for m in &moves {
            let mut r = m.replicas.clone();
            r.sort_unstable();
            r.dedup();
            assert_eq!(r.len(), 3, "{m:?}");
        }
    }

    #[test]
    fn remove_brokers_refuses_when_the_rest_cannot_hold_the_replicas() {
        let parts = vec![p("t", 0, &[3, 4, 5])];
        assert!(plan("remove-brokers", &[5], &[3, 4, 5], &parts).is_err());
    }

    #[test]
    fn add_brokers_gives_each_new_broker_its_share() {
        let parts: Vec<Partition> =
            (0..10).map(|i| p("t", i, &[3 + i % 3, 3 + (i + 1) % 3, 3 + (i + 2) % 3])).collect();
        let moves = plan("add-brokers", &[6, 7], &[3, 4, 5, 6, 7], &parts).unwrap();
        // 30 replicas over 5 brokers: 6 each.
        assert_eq!((on(&parts, &moves, 6), on(&parts, &moves, 7)), (6, 6));
        for b in [3, 4, 5] {
            assert_eq!(on(&parts, &moves, b), 6, "broker {b}");
        }
        assert!(!done(&moves, &parts));
    }

    #[test]
    fn other_modes_move_nothing() {
        let parts = vec![p("t", 0, &[3, 4, 5])];
        assert_eq!(plan("full", &[], &[3, 4, 5], &parts).unwrap(), vec![]);
    }
}
