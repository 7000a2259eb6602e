//! 8 concurrent callers x 1000 call-next over HTTP against 3 pooled queues: no ticket returned
//! twice, none skipped.

use crate::helpers::start;
use std::collections::{BTreeMap, BTreeSet};

const QUEUES: usize = 3;
const CALLERS: usize = 8;
const CALLS_EACH: usize = 1000;
const TICKETS_PER_QUEUE: usize = 3000;

/// Three pooled queues (no doctor-bound rooms), each with a room per caller.
fn config() -> String {
    let mut s = String::from("site = \"load\"\nname = \"load\"\n[[departments]]\nid = \"d\"\nname = \"d\"\n");
    for q in 0..QUEUES {
        for c in 0..CALLERS {
            s += &format!("[[rooms]]\nid = \"q{q}-r{c}\"\nname = \"{q}-{c}\"\n");
        }
    }
    for q in 0..QUEUES {
        let rooms: Vec<String> = (0..CALLERS).map(|c| format!("\"q{q}-r{c}\"")).collect();
        let prefix = ["A", "B", "C"][q];
        s += &format!("[[queues]]\nid = \"q{q}\"\nname = \"q{q}\"\ndepartment = \"d\"\nprefix = \"{prefix}\"\nrooms = [{}]\n", rooms.join(", "));
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_callers_never_get_the_same_ticket_and_skip_none() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("load.toml");
    std::fs::write(&cfg, config()).unwrap();
    let app = std::sync::Arc::new(start(&dir.path().join("data"), Some(&cfg)));

    // Issue the tickets, 8 at a time; remember each ticket's number.
    let mut issuers = Vec::new();
    for w in 0..CALLERS {
        let app = app.clone();
        issuers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for i in (w..QUEUES * TICKETS_PER_QUEUE).step_by(CALLERS) {
                let q = i % QUEUES;
                let t = app.issue(&format!("q{q}"), &format!("p{i}")).await;
                mine.push((q, t["id"].as_str().unwrap().to_owned(), t["number"].as_str().unwrap().to_owned()));
            }
            mine
        }));
    }
    let mut issued: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for h in issuers {
        for (q, id, number) in h.await.unwrap() {
            assert!(issued.insert(id, (q, number)).is_none());
        }
    }
    assert_eq!(issued.len(), QUEUES * TICKETS_PER_QUEUE);

    let mut callers = Vec::new();
    for c in 0..CALLERS {
        let app = app.clone();
        callers.push(tokio::spawn(async move {
            let mut got = Vec::with_capacity(CALLS_EACH);
            for i in 0..CALLS_EACH {
                let q = (c + i) % QUEUES;
                let t = app.call_next(&format!("q{q}"), &format!("q{q}-r{c}")).await.expect("tickets remain");
                got.push(t["id"].as_str().unwrap().to_owned());
            }
            got
        }));
    }
    let mut called = Vec::new();
    for h in callers {
        called.extend(h.await.unwrap());
    }
    assert_eq!(called.len(), CALLERS * CALLS_EACH);
    let unique: BTreeSet<_> = called.iter().collect();
    assert_eq!(unique.len(), called.len(), "a ticket was returned twice");

    // None skipped: in each queue the called tickets are exactly the lowest numbers (FIFO).
    for q in 0..QUEUES {
        let mut nums: Vec<u32> = called
            .iter()
            .filter_map(|id| issued.get(id))
            .filter(|(qq, _)| *qq == q)
            .map(|(_, n)| n[1..].parse().unwrap())
            .collect();
        nums.sort();
        let expect: Vec<u32> = (1..=nums.len() as u32).collect();
        assert_eq!(nums, expect, "queue q{q} skipped a ticket");
        let snap = app.get_json(&format!("/api/v1/queues/q{q}")).await;
        let waiting = snap["counts"]["waiting"].as_u64().unwrap() as usize;
        assert_eq!(waiting + nums.len(), TICKETS_PER_QUEUE, "queue q{q} lost a ticket");
    }
}
